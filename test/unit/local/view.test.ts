/**
 * The live view of `iota local`: what a terminal shows of a status, plain lines elsewhere, JSON
 * lines with --json, and a block whose lines never wrap (so it redraws in place).
 */
import { stripVTControlCharacters } from 'node:util';
import type { SwarmStatus } from '../../../src/protocol/swarm-messages.js';
import { LiveView } from '../../../src/local/view.js';

/** A stream that records what is written, a terminal or not. */
function sink(tty: boolean, columns = 200) {
  const chunks: string[] = [];
  const out = {
    isTTY: tty,
    columns,
    write: (s: string) => chunks.push(s) > 0,
  } as unknown as NodeJS.WriteStream;
  return { out, text: () => chunks.join('') };
}

const plain = stripVTControlCharacters;

function status(epoch: number, o: Partial<SwarmStatus> = {}): SwarmStatus {
  const now = 1_000_000;
  const miner = (id: string, state: string) => ({ id, state, rate: 2.5, done: 4, last_seen: now });
  return {
    run: 'demo',
    server_time: now,
    epoch,
    target: 32,
    allocation: { epoch, allocated: 12 },
    stages: [0, 1].map((stage) => ({
      stage,
      epoch,
      phase: stage === 0 ? ('merging' as const) : ('training' as const),
      since: now - 1000,
      ...(stage === 0 ? { deadline: now + 42_000 } : {}),
      manifest: { key: 'k', size: 1, sha256: 'h', epoch: epoch - stage, step: epoch - stage },
      capacity: 12.5,
      queue: { ready: 3, leased: 2, held: 1 },
      miners: [
        miner(`a${stage}`, 'working'),
        miner(`b${stage}`, 'idle'),
        miner(`c${stage}`, 'silent'),
      ],
    })),
    ledger: [],
    losses: [{ epoch: epoch - 1, item: 7, loss: 4.25, at: now }],
    throughput: 2,
    evals: [{ epoch: epoch - 1, loss: 4.5, windows: 8, at: now }],
    lease_expiries: 0,
    ...o,
  };
}

describe('LiveView', () => {
  it('shows each stage’s phase, deadline, miners, rate and queue, and the run’s figures', () => {
    const { out } = sink(true);
    const view = new LiveView({
      json: false,
      seq: 64,
      logs: '/state/logs',
      out,
      name: (id) => (id === 'a0' ? 'miner-s0-0' : undefined),
    });
    view.verdict(true);
    view.verdict(true);
    view.verdict(false);
    view.verdict(null);
    view.notable('miner-s0-0 joined stage 0');
    const lines = view.render(status(5)).map(plain);
    expect(lines[0]).toMatch(/epoch 5 .*loss 4\.2500 .*held-out 4\.5000/);
    expect(lines[1]).toContain('weights of epochs 5/4');
    expect(lines[1]).toContain('verdicts 2 passed, 1 failed');
    expect(lines[2]).toMatch(
      /stage 0 +MERGING +\(42s left\) +miners 1 working 1 idle 1 silent +12\.5 samples\/s +queue 3\/2\/1/,
    );
    // Each miner of the stage by name (or key id) with its rate.
    expect(lines[3]).toMatch(/^ +miner-s0-0 2\.5\/s +b0 2\.5\/s +c0 2\.5\/s$/);
    expect(lines[4]).toMatch(/stage 1 +TRAINING/);
    expect(lines.some((l) => l.includes('/state/logs'))).toBe(true);
    expect(lines[lines.length - 1]).toContain('miner-s0-0 joined stage 0');
  });

  it('redraws its block in place on a terminal, never wider than the terminal', () => {
    const { out, text } = sink(true, 50);
    const view = new LiveView({ json: false, seq: 64, logs: '/state/logs', out });
    view.status(status(1));
    view.status(status(2));
    const frames = text().split('\x1b[');
    // The second frame starts by moving up over the first one's lines and clearing them.
    const height = view.render(status(1)).length;
    expect(text()).toContain(`\x1b[${height}F\x1b[J`);
    for (const line of plain(text()).split('\n')) expect(line.length).toBeLessThanOrEqual(49);
    expect(frames.length).toBeGreaterThan(1);
  });

  it('prints a plain line per epoch and one per notable event when stdout is not a terminal', () => {
    const { out, text } = sink(false);
    let clock = 0;
    const view = new LiveView({ json: false, seq: 64, logs: '/l', out, now: () => clock });
    view.status(status(3));
    view.status(status(3));
    view.notable('stage 0 published the weights of epoch 3 (step 3)');
    clock = 10_000; // one epoch of 32 samples of 64 tokens in 10 s
    view.status(status(4));
    const lines = text().trim().split('\n');
    expect(lines).toHaveLength(3);
    // No epoch has passed in view yet: no rate to show.
    expect(lines[0]).toMatch(
      /^epoch 3: loss 4\.2500, held-out 4\.5000, - tokens\/s, weights of epochs 3\/2/,
    );
    expect(lines[1]).toBe('stage 0 published the weights of epoch 3 (step 3)');
    expect(lines[2]).toMatch(/^epoch 4: .* 205 tokens\/s/);
    expect(text()).not.toContain('\x1b[');
  });

  it('prints JSON lines with --json', () => {
    const { out, text } = sink(true);
    const view = new LiveView({ json: true, seq: 64, logs: '/l', out });
    view.status(status(2));
    view.notable('verdict FAILED', 'warn');
    const events = text()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events[0]).toMatchObject({ event: 'epoch', epoch: 2, loss: 4.25, stage_epochs: [2, 1] });
    expect(events[1]).toEqual({ event: 'notable', level: 'warn', text: 'verdict FAILED' });
  });
});
