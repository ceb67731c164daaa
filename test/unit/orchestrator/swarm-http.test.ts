/**
 * Simulated miners (signed HTTP, real uploads to the local store, no model) driving a 3-stage
 * run through the orchestrator's routes, with the test's clock.
 */
import { request } from 'undici';
import { newRequestId } from '../../../src/protocol/client.js';
import { refusal } from '../../support/orchestrator.js';
import type { WorkReply } from '../../../src/protocol/swarm-messages.js';
import { SimMiner } from '../../support/sim-miner.js';
import { startSwarmServer, type SwarmServer } from '../../support/swarm-server.js';
import { MergeWorker } from '../../../src/merge/worker.js';
import { stageSpecs } from '../../../src/config/model.js';
import { stageLayout } from '../../../src/model/params.js';

function ledger(o: SwarmServer, epoch: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of o.coord.state.ledger.counts(epoch))
    if (r.epoch === epoch) out[r.state] = (out[r.state] ?? 0) + r.samples;
  return out;
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

async function miners(o: SwarmServer, n: number, prefix = 'sim'): Promise<SimMiner[]> {
  const out: SimMiner[] = [];
  for (let i = 0; i < n; i++) {
    const m = new SimMiner(o.url, o.coord.cfg.name, undefined, () => o.clock.now);
    await m.register(`${prefix}${i}`);
    m.client.runHash = o.configHash;
    await m.join('auto');
    out.push(m);
  }
  return out;
}

/** Everyone works (and uploads when told) until no stage trains `epoch`. */
/**
 * Everyone works (and uploads when told) until no stage trains `epoch`; with a real merge,
 * miners of a merging stage run their merge jobs too, until every stage trains epoch + 1.
 */
async function trainEpoch(
  o: SwarmServer,
  ms: SimMiner[],
  epoch: number,
  workers?: Map<SimMiner, MergeWorker>,
): Promise<void> {
  for (let r = 0; r < 300; r++) {
    const stages = o.coord.state.stages();
    if (
      stages.every(
        (st) => st.epoch > epoch || (!workers && st.epoch === epoch && st.phase === 'merging'),
      )
    )
      return;
    let did = 0;
    for (const m of ms) did += await m.round();
    for (const [m, w] of workers ?? []) if (ms.includes(m)) did += await w.runOnce();
    if (did === 0) await o.advance(50);
  }
  throw new Error(`epoch ${epoch} did not finish`);
}

function mergeWorkers(o: SwarmServer, ms: SimMiner[]): Map<SimMiner, MergeWorker> {
  const model = o.coord.cfg.model;
  const layouts = stageSpecs(model).map((s) => stageLayout(model, s).params);
  const opt = o.coord.cfg.run.optimizer;
  return new Map(
    ms.map((m) => [
      m,
      new MergeWorker({
        client: m.client,
        layout: (s) => layouts[s],
        adamw: { beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weight_decay },
      }),
    ]),
  );
}

describe('a 3-stage run over HTTP with simulated miners', () => {
  let o: SwarmServer;
  const all: SimMiner[] = [];
  afterAll(async () => {
    await Promise.all(all.map((m) => m.close()));
    await o.close();
  });

  it('trains and uploads epoch 0; without a merge the epoch is abandoned at the MERGING deadline, visibly', async () => {
    o = await startSwarmServer();
    const ms = await miners(o, 6);
    all.push(...ms);
    // Auto joiners fill the stages by cost: two each (the body, with two blocks, costs most).
    const stages = await Promise.all(ms.map(async (m) => (await m.join('auto')).stage));
    expect([0, 1, 2].map((s) => stages.filter((x) => x === s).length)).toEqual([2, 2, 2]);
    // The run and its hash are there for joiners.
    const run = await ms[0].client.get<{ name: string; config_hash: string; stages: number }>(
      '/v1/run',
    );
    expect(run).toMatchObject({ name: 'swarm-test', config_hash: o.configHash, stages: 3 });

    await trainEpoch(o, ms, 0);
    expect(o.coord.state.stages().map((s) => s.phase)).toEqual(['merging', 'merging', 'merging']);
    expect(ledger(o, 0)).toEqual({ uploaded: 24 });
    const grads = await o.store.list('runs/swarm-test/e0/grad/');
    expect(grads.length).toBeGreaterThanOrEqual(3);

    await o.advance(5_001);
    expect(ledger(o, 0)).toEqual({ 'dropped:merge_failed': 24 });
    const status = o.coord.status(o.clock.now);
    expect(status.epoch).toBe(1);
    expect(status.stages[0].note).toMatch(/epoch 0 abandoned: the merge did not finish/);
    expect(status.stages[0].manifest.epoch).toBe(0);
    // Prometheus sees the phases, the ledger and the miners (silent: the clock moved past their leases).
    const metrics = await (await request(`${o.url}/metrics`)).body.text();
    expect(metrics).toMatch(/iota_stage_phase\{stage="1",phase="training"\} 1/);
    expect(metrics).toMatch(/iota_stage_epoch\{stage="2"\} 1/);
    expect(metrics).toMatch(/iota_ledger_samples\{epoch="0",state="dropped:merge_failed"\} 24/);
    expect(metrics).toMatch(/iota_miners\{stage="0",state="silent"\} 2/);
    expect(metrics).toMatch(/iota_lease_expiries_total 0/);
    // Epoch 1 allocates again; its sample ids follow epoch 0's.
    const w = await ms[0].work(1);
    expect(w.items[0]).toMatchObject({ epoch: 1, samples: [8] });
  });

  it('returns the original reply to a repeated request id, and refuses a changed run config', async () => {
    const m = all[3];
    const id = newRequestId();
    const a = await m.client.post<WorkReply>('/v1/work', { max: 1 }, id);
    const b = await m.client.post<WorkReply>('/v1/work', { max: 1 }, id);
    expect(b.items.map((i) => i.lease)).toEqual(a.items.map((i) => i.lease));
    m.client.runHash = 'f'.repeat(64);
    expect((await refusal(m.work())).code).toBe('E_VERSION_MISMATCH');
    m.client.runHash = o.configHash;
  });

  it('refuses a call for a closed phase with 409 E_PHASE_CLOSED and changes nothing', async () => {
    const m = all[1];
    const before = o.repo.dump();
    const e = await refusal(
      m.client.post('/v1/gradient', {
        epoch: 1,
        stage: 1,
        size: 10,
        sha256: 'a'.repeat(64),
        partitions: ['b'.repeat(64)],
      }),
    );
    expect(e.status).toBe(409);
    expect(e.code).toBe('E_PHASE_CLOSED');
    expect(e.details).toMatchObject({ phase: 'TRAINING(1)' });
    expect(o.repo.dump()).toBe(before);
  });
});

