/**
 * `npm run bench -- merge [--ks 2,4,8,16] [--params N] [--json]`: merges a stage of W bytes
 * for k simulated miners over the local object store, in this process: an orchestrator on
 * loopback and k MergeWorkers with signed clients, exactly as miners run them. The stage is
 * brought to MERGING through the coordinator directly (one credited sample and one random
 * gradient sum per miner); two merges run, and the second (which also reads optimizer state)
 * is measured: per-miner bytes downloaded and uploaded relative to W, and wall time. Each
 * worker keeps its own copies (its gradient sum, what it computed in step 2) as a miner does,
 * and then loads the new weights as a miner does: only the partitions it did not compute.
 * Target: per-miner download <= (k - 1) r W / k (the others' slices) + (1 - r / k) W (weights
 * it did not compute) + 2 r W / k (moments at most) = (r + 1) W, +2%.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadRunConfig, stageSpecs } from '../src/config/index.js';
import { encodeGradient, partitionHashes } from '../src/merge/gradient.js';
import { decodePartition, parseManifest, partitionElements } from '../src/merge/manifest.js';
import { MergeWorker } from '../src/merge/worker.js';
import { OwnCopies } from '../src/merge/own-copies.js';
import { stageLayout } from '../src/model/params.js';
import { validateConfig } from '../src/config/load.js';
import { assembleOrchestrator } from '../src/orchestrator/assemble.js';
import { Repository } from '../src/orchestrator/state/repository.js';
import type { Coordinator } from '../src/orchestrator/swarm/coordinator.js';
import { SignedClient } from '../src/protocol/client.js';
import { newIdentity } from '../src/protocol/keys.js';
import { LocalStore } from '../src/store/index.js';

interface Result {
  k: number;
  partitions: number;
  download_over_w: number;
  upload_over_w: number;
  target_download_over_w: number;
  seconds: number;
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ks: { type: 'string', default: '2,4,8,16' },
      dim: { type: 'string', default: '256' },
      json: { type: 'boolean', default: false },
    },
  });
  const ks = values.ks.split(',').map(Number);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const results: Result[] = [];
  let W = 0;
  for (const k of ks) {
    const r = await mergeOnce(k, Number(values.dim), log);
    W = r.W;
    results.push(r.result);
    const x = r.result;
    log(
      `k=${k}: ${x.partitions} partitions, per-miner download ${x.download_over_w.toFixed(3)} W (target <= ${x.target_download_over_w.toFixed(3)} W), upload ${x.upload_over_w.toFixed(3)} W, ${x.seconds.toFixed(2)} s`,
    );
  }
  const ok = results.every((x) => x.download_over_w <= x.target_download_over_w * 1.02);
  log(`W = ${(W / 2 ** 20).toFixed(1)} MiB; target ${ok ? 'met' : 'MISSED'} for every k`);
  if (values.json)
    process.stdout.write(
      `${JSON.stringify({ bench: 'merge', r: 2, w_bytes: W, results, target_met: ok })}\n`,
    );
}

async function mergeOnce(
  k: number,
  dim: number,
  log: (s: string) => void,
): Promise<{ W: number; result: Result }> {
  const dir = mkdtempSync(join(tmpdir(), 'iota-bench-merge-'));
  mkdirSync(join(dir, 'corpus'));
  writeFileSync(
    join(dir, 'corpus', 'a.txt'),
    'the swarm merges its gradients partition by partition. '.repeat(2000),
  );
  const modelYaml = readFileSync('configs/tiny.yaml', 'utf8')
    .replace(/^stages:.*$/m, 'stages: [[-1, -1]]')
    .replace(/^dim:.*$/m, `dim: ${dim}`)
    .replace(/^ffn_dim:.*$/m, `ffn_dim: ${Math.round((dim * 8) / 3 / 16) * 16}`);
  writeFileSync(join(dir, 'model.yaml'), modelYaml);
  // Partitions: 256 of them, so every k here divides the 2 x 256 merge slots evenly.
  writeFileSync(
    join(dir, 'probe.yaml'),
    JSON.stringify({
      name: 'm',
      model: 'model.yaml',
      samples_per_epoch: k,
      optimizer: { lr: 0.001 },
      schedule: { total_epochs: 10 },
    }),
  );
  const probe = loadRunConfig(join(dir, 'probe.yaml'));
  const params = stageLayout(probe.model, stageSpecs(probe.model)[0]).size;
  const partitionBytes = Math.max(4096, 4 * Math.ceil(params / 256));
  const runFile = join(dir, 'run.yaml');
  writeFileSync(
    runFile,
    JSON.stringify({
      name: 'merge-bench',
      model: 'model.yaml',
      seed: 1,
      samples_per_epoch: k,
      batch: 1,
      in_flight: 1,
      data: { corpus: join(dir, 'corpus'), dir: join(dir, 'data') },
      optimizer: { lr: 0.001, clip: 1 },
      schedule: { total_epochs: 10 },
      phases: { drain_s: 600, upload_s: 600, merge_s: 600, lease_s: 600, required_fraction: 1 },
      merge: { partition_bytes: partitionBytes, replicas: 2 },
    }),
  );
  const { run, model } = loadRunConfig(runFile);
  const repo = Repository.open(join(dir, 'state.db'));
  let base = '';
  const store = await LocalStore.open({ root: join(dir, 'store'), baseUrl: () => base });
  const layout = stageLayout(model, stageSpecs(model)[0]).params;
  const orch = await assembleOrchestrator({
    node: validateConfig('node', { validators: [], admins: [] }, 'bench'),
    repo,
    store,
    version: 'bench',
    run: { run, model },
    rateLimits: { keyPerSecond: 1e6, keyBurst: 1e6, exemptLoopback: true },
    validation: false,
  });
  const coord = orch.swarm!.coordinator;
  const change = <T>(fn: () => T) => orch.ctx.commit(fn);
  base = await orch.app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const W = params * 4;
    const clients = Array.from(
      { length: k },
      () => new SignedClient({ baseUrl: base, identity: newIdentity(), run: run.name, retries: 2 }),
    );
    for (const c of clients) await c.post('/v1/register', { version: 'bench' });
    const ids = clients.map((c) => c.o.identity.id);
    await change(() => ids.forEach((id) => coord.join(id, 0, Date.now())));
    const copies = ids.map(() => new OwnCopies());
    let measured: Result | undefined;
    for (let epoch = 0; epoch < 2; epoch++) {
      const weights = await currentWeights(coord, store);
      // One credited sample per miner, then its gradient sum, straight into the state and store.
      for (const id of ids) {
        const w = await change(() => coord.work(id, 1, Date.now()));
        await change(() =>
          coord.report(id, { lease: w.items[0].lease, losses: [3] }, undefined, Date.now()),
        );
      }
      await orch.tick();
      for (const [i, id] of ids.entries()) {
        const g = new Float32Array(params).map(() => Math.random() - 0.5);
        const bytes = encodeGradient(g);
        const key = coord.uploads.key(epoch, 0, id);
        const info = await store.put(key, bytes);
        copies[i].gradient(key, epoch, bytes);
        await change(() =>
          coord.uploads.accept(
            id,
            epoch,
            0,
            {
              size: info.size,
              sha256: info.sha256!,
              partitions: partitionHashes(bytes, params, partitionElements(partitionBytes)),
            },
            info,
            Date.now(),
          ),
        );
      }
      if (coord.state.stage(0).phase !== 'merging')
        throw new Error(`stage 0 is ${coord.state.stage(0).phase}, not merging`);
      const opt = run.optimizer;
      const workers = clients.map(
        (client, i) =>
          new MergeWorker({
            copies: copies[i],
            client,
            layout: () => layout,
            adamw: {
              beta1: opt.beta1,
              beta2: opt.beta2,
              eps: opt.eps,
              weightDecay: opt.weight_decay,
            },
            replica: () => weights,
          }),
      );
      const t0 = performance.now();
      while (coord.state.stage(0).epoch === epoch) {
        await Promise.all(workers.map((w) => w.runOnce()));
        await orch.swarm!.referee!.pump();
      }
      const seconds = (performance.now() - t0) / 1000;
      // Each miner then loads the new weights: the partitions it did not compute itself.
      const manifest = parseManifest(await store.get(coord.state.stage(0).manifest.key));
      const down = Math.max(
        ...workers.map(
          (w, i) =>
            w.bytesDown +
            manifest.partitions
              .filter((p) => copies[i].whole(p.sha256) === undefined)
              .reduce((a, p) => a + p.size, 0),
        ),
      );
      copies.forEach((c) => c.keepFrom(epoch + 1));
      const up =
        Math.max(...workers.map((w) => w.bytesUp)) + encodeGradient(new Float32Array(0)).length + W;
      const r = Math.min(2, k);
      measured = {
        k,
        partitions: manifest.partitions.length,
        download_over_w: down / W,
        upload_over_w: up / W,
        target_download_over_w: r + 1,
        seconds,
      };
      log(`  epoch ${epoch}: merged in ${seconds.toFixed(2)} s`);
    }
    for (const c of clients) await c.close();
    return { W, result: measured! };
  } finally {
    await orch.close();
    repo.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function currentWeights(coord: Coordinator, store: LocalStore): Promise<Float32Array> {
  const manifest = parseManifest(await store.get(coord.state.stage(0).manifest.key));
  const w = new Float32Array(manifest.params);
  for (const p of manifest.partitions)
    w.set(decodePartition(await store.get(p.key), p.length), p.offset);
  return w;
}
