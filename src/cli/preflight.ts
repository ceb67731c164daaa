/**
 * `iota doctor --orchestrator URL`: can this machine keep up in that run? It trains each of the
 * run's stages here (forward and backward of one work item, on the run's shapes), measures its
 * link to the run's object store (a scratch object of its own, uploaded and read back through
 * the URLs the orchestrator issues), and compares both with the run's deadlines and the
 * swarm's current capacities: whether it keeps up, where it would help most, what limits it.
 */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { stageSpecs, type ModelConfig } from '../config/model.js';
import type { RunConfig } from '../config/run.js';
import { Stage } from '../model/stage.js';
import { SignedClient } from '../protocol/client.js';
import { newIdentity, readKeyFile } from '../protocol/keys.js';
import type { SwarmStatus } from '../protocol/swarm-messages.js';
import { uploadObject } from '../protocol/upload.js';
import { describeUpload, download } from '../store/index.js';
import { keys } from '../store/keys.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

export interface StageFit {
  stage: number;
  /** samples per second this machine trains the stage at (forward and backward) */
  samples_per_s: number;
  /** seconds of compute per work item (`batch` samples) */
  item_s: number;
  /** seconds moving an item's activations and gradients (both ways, with the round trips) */
  transfer_s: number;
  /** seconds uploading the stage's gradient sum at the epoch's end */
  gradient_upload_s: number;
  keeps_up: boolean;
  limit: 'compute' | 'bandwidth';
  /** the swarm's capacity at this stage now, samples/s */
  swarm_samples_per_s: number;
}

