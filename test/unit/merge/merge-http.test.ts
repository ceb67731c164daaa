/**
 * The merge end to end over HTTP: simulated miners (no model) train a one-stage run to its
 * UPLOADING phase with known gradient sums, then merge with MergeWorker; the published weights
 * are compared with one optimizer step on the mean gradient of all samples.
 */
import { request } from 'undici';
import { stageSpecs } from '../../../src/config/model.js';
import { decodePartition, parseManifest, partitionSize } from '../../../src/merge/manifest.js';
import { MergeWorker, type MergeWorkerOptions } from '../../../src/merge/worker.js';
import { encodeGradient } from '../../../src/merge/gradient.js';
import { OwnCopies } from '../../../src/merge/own-copies.js';
import { adamwUpdate, clipFactor } from '../../../src/model/optimizer.js';
import { stageLayout } from '../../../src/model/params.js';
import { learningRate } from '../../../src/model/schedule.js';
import { optimStateSize } from '../../../src/merge/update.js';
import { refusal } from '../../support/orchestrator.js';
import { relErr } from '../../support/model.js';
import { SimMiner } from '../../support/sim-miner.js';
import { startSwarmServer, type SwarmServer } from '../../support/swarm-server.js';

interface Setup {
  o: SwarmServer;
  miners: SimMiner[];
}

const servers: SwarmServer[] = [];
const clients: SimMiner[] = [];
afterAll(async () => {
  await Promise.all(clients.map((m) => m.close()));
  await Promise.all(servers.map((o) => o.close()));
});

async function toMerging(
  k: number,
  optimizer: Record<string, number>,
  prepare?: (m: SimMiner, i: number) => void,
): Promise<Setup> {
  const o = await startSwarmServer({
    merge: 'real',
    stages: '[[-1, -1]]',
    runOver: {
      samples_per_epoch: 8,
      in_flight: 4,
      optimizer: { lr: 0.01, ...optimizer },
      merge: { partition_bytes: 65536, replicas: 2, max_sample_grad_norm: 1e4 },
      phases: { drain_s: 30, upload_s: 30, merge_s: 120, lease_s: 5 },
    },
  });
  servers.push(o);
  const miners: SimMiner[] = [];
  for (let i = 0; i < k; i++) {
    const m = new SimMiner(o.url, o.coord.cfg.name, undefined, () => o.clock.now);
    clients.push(m);
    await m.register(`m${i}`);
    await m.join(0);
    prepare?.(m, i);
    miners.push(m);
  }
  for (let r = 0; r < 100 && o.coord.state.stage(0).phase !== 'merging'; r++) {
    for (const m of miners) await m.round(2);
  }
  expect(o.coord.state.stage(0).phase).toBe('merging');
  return { o, miners };
}

function worker(o: SwarmServer, m: SimMiner, extra: Partial<MergeWorkerOptions> = {}): MergeWorker {
  const run = o.coord.cfg.run;
  const layout = stageLayout(o.coord.cfg.model, stageSpecs(o.coord.cfg.model)[0]).params;
  return new MergeWorker({
    client: m.client,
    layout: () => layout,
    adamw: {
      beta1: run.optimizer.beta1,
      beta2: run.optimizer.beta2,
      eps: run.optimizer.eps,
      weightDecay: run.optimizer.weight_decay,
    },
    ...extra,
  });
}

async function mergeUntilDone(o: SwarmServer, workers: MergeWorker[], rounds = 40): Promise<void> {
  for (let r = 0; r < rounds && o.coord.state.stage(0).epoch === 0; r++) {
    for (const w of workers) await w.runOnce();
    await o.pump();
  }
}

async function weightsOf(o: SwarmServer, epoch: number): Promise<Float32Array> {
  const ref = o.coord.state.stage(0).manifest;
  expect(ref.epoch).toBe(epoch);
  const manifest = parseManifest(await o.store.get(ref.key));
  const w = new Float32Array(manifest.params);
  for (const p of manifest.partitions)
    w.set(decodePartition(await o.store.get(p.key), p.length), p.offset);
  return w;
}

