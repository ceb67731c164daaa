/**
 * `iota orchestrator serve --run` as a real process, with simulated miners over HTTP: the run
 * is created, SIGKILLed during TRAINING and during UPLOADING, restarted on the same state, and
 * goes on with nothing acknowledged lost. `iota status` reads it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { newIdentity, type Identity } from '../../src/protocol/keys.js';
import type { SwarmStatus, WorkItemMessage } from '../../src/protocol/swarm-messages.js';
import { IotaProcess, killAll, runIota, serveArgs } from '../support/cli.js';
import { SimMiner } from '../support/sim-miner.js';
import { writeRun } from '../support/swarm-server.js';

afterAll(killAll);

const RUN = 'swarm-test';

/** Through `iota status --json`, as an operator would. */
async function status(url: string): Promise<SwarmStatus> {
  const r = await runIota(['status', '--orchestrator', url, '--json']);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

/** The same object straight from the route, for polling. */
async function poll(url: string): Promise<SwarmStatus> {
  return (await request(`${url}/v1/swarm`)).body.json() as Promise<SwarmStatus>;
}

function ledgerOf(s: SwarmStatus, epoch: number, state: string): number[] {
  return [0, 1, 2].map((stage) =>
    s.ledger
      .filter((l) => l.epoch === epoch && l.stage === stage && l.state === state)
      .reduce((a, l) => a + l.samples, 0),
  );
}

describe('iota orchestrator serve --run', () => {
  it('survives SIGKILL in TRAINING and in UPLOADING without losing anything acknowledged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iota-swarm-e2e-'));
    const runFile = writeRun(dir, {
      phases: { drain_s: 60, upload_s: 120, merge_s: 600, lease_s: 30 },
    });
    const args = serveArgs(runFile, dir, '--set', 'rate_limits.exempt_loopback=true');
    const ids: Identity[] = [newIdentity(), newIdentity(), newIdentity()];

    let proc = new IotaProcess(args);
    let url = ((await proc.waitFor((e) => e.event === 'listening')) as { url: string }).url;
    const connect = async (u: string) => {
      const ms = ids.map((id) => new SimMiner(u, RUN, id));
      for (const [i, m] of ms.entries()) {
        await m.register(`m${i}`);
        await m.join(i);
      }
      return ms;
    };
    let ms = await connect(url);
    const created = await status(url);
    expect(created.stages.map((s) => [s.phase, s.epoch, s.manifest.epoch])).toEqual([
      ['training', 0, 0],
      ['training', 0, 0],
      ['training', 0, 0],
    ]);

    // TRAINING: work until the tail has acknowledged credits, then kill at once, holding leases.
    const acked = [0, 0, 0];
    const pending: WorkItemMessage[] = [];
    while (acked[2] < 2) {
      for (const [s, m] of ms.entries()) {
        const w = await m.work(1);
        for (const it of w.items) acked[s] += (await m.complete(it)).credited;
      }
    }
    for (const m of ms) pending.push(...(await m.work(1)).items);
    expect(await proc.kill('SIGKILL')).toBeNull();
    await Promise.all(ms.map((m) => m.close()));

    proc = new IotaProcess(args);
    url = ((await proc.waitFor((e) => e.event === 'listening')) as { url: string }).url;
    ms = await connect(url);
    const afterKill = await status(url);
    expect(afterKill.stages.map((s) => s.phase)).toEqual(['training', 'training', 'training']);
    const credited = ledgerOf(afterKill, 0, 'credited');
    credited.forEach((c, s) => expect(c).toBeGreaterThanOrEqual(acked[s]));
    // Leases handed out before the kill are still held: their reports are accepted now.
    for (const it of pending) {
      const m = ms[it.stage];
      await m.complete(it, { skipInputs: true });
    }

    // Finish the epoch; UPLOADING reaches every stage.
    for (let r = 0; r < 200; r++) {
      const st = await poll(url);
      if (st.stages.every((s) => s.phase === 'uploading')) break;
      for (const m of ms) {
        const w = await m.work(2);
        for (const it of w.items) await m.complete(it);
      }
    }
    const uploading = await poll(url);
    expect(uploading.stages.map((s) => s.phase)).toEqual(['uploading', 'uploading', 'uploading']);
    expect(ledgerOf(uploading, 0, 'credited')).toEqual([8, 8, 8]);

    // UPLOADING: the head's gradient is acknowledged, then the orchestrator dies.
    const duty = (await ms[0].work()).duty!;
    expect(duty).toMatchObject({ epoch: 0, stage: 0, samples: 8 });
    await ms[0].uploadGradient(0, 0, duty.key);
    await proc.kill('SIGKILL');
    await Promise.all(ms.map((m) => m.close()));

    proc = new IotaProcess(args);
    url = ((await proc.waitFor((e) => e.event === 'listening')) as { url: string }).url;
    ms = await connect(url);
    const back = await poll(url);
    expect(back.stages.map((s) => s.phase)).toEqual(['merging', 'uploading', 'uploading']);
    for (const s of [1, 2]) {
      const d = (await ms[s].work()).duty!;
      await ms[s].uploadGradient(0, s, d.key);
    }
    const merging = await status(url);
    expect(merging.stages.map((s) => s.phase)).toEqual(['merging', 'merging', 'merging']);
    expect(ledgerOf(merging, 0, 'uploaded')).toEqual([8, 8, 8]);

    // The human view names the phases and the ledger.
    const text = await runIota(['status', '--orchestrator', url]);
    expect(text.stdout).toMatch(/stage 0 .*MERGING\(0\)/);
    expect(text.stdout).toMatch(/e0 stage 1: uploaded 8/);
    await Promise.all(ms.map((m) => m.close()));
    expect(await proc.kill('SIGTERM')).toBe(0);
  });

  it('refuses to resume a run whose config changed, with a clear error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iota-swarm-e2e-'));
    const runFile = writeRun(dir);
    const args = serveArgs(runFile, dir);
    const first = new IotaProcess(args);
    await first.waitFor((e) => e.event === 'listening');
    expect(await first.kill('SIGTERM')).toBe(0);
    const changed = await runIota([...args, '--run-set', 'samples_per_epoch=16']);
    expect(changed.code).toBe(2);
    expect(changed.stderr).toMatch(/E_RUN_CHANGED/);
    expect(changed.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