export interface Preflight {
  run: string;
  model: string;
  backend: string;
  batch: number;
  store: { latency_ms: number; upload_mb_per_s: number; download_mb_per_s: number };
  stages: StageFit[];
  verdict: { keeps_up: boolean; best_stage?: number; text: string };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Seconds one work item of `stage` takes here: forward and backward, median of `reps`. */
function timeStage(model: ModelConfig, index: number, batch: number, reps: number): number {
  const stage = Stage.initial(model, index, 1);
  const spec = stage.spec;
  const n = batch * model.seq;
  const ids = (mul: number) =>
    tf.tensor2d(
      Int32Array.from({ length: n }, (_, i) => (i * mul) % model.vocab_size),
      [batch, model.seq],
      'int32',
    );
  const input = spec.hasEmbedding
    ? ids(7919)
    : tf.randomNormal([batch, model.seq, model.bottleneck], 0, 1, 'float32', 1);
  const targets = ids(104729);
  const dy = spec.hasHead
    ? null
    : tf.randomNormal([batch, model.seq, model.bottleneck], 0, 1, 'float32', 2);
  const once = () => {
    const grads = new Float32Array(stage.layout.size);
    const t0 = performance.now();
    if (spec.hasHead) stage.tailStep(input, targets, grads).dx?.dispose();
    else {
      stage.forward(input).dispose();
      stage.backward(input, dy!, grads)?.dispose();
    }
    return (performance.now() - t0) / 1000;
  };
  try {
    once(); // warm-up: kernels, allocations
    return median(Array.from({ length: reps }, once));
  } finally {
    tf.dispose([input, targets, ...(dy ? [dy] : [])]);
    stage.dispose();
  }
}

/** Latency (a 1 KiB object) and bandwidth (4 MiB) to the run's store, both ways. */
async function timeStore(client: SignedClient, run: string, owner: string) {
  const key = keys.probe({ run, owner });
  const roundTrip = async (bytes: Uint8Array) => {
    const t0 = performance.now();
    await uploadObject(client, 'probe', key, bytes, describeUpload(bytes));
    const t1 = performance.now();
    const o = await client.get<{ url: string; sha256: string; size: number }>(
      `/v1/storage/download?key=${encodeURIComponent(key)}`,
    );
    await download(o.url, { sha256: o.sha256, size: o.size });
    return { up: (t1 - t0) / 1000, down: (performance.now() - t1) / 1000 };
  };
  const small = await roundTrip(randomBytes(1024));
  const bigBytes = 4 * 2 ** 20;
  const big = await roundTrip(randomBytes(bigBytes));
  const latency = (small.up + small.down) / 4; // each way is about two requests
  const mb = bigBytes / 1e6;
  return {
    latency_ms: latency * 1000,
    upload_mb_per_s: mb / Math.max(1e-3, big.up - 2 * latency),
    download_mb_per_s: mb / Math.max(1e-3, big.down - 2 * latency),
  };
}

export async function preflight(
  base: string,
  o: { key?: string; reps?: number; backend: string; log: (s: string) => void },
): Promise<Preflight> {
  const identity = o.key ? readKeyFile(o.key) : newIdentity();
  const client = new SignedClient({ baseUrl: base, identity, run: '' });
  try {
    const info = await client.get<{ run: string }>('/v1/info');
    (client.o as { run: string }).run = info.run;
    await client.post('/v1/register', {
      version: pkg.version,
      name: 'preflight',
      backend: o.backend,
    });
    const { run, model, params } = await client.get<{
      run: RunConfig;
      model: ModelConfig;
      params: number[];
    }>('/v1/run');
    o.log(`run ${info.run}: ${model.name}, ${params.length} stages, items of ${run.batch} samples`);
    const store = await timeStore(client, info.run, identity.id);
    o.log(
      `store: ${store.latency_ms.toFixed(0)} ms a request, ${store.upload_mb_per_s.toFixed(1)} MB/s up, ` +
        `${store.download_mb_per_s.toFixed(1)} MB/s down`,
    );
    const status = await client.get<SwarmStatus>('/v1/swarm');
    const bytesPerValue =
      run.activation_codec === 'f32' ? 4 : run.activation_codec === 'int8' ? 1 : 2;
    const act = run.batch * model.seq * model.bottleneck * bytesPerValue;
    const lat = store.latency_ms / 1000;
    const stages = stageSpecs(model).map((spec, s): StageFit => {
      const itemS = timeStage(model, s, run.batch, o.reps ?? 3);
      // An item: its input in, its output out (forward), then the gradient in, dx out (backward).
      const moves = (spec.hasEmbedding ? 1 : 2) + (spec.hasHead ? 0 : 2);
      const transferS =
        (moves * act) / 2 / (store.upload_mb_per_s * 1e6) +
        (moves * act) / 2 / (store.download_mb_per_s * 1e6) +
        4 * moves * lat;
      const gradientS = (params[s] * 4) / (store.upload_mb_per_s * 1e6);
      const keepsUp =
        itemS + transferS < run.phases.lease_s / 2 && gradientS < run.phases.upload_s / 2;
      const fit: StageFit = {
        stage: s,
        samples_per_s: run.batch / itemS,
        item_s: itemS,
        transfer_s: transferS,
        gradient_upload_s: gradientS,
        keeps_up: keepsUp,
        limit: itemS >= transferS ? 'compute' : 'bandwidth',
        swarm_samples_per_s: status.stages[s]?.capacity ?? 0,
      };
      o.log(
        `stage ${s}: ${fit.samples_per_s.toFixed(1)} samples/s here (${(itemS * 1000).toFixed(0)} ms an item, ` +
          `${(transferS * 1000).toFixed(0)} ms moving it), the swarm ${fit.swarm_samples_per_s.toFixed(1)}`,
      );
      return fit;
    });
    return {
      run: info.run,
      model: model.name,
      backend: tf.getBackend(),
      batch: run.batch,
      store,
      stages,
      verdict: verdict(stages, run),
    };
  } finally {
    await client.close();
  }
}

/** Whether it keeps up, the stage it helps most (the swarm's bottleneck it can serve), and why. */
export function verdict(stages: StageFit[], run: RunConfig): Preflight['verdict'] {
  const able = stages.filter((s) => s.keeps_up);
  if (able.length === 0) {
    const s = [...stages].sort((a, b) => a.item_s + a.transfer_s - (b.item_s + b.transfer_s))[0];
    return {
      keeps_up: false,
      text:
        `This machine cannot keep up: its fastest stage (${s.stage}) needs ` +
        `${(s.item_s + s.transfer_s).toFixed(1)} s an item against a lease of ${run.phases.lease_s} s ` +
        `(limited by ${s.limit === 'compute' ? 'its compute' : 'its link to the store'}).`,
    };
  }
  const best = [...able].sort(
    (a, b) => a.swarm_samples_per_s - b.swarm_samples_per_s || b.samples_per_s - a.samples_per_s,
  )[0];
  return {
    keeps_up: true,
    best_stage: best.stage,
    text:
      `This machine keeps up. It helps most at stage ${best.stage} (the swarm's slowest it can serve: ` +
      `${best.swarm_samples_per_s.toFixed(1)} samples/s now, +${best.samples_per_s.toFixed(1)} with it); ` +
      `it is limited by ${best.limit === 'compute' ? 'its compute' : 'its link to the store'}.`,
  };
}