/** One optimizer step on the mean gradient of the included miners' sums, from w0 (m = v = 0). */
async function oracle(
  o: SwarmServer,
  w0: Float32Array,
  included: SimMiner[],
): Promise<Float32Array> {
  const credits = new Map(
    o.coord.state.ledger
      .rows(0)
      .filter((r) => r.miner)
      .map((r) => [r.miner!, 0]),
  );
  for (const r of o.coord.state.ledger.rows(0))
    if (r.miner) credits.set(r.miner, credits.get(r.miner)! + 1);
  const N = included.reduce((a, m) => a + credits.get(m.id)!, 0);
  const sorted = [...included].sort((a, b) => (a.id < b.id ? -1 : 1));
  const g = new Float32Array(w0.length);
  for (let j = 0; j < g.length; j++) {
    let s = 0;
    for (const m of sorted) s += m.gradients.get('0/0')![j];
    g[j] = s / N;
  }
  let norm2 = 0;
  for (const x of g) norm2 += x * x;
  const run = o.coord.cfg.run;
  const w = Float32Array.from(w0);
  const layout = stageLayout(o.coord.cfg.model, stageSpecs(o.coord.cfg.model)[0]).params;
  adamwUpdate(
    { w, g, m: new Float32Array(w.length), v: new Float32Array(w.length), offset: 0 },
    layout,
    {
      lr: learningRate(0, run.optimizer.lr, run.schedule),
      beta1: run.optimizer.beta1,
      beta2: run.optimizer.beta2,
      eps: run.optimizer.eps,
      weightDecay: run.optimizer.weight_decay,
    },
    1,
    clipFactor(Math.sqrt(norm2), run.optimizer.clip),
  );
  return w;
}