describe('several epochs with a merge, a miner going silent and one joining mid-epoch', () => {
  let o: SwarmServer;
  const all: SimMiner[] = [];
  afterAll(async () => {
    await Promise.all(all.map((m) => m.close()));
    await o.close();
  });

  it('keeps the ledger adding up every epoch, through whole epochs with the real merge', async () => {
    o = await startSwarmServer({ merge: 'real' });
    const ms = await miners(o, 6);
    all.push(...ms);
    const workers = mergeWorkers(o, ms);
    await trainEpoch(o, ms, 0, workers);
    expect(ledger(o, 0)).toEqual({ merged: 24 });
    // Every stage trains epoch 1 on the weights the merge published.
    expect(
      o.coord.state.stages().map((s) => [s.epoch, s.phase, s.manifest.epoch, s.manifest.step]),
    ).toEqual([
      [1, 'training', 1, 1],
      [1, 'training', 1, 1],
      [1, 'training', 1, 1],
    ]);

    // Epoch 1: the second body miner takes work and goes silent holding it.
    const silent = ms.filter((m) => o.coord.state.member(m.id)!.stage === 1)[1];
    const others = ms.filter((m) => m !== silent);
    let taken: WorkReply | undefined;
    for (let r = 0; r < 100; r++) {
      for (const m of others) await m.round();
      if (o.coord.state.ledger.minerCredit(1, 1, silent.id) === 0) {
        await silent.round();
        continue;
      }
      taken = await silent.work(2);
      if (taken.items.length > 0) break;
    }
    if (!taken) throw new Error('the silent miner never got work');
    const creditedBefore = o.coord.state.ledger.minerCredit(1, 1, silent.id);
    expect(taken.items.length).toBeGreaterThan(0);
    expect(creditedBefore).toBeGreaterThan(0);
    const live = others;
    // A new miner joins mid-epoch and gets work in this epoch.
    const late = new SimMiner(o.url, o.coord.cfg.name, undefined, () => o.clock.now);
    all.push(late);
    workers.set(late, mergeWorkers(o, [late]).get(late)!);
    await late.register('late');
    expect((await late.join(1)).epoch).toBe(1);
    await o.advance(5_001); // the silent miner's leases expire
    for (const m of live) await m.client.post('/v1/heartbeat', {});
    let lateGot = 0;
    for (let r = 0; r < 100 && lateGot === 0; r++) {
      const w = await late.work(1);
      lateGot += w.items.filter((i) => i.epoch === 1).length;
      for (const it of w.items) await late.complete(it);
      for (const m of live) await m.round();
    }
    expect(lateGot).toBeGreaterThan(0);
    // The silent miner's leased items were offered again to others.
    for (const it of taken.items)
      expect(o.coord.state.task(it.item, it.stage, it.kind)!.lease).not.toBe(it.lease);
    await trainEpoch(o, [...live, late], 1, workers);
    const l1 = ledger(o, 1);
    expect(sum(l1)).toBe(24);
    expect(l1.lost_with_miner ?? 0).toBe(creditedBefore);
    expect(l1.merged).toBe(24 - creditedBefore);
    await trainEpoch(o, [...live, late], 2, workers);
    expect(ledger(o, 2)).toEqual({ merged: 24 });
    expect(o.coord.state.stages().map((s) => s.manifest.step)).toEqual([3, 3, 3]);
  });
});
