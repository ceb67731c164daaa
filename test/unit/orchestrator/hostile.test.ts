/**
 * Holes a hostile participant could use, closed: each test reproduces one attack against the
 * coordinator (fake clock, simulated miners, no server) and checks that it changes nothing it
 * should not. The defect numbers are those of the security issue.
 */
import { HttpError } from '../../../src/orchestrator/errors.js';
import { render } from '../../../src/cli/status.js';
import { CoordMiner, makeSwarm, runConfig, type TestSwarm } from '../../support/swarm.js';
import type { SwarmStatus } from '../../../src/protocol/swarm-messages.js';

function refused(fn: () => unknown): HttpError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(HttpError);
    return e as HttpError;
  }
  throw new Error('expected a refusal');
}

/** One miner per stage, joined explicitly. */
function crew(s: TestSwarm, n = s.coord.stages, prefix = 'm'): CoordMiner[] {
  return Array.from({ length: n }, (_, i) => {
    const m = new CoordMiner(s, `${prefix}${i}`);
    m.join(i % s.coord.stages);
    return m;
  });
}

describe('defect 5: losses a model cannot produce', () => {
  it('refuses tail losses beyond the bound, so no mean of finite losses is stored as Infinity', () => {
    const s = makeSwarm({ costs: [1], run: runConfig({ batch: 2, samples_per_epoch: 4 }) });
    const [m] = crew(s, 1);
    const { items } = m.work(1);
    expect(items[0].kind).toBe('tail');
    const before = s.dump();
    const e = refused(() =>
      s.tx(() =>
        s.coord.report(
          'm0',
          { lease: items[0].lease, losses: [1.7e308, 1.7e308] },
          undefined,
          s.clock.now,
        ),
      ),
    );
    expect(e.code).toBe('E_BAD_LOSS');
    expect(e.message).toMatch(/at most 55\.45/); // 10 ln(256)
    expect(s.dump()).toBe(before);
    // An honest loss is taken as before.
    s.tx(() =>
      s.coord.report('m0', { lease: items[0].lease, losses: [5.5, 5.6] }, undefined, s.clock.now),
    );
    expect(s.coord.status(s.clock.now).losses.map((l) => l.loss)).toEqual([5.55]);
  });

  it('shows a status with a missing loss instead of crashing `iota status`', () => {
    const s = makeSwarm({ costs: [1] });
    const status = s.coord.status(s.clock.now);
    const broken = {
      ...status,
      losses: [{ epoch: 0, item: 0, loss: null, at: s.clock.now }],
      evals: [{ epoch: 0, loss: null, windows: 16, at: s.clock.now }],
      throughput: null,
    } as unknown as SwarmStatus;
    const text = render(broken);
    expect(text).toMatch(/recent losses: -/);
    expect(text).toMatch(/held-out loss: e0 -/);
  });
});