describe('the merge over HTTP', () => {
  for (const [name, clip] of [
    ['inactive', 0],
    ['active', 0.01],
  ] as const) {
    it(`k = 4, r = 2: the new weights are one optimizer step on the mean gradient of all samples (clip ${name})`, async () => {
      const { o, miners } = await toMerging(4, { clip });
      const w0 = await weightsOf(o, 0);
      await mergeUntilDone(
        o,
        miners.map((m) => worker(o, m)),
      );
      expect(o.coord.state.stage(0)).toMatchObject({ epoch: 1, phase: 'training' });
      const w1 = await weightsOf(o, 1);
      expect(relErr(w1, await oracle(o, w0, miners))).toBeLessThanOrEqual(1e-6);
      expect(relErr(w1, w0)).toBeGreaterThan(1e-4); // the step did something
      const m = o.merge!.state.merge(0, 0)!;
      if (clip > 0) expect(m.clip_factor!).toBeLessThan(1);
      else expect(m.clip_factor).toBe(1);
      expect(o.merge!.state.faults(0, 0)).toEqual([]);
      // The ledger: every sample merged.
      expect(o.coord.state.ledger.counts(0)).toEqual([
        { epoch: 0, stage: 0, state: 'merged', samples: 8 },
      ]);
      // Metrics: the busiest merger read every participant's slice of its partitions (about r W)
      // and then the new weights W; no optimizer state exists before the first step.
      const metrics = await (await request(`${o.url}/metrics`)).body.text();
      const down = Number(
        /iota_merge_miner_bytes_over_w\{stage="0",direction="down"\} ([\d.e+-]+)/.exec(metrics)![1],
      );
      const plan = m.plan;
      const perMiner = plan.participants.map(
        (q) =>
          plan.partitions
            .filter((p) => p.mergers.includes(q.miner))
            .reduce((a, p) => a + p.length * plan.participants.length, 0) /
            plan.params +
          1,
      );
      expect(down).toBeCloseTo(Math.max(...perMiner), 6);
    });
  }

  it('k = 2, r = 2 with own copies: a merger downloads only the other participant’s slices and each partition is uploaded once; the result is the same', async () => {
    const { o, miners } = await toMerging(2, { clip: 1 });
    const w0 = await weightsOf(o, 0);
    const plan = o.merge!.state.merge(0, 0)!.plan;
    const copies = miners.map((m) => {
      const c = new OwnCopies();
      const key = plan.participants.find((q) => q.miner === m.id)!.key;
      c.gradient(key, 0, encodeGradient(m.gradients.get('0/0')!));
      return c;
    });
    // One copy is damaged: that merger must notice (hash) and download its own slices instead.
    const damaged = new OwnCopies();
    const bytes = encodeGradient(miners[1].gradients.get('0/0')!);
    bytes[bytes.length - 1] ^= 1;
    damaged.gradient(plan.participants.find((q) => q.miner === miners[1].id)!.key, 0, bytes);
    // w_0 comes from each merger's replica, as in the miner: only gradient slices are read.
    const workers = [
      worker(o, miners[0], { copies: copies[0], replica: () => w0 }),
      worker(o, miners[1], { copies: damaged, replica: () => w0 }),
    ];
    await mergeUntilDone(o, workers);
    expect(o.coord.state.stage(0).epoch).toBe(1);
    expect(relErr(await weightsOf(o, 1), await oracle(o, w0, miners))).toBeLessThanOrEqual(1e-6);
    expect(o.merge!.state.faults(0, 0)).toEqual([]);
    // Each merger reduced every partition: the first downloaded only the other's slices...
    const gradientBytes = 4 * plan.params;
    expect(workers[0].bytesDown).toBe(gradientBytes);
    expect(copies[0].bytesSaved).toBe(gradientBytes);
    // ...the second also its own slice of the last partition, where its copy's damaged byte is.
    const last = plan.partitions[plan.partitions.length - 1];
    expect(workers[1].bytesDown).toBe(gradientBytes + 4 * last.length);
    // Step 2: each partition was uploaded once, by its writer; its witness reported the hashes.
    const manifest1 = parseManifest(await o.store.get(o.coord.state.stage(0).manifest.key));
    const once = manifest1.partitions.reduce((a, p) => a + p.size + p.optim!.size, 0);
    expect(workers[0].bytesUp + workers[1].bytesUp).toBe(once);
    expect(Math.min(workers[0].bytesUp, workers[1].bytesUp)).toBeGreaterThan(0);
    for (const p of manifest1.partitions) {
      const writer = p.key.split('/').at(-1)!.replace('.safetensors', '');
      const witness = miners.find((x) => x.id !== writer)!.id;
      expect(await o.store.head(o.merge!.outputKeys(0, 0, p.index, witness).w)).toBeUndefined();
    }
    // Both now hold the step-2 outputs of every partition (weights and moments of epoch 1).
    for (const c of [copies[0], damaged]) {
      const manifest = parseManifest(await o.store.get(o.coord.state.stage(0).manifest.key));
      for (const p of manifest.partitions) {
        expect(c.whole(p.sha256)).toEqual(await o.store.get(p.key));
        expect(c.whole(p.optim!.sha256)).toEqual(await o.store.get(p.optim!.key));
      }
      c.keepFrom(1); // the weights of epoch 1 are loaded: only their moments are kept
      for (const p of manifest.partitions) {
        expect(c.whole(p.sha256)).toBeUndefined();
        expect(c.whole(p.optim!.sha256)).toBeDefined();
      }
      c.keepFrom(2);
      expect(c.heldBytes).toBe(0);
    }
  });

  it('re-assigns a merger that dies between the steps, and out-votes a merger that uploads altered weights', async () => {
    const { o, miners } = await toMerging(4, { clip: 1 });
    const w0 = await weightsOf(o, 0);
    const [a, b, dying, liar] = miners;
    const workers = [
      worker(o, a),
      worker(o, b),
      worker(o, dying),
      worker(o, liar, {
        tamper: { update: (u) => ({ ...u, w: u.w.map((x, i) => (i === 0 ? x + 1e-3 : x)) }) },
      }),
    ];
    // Step 1 for everyone; then the dying merger stops.
    for (let r = 0; r < 5 && o.merge!.state.merge(0, 0)!.step === 1; r++)
      for (const w of workers) await w.runOnce();
    expect(o.merge!.state.merge(0, 0)!.step).toBe(2);
    o.clock.now += 6000; // the dying miner's silence passes its lease time; the others say they live
    for (const m of [a, b, liar]) await m.client.post('/v1/heartbeat', {});
    await o.advance(1);
    const reassigned = o
      .merge!.state.jobs(o.merge!.state.merge(0, 0)!, 2)
      .filter((j) => j.merger === dying.id);
    expect(reassigned.length).toBeGreaterThan(0);
    expect(reassigned.every((j) => j.state === 'reassigned')).toBe(true);
    // Each replacement takes the dead merger's part: it writes where the dead one was to write.
    const jobs2 = o.merge!.state.jobs(o.merge!.state.merge(0, 0)!, 2);
    for (const dead of reassigned) {
      const live = jobs2.filter((j) => j.partition === dead.partition && j.state !== 'reassigned');
      expect(live.filter((j) => j.writes === 1)).toHaveLength(1);
    }
    await mergeUntilDone(o, [workers[0], workers[1], workers[3]]);
    expect(o.coord.state.stage(0).epoch).toBe(1);
    expect(relErr(await weightsOf(o, 1), await oracle(o, w0, miners))).toBeLessThanOrEqual(1e-6);
    const faults = o.merge!.state.faults(0, 0);
    expect(faults.length).toBeGreaterThan(0);
    expect(faults.every((f) => f.miner === liar.id && f.kind === 'merge_mismatch')).toBe(true);
  });

  it('k = 2: when one merger dies between the steps the orchestrator takes its part, writer or witness, and writes it', async () => {
    const { o, miners } = await toMerging(2, { clip: 1 });
    const w0 = await weightsOf(o, 0);
    const [live, dying] = miners;
    const workers = [worker(o, live), worker(o, dying)];
    for (let r = 0; r < 5 && o.merge!.state.merge(0, 0)!.step === 1; r++)
      for (const w of workers) await w.runOnce();
    expect(o.merge!.state.merge(0, 0)!.step).toBe(2);
    const parts = o
      .merge!.state.jobs(o.merge!.state.merge(0, 0)!, 2)
      .filter((j) => j.merger === dying.id);
    expect(new Set(parts.map((j) => j.writes))).toEqual(new Set([0, 1])); // it wrote some, witnessed others
    o.clock.now += 6000;
    await live.client.post('/v1/heartbeat', {});
    await o.advance(1);
    const orch = o
      .merge!.state.jobs(o.merge!.state.merge(0, 0)!, 2)
      .filter((j) => j.merger !== live.id && j.merger !== dying.id);
    expect(orch).toHaveLength(parts.length);
    expect(orch.every((j) => j.writes === 1)).toBe(true);
    await mergeUntilDone(o, [workers[0]]);
    expect(o.coord.state.stage(0).epoch).toBe(1);
    expect(relErr(await weightsOf(o, 1), await oracle(o, w0, miners))).toBeLessThanOrEqual(1e-6);
    expect(o.merge!.state.faults(0, 0)).toEqual([]);
  });

  it('excludes a participant whose gradient norm is absurd, and merges the others', async () => {
    const { o, miners } = await toMerging(4, { clip: 1 }, (m, i) => {
      if (i === 1) m.makeGradient = (params) => new Float32Array(params).fill(1e9);
    });
    const w0 = await weightsOf(o, 0);
    await mergeUntilDone(
      o,
      miners.map((m) => worker(o, m)),
    );
    expect(o.coord.state.stage(0).epoch).toBe(1);
    const bad = miners[1];
    expect(o.merge!.state.merge(0, 0)!.excluded).toEqual({ [bad.id]: 'gradient_norm' });
    expect(
      relErr(
        await weightsOf(o, 1),
        await oracle(
          o,
          w0,
          miners.filter((m) => m !== bad),
        ),
      ),
    ).toBeLessThanOrEqual(1e-6);
    const ledger = Object.fromEntries(
      o.coord.state.ledger.counts(0).map((r) => [r.state, r.samples]),
    );
    expect(ledger['dropped:gradient_norm']).toBeGreaterThan(0);
    expect(ledger.merged + ledger['dropped:gradient_norm']).toBe(8);
  });

  it('re-plans without a participant whose gradient cannot be read (E_INPUT_UNAVAILABLE, checked by the orchestrator)', async () => {
    const { o, miners } = await toMerging(3, { clip: 1 });
    const w0 = await weightsOf(o, 0);
    const lost = miners[2];
    await o.store.delete(o.coord.uploads.key(0, 0, lost.id));
    await mergeUntilDone(
      o,
      miners.map((m) => worker(o, m)),
    );
    expect(o.coord.state.stage(0).epoch).toBe(1);
    expect(o.merge!.state.merge(0, 0)!.excluded).toEqual({ [lost.id]: 'input_unavailable' });
    expect(o.merge!.state.faults(0, 0).map((f) => [f.miner, f.kind])).toContainEqual([
      lost.id,
      'input_unavailable',
    ]);
    expect(
      relErr(
        await weightsOf(o, 1),
        await oracle(
          o,
          w0,
          miners.filter((m) => m !== lost),
        ),
      ),
    ).toBeLessThanOrEqual(1e-6);
  });

  it('merges what is missing itself when the deadline nears and nobody did it', async () => {
    const { o, miners } = await toMerging(2, { clip: 1 });
    const w0 = await weightsOf(o, 0);
    o.clock.now += 100_000; // 120 s phase: past 80% of it, with no merger at work
    for (let i = 0; i < 5 && o.coord.state.stage(0).epoch === 0; i++) await o.advance(1);
    expect(o.coord.state.stage(0)).toMatchObject({ epoch: 1, phase: 'training' });
    expect(relErr(await weightsOf(o, 1), await oracle(o, w0, miners))).toBeLessThanOrEqual(1e-6);
  });

  it('works with k = 1 (one merger, no replica)', async () => {
    const { o, miners } = await toMerging(1, { clip: 1 });
    const w0 = await weightsOf(o, 0);
    await mergeUntilDone(o, [worker(o, miners[0])]);
    expect(o.coord.state.stage(0).epoch).toBe(1);
    expect(relErr(await weightsOf(o, 1), await oracle(o, w0, miners))).toBeLessThanOrEqual(1e-6);
  });

  it('defect 1: a merger that forges its step-1 norms is out-voted; nobody honest is excluded', async () => {
    const { o, miners } = await toMerging(2, { clip: 1 });
    const w0 = await weightsOf(o, 0);
    // The forger has the lowest key id, whose results were once taken first.
    const [forger, honest] = [...miners].sort((a, b) => (a.id < b.id ? -1 : 1));
    const workers = [
      worker(o, forger, {
        tamper: {
          reduction: (r) => ({
            ...r,
            norm2: 0, // would switch clipping off
            sliceNorms2: { ...r.sliceNorms2, [honest.id]: 1e30 }, // would exclude the honest one
          }),
        },
      }),
      worker(o, honest),
    ];
    await mergeUntilDone(o, workers);
    expect(o.coord.state.stage(0).epoch).toBe(1);
    expect(o.merge!.state.merge(0, 0)!.excluded).toEqual({});
    expect(relErr(await weightsOf(o, 1), await oracle(o, w0, miners))).toBeLessThanOrEqual(1e-6);
    const faults = o.merge!.state.faults(0, 0);
    expect(faults.length).toBeGreaterThan(0);
    expect(faults.every((f) => f.miner === forger.id && f.kind === 'merge_mismatch')).toBe(true);
    expect(o.coord.state.ledger.counts(0).map((r) => r.state)).toEqual(['merged']);
  });

  it('defect 1: a lone merger’s step-1 numbers are checked by the orchestrator', async () => {
    const { o, miners } = await toMerging(1, { clip: 1 });
    const w0 = await weightsOf(o, 0);
    const [lone] = miners;
    await mergeUntilDone(o, [
      worker(o, lone, { tamper: { reduction: (r) => ({ ...r, norm2: 0 }) } }),
    ]);
    expect(o.coord.state.stage(0).epoch).toBe(1);
    expect(relErr(await weightsOf(o, 1), await oracle(o, w0, miners))).toBeLessThanOrEqual(1e-6);
    expect(o.merge!.state.faults(0, 0).map((f) => [f.miner, f.kind])).toContainEqual([
      lone.id,
      'merge_mismatch',
    ]);
  });

  it('defect 4: the orchestrator excludes a participant whose stored gradient became unusable, and never retries it', async () => {
    const { o, miners } = await toMerging(3, { clip: 1 });
    const w0 = await weightsOf(o, 0);
    const broken = miners[1];
    const key = o.coord.uploads.key(0, 0, broken.id);
    await o.store.put(key, (await o.store.get(key)).subarray(0, 100)); // cut short behind our back
    o.clock.now += 100_000; // past 80% of the merge's time: the orchestrator merges it all
    for (let i = 0; i < 6 && o.coord.state.stage(0).epoch === 0; i++) await o.advance(1);
    expect(o.coord.state.stage(0)).toMatchObject({ epoch: 1, phase: 'training' });
    expect(o.merge!.state.merge(0, 0)!.excluded).toEqual({ [broken.id]: 'input_unavailable' });
    expect(o.merge!.state.faults(0, 0).map((f) => [f.miner, f.kind])).toContainEqual([
      broken.id,
      'input_unavailable',
    ]);
    const others = miners.filter((m) => m !== broken);
    expect(relErr(await weightsOf(o, 1), await oracle(o, w0, others))).toBeLessThanOrEqual(1e-6);
  });

  it('defect 3: a merger may upload only the partitions it writes, at exactly their size', async () => {
    const { o, miners } = await toMerging(2, { clip: 1 });
    const workers = miners.map((m) => worker(o, m));
    for (let r = 0; r < 5 && o.merge!.state.merge(0, 0)!.step === 1; r++)
      for (const w of workers) await w.runOnce();
    const m = o.merge!.state.merge(0, 0)!;
    expect(m.step).toBe(2);
    const mine = o.merge!.state.jobs(m, 2).filter((j) => j.merger === miners[0].id);
    const job = mine.find((j) => j.writes === 1)!;
    const witnessed = mine.find((j) => j.writes === 0)!;
    const p = m.plan.partitions[job.partition];
    const out = o.merge!.outputKeys(0, 0, job.partition, miners[0].id);
    const ask = (kind: 'merged' | 'optimizer', key: string, size: number) =>
      miners[0].client.post('/v1/storage/upload', { kind, key, size, sha256: 'a'.repeat(64) });
    const before = o.repo.dump();
    // A partition it witnesses (the other miner writes it): no upload at all.
    const q = m.plan.partitions[witnessed.partition];
    const notMine = await refusal(
      ask(
        'merged',
        o.merge!.outputKeys(0, 0, q.index, miners[0].id).w,
        partitionSize(q.length, q.offset),
      ),
    );
    expect(notMine.code).toBe('E_NOT_YOUR_PREFIX');
    const wrong = await refusal(ask('merged', out.w, partitionSize(p.length, p.offset) + 1));
    expect(wrong.code).toBe('E_BAD_SIZE');
    expect((await refusal(ask('optimizer', out.optim, 64 * 2 ** 20))).code).toBe('E_BAD_SIZE');
    expect(o.repo.dump()).toBe(before);
    await ask('merged', out.w, partitionSize(p.length, p.offset));
    await ask('optimizer', out.optim, optimStateSize(p.length, p.offset));
  });
});
