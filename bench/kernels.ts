/**
 * `npm run bench -- kernels [--shapes a,b,c,d,e] [--batch N] [--min-seconds S] [--no-torch]
 * [--profile] [--json]`:
 * the native CPU kernels against PyTorch on the same machine. For each shape, a stage (or the
 * whole model) trains forward + backward + AdamW here (backend `native`) and in PyTorch
 * (Debian's python3-torch, bench/torch_stage.py) with the same weights and inputs;
 * PyTorch gets its best of torch threads {1, T} x OpenBLAS threads {1, T} (T = iota's threads).
 * Prints tokens/s of each, the ratio, achieved GFLOP/s and the machine's sgemm GFLOP/s (the
 * ceiling). With --json the last line of stdout is one JSON object.
 *
 * Shapes (a) and (b) are one-block body stages (bottleneck decoder in, bottleneck block out);
 * (c) is configs/small.yaml's body stage (two blocks); (d) is the whole small model in one
 * graph (embedding, every block, the LM head over 50,257 tokens and the loss; a step is
 * Model.lossAndGrads and AdamW per stage, PyTorch's the same graph with F.cross_entropy);
 * (e) is shape a's stage at seq 64 and batch 1, where a step is short and fixed costs show.
 * A stage's step here is Stage.backward (which runs the forward inside tf.grads) plus the
 * project's AdamW, against PyTorch's forward and backward of <stage(x), dy>; a miner's
 * separate forward pass for the activations it sends on is not counted on either side. Each
 * side reports a median step time; PyTorch's is the best of its thread settings, ours the
 * better of one run before and one after PyTorch's (the project's VMs share their hosts:
 * bursts of 2x come and go).
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  headDim,
  loadModelConfig,
  validateConfig,
  type ModelConfig,
  type StageSpec,
} from '../src/config/index.js';
import { selectBackend } from '../src/kernels/backends.js';
import { startNativeProfile, stopNativeProfile } from '../src/kernels/native/index.js';
import { loadNative, packageRoot, type NativeAddon } from '../src/kernels/native/loader.js';
import { optimizerStep } from '../src/model/trainer.js';
import { crossEntropySum } from '../src/model/layers.js';
import { Model } from '../src/model/model.js';
import { Stage } from '../src/model/stage.js';
import { encodeSafetensors } from '../src/tensor-io/index.js';

const PYTHON = process.env.IOTA_PYTHON ?? '/usr/bin/python3';

interface Shape {
  about: string;
  config: ModelConfig;
  /** the stage trained, or 'model': every stage in one graph with the loss (no output gradient) */
  stage: number | 'model';
  /** overrides --batch */
  batch?: number;
}

function oneBlockStage(
  name: string,
  dim: number,
  heads: number,
  kvGroups: number,
  ffn: number,
  seq: number,
): ModelConfig {
  return validateConfig(
    'model',
    {
      name,
      tokenizer: 'byte',
      vocab_size: 256,
      dim,
      n_layers: 3,
      n_heads: heads,
      n_kv_groups: kvGroups,
      ffn_dim: ffn,
      bottleneck: 32,
      seq,
      rope_theta: 31250,
      rope_scaling: {
        factor: 32,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_context_length: 8192,
      },
      stages: [
        [-1, 1],
        [1, 2],
        [2, -1],
      ],
    },
    `bench shape ${name}`,
  );
}

function shapes(): Record<string, Shape> {
  return {
    a: {
      about: 'dim 512, 8 heads, 2 kv groups, ffn 1408, seq 256',
      config: oneBlockStage('a', 512, 8, 2, 1408, 256),
      stage: 1,
    },
    b: {
      about: 'dim 256, 4 heads, 2 kv groups, ffn 704, seq 128',
      config: oneBlockStage('b', 256, 4, 2, 704, 128),
      stage: 1,
    },
    c: {
      about: "configs/small.yaml's body stage (2 blocks), seq 128",
      config: loadModelConfig(join(packageRoot(), 'configs/small.yaml')),
      stage: 1,
    },
    d: {
      about: 'configs/small.yaml, the whole model (3 stages, vocabulary 50,257), seq 128',
      config: loadModelConfig(join(packageRoot(), 'configs/small.yaml')),
      stage: 'model',
    },
    e: {
      about: "shape a's stage at seq 64, batch 1 (latency-bound)",
      config: oneBlockStage('e', 512, 8, 2, 1408, 64),
      stage: 1,
      batch: 1,
    },
  };
}

/**
 * Matmul FLOPs of one training step, exact from the shapes: forward F (every linear, and the
 * full seq x seq attention products both sides compute), backward 2F (input and weight
 * gradients). Elementwise work is not counted.
 */
export function stageFlops(c: ModelConfig, spec: StageSpec, batch: number): number {
  const T = batch * c.seq;
  const d = c.dim;
  const kv = c.n_kv_groups * headDim(c);
  const n = spec.endBlock - spec.firstBlock;
  let forward = 0;
  for (let i = 0; i < n; i++) {
    if (i === 0 && spec.decodesInput) forward += 2 * T * c.bottleneck * d;
    forward += 2 * T * d * (2 * d + 2 * kv);
    forward += 2 * 2 * batch * c.n_heads * c.seq * c.seq * headDim(c);
    forward += 3 * 2 * T * d * c.ffn_dim;
    if (i === n - 1 && spec.encodesOutput) forward += 2 * T * d * c.bottleneck;
  }
  if (spec.hasHead) forward += 2 * T * d * c.vocab_size;
  return 3 * forward;
}

/** Best sgemm rate through the addon (n x n x n, the pool's threads): the ceiling for the rest. */
function sgemmGflops(addon: NativeAddon, n = 1024, seconds = 1): number {
  const a = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const b = Float32Array.from({ length: n * n }, (_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
  const c = new Float32Array(n * n);
  let best = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    const t = performance.now();
    addon.matmul(a, b, c, [], [], [], n, n, n, false, false);
    best = Math.max(best, (2 * n ** 3) / ((performance.now() - t) / 1000) / 1e9);
  }
  return best;
}

interface Timing {
  tokens_per_s: number;
  /** median over the timed steps */
  ms_per_step: number;
  steps: number;
}

const ADAMW = { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

/** What one timed step trains: a stage on (x, dy), or the whole model on (ids, targets). */
type Work =
  | { stage: Stage; x: tf.Tensor; dy: tf.Tensor }
  | { model: Model; ids: tf.Tensor2D; targets: tf.Tensor2D };

/** One training step of the work at optimizer step t (forward, backward, AdamW). */
function stepper(work: Work, batch: number): (t: number) => void {
  const stages = 'stage' in work ? [work.stage] : work.model.stages;
  const m = stages.map((s) => new Float32Array(s.layout.size));
  const v = stages.map((s) => new Float32Array(s.layout.size));
  return (t: number) => {
    const grads = stages.map((s) => new Float32Array(s.layout.size));
    if ('stage' in work) work.stage.backward(work.x, work.dy, grads[0])?.dispose();
    else work.model.lossAndGrads(work.ids, work.targets, grads);
    stages.forEach((s, i) => optimizerStep(s, grads[i], batch, m[i], v[i], ADAMW, t, 1));
  };
}

/**
 * Where a step's time goes: milliseconds per step in each kernel (the native backend's own
 * clock around every call), and the rest (JavaScript: autograd's bookkeeping, the optimizer
 * outside its kernels, allocation) as "outside kernels"; over `steps` steps after a warm-up.
 */
function profileIota(work: Work, batch: number, steps: number): Record<string, number> {
  const step = stepper(work, batch);
  step(1);
  startNativeProfile();
  const t0 = performance.now();
  for (let t = 2; t < steps + 2; t++) step(t);
  const total = (performance.now() - t0) / steps;
  const kernels = stopNativeProfile();
  const out: Record<string, number> = { step: round(total, 2) };
  let inKernels = 0;
  for (const [name, k] of Object.entries(kernels).sort((a, b) => b[1].ms - a[1].ms)) {
    inKernels += k.ms / steps;
    out[name] = round(k.ms / steps, 2);
  }
  out['outside kernels'] = round(total - inKernels, 2);
  return out;
}

function timeIota(work: Work, batch: number, seq: number, minSeconds: number): Timing {
  const step = stepper(work, batch);
  step(1); // warm-up: first allocations, the buffer pool fills
  step(2);
  const times: number[] = [];
  const t0 = performance.now();
  while (times.length < 3 || performance.now() - t0 < minSeconds * 1000) {
    const t = performance.now();
    step(times.length + 3);
    times.push(performance.now() - t);
  }
  const ms = median(times);
  return {
    tokens_per_s: (batch * seq * 1000) / ms,
    ms_per_step: ms,
    steps: times.length,
  };
}

/** The median: steps on a shared VM have outliers (other tenants); both sides use it. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Makes sure Debian's python3-torch is there: installs it as root, else says how. */
function ensureTorch(log: (s: string) => void): string | null {
  const has = () =>
    spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;
  if (has()) return null;
  if (process.getuid?.() !== 0)
    return `PyTorch not found for ${PYTHON}: run \`sudo apt-get install python3-torch python3-numpy\` (or ./setup.sh --dev as root)`;
  log('installing python3-torch and python3-numpy (apt-get, once)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const args = [
    'install',
    '-y',
    '-qq',
    '--no-install-recommends',
    'python3-torch',
    'python3-numpy',
  ];
  if (spawnSync('apt-get', args, { env, stdio: ['ignore', 'ignore', 'inherit'] }).status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    spawnSync('apt-get', args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return has() ? null : 'apt-get could not install python3-torch';
}

interface TorchRun extends Timing {
  torch: string;
  threads: number;
  openblas_threads: number;
  output_rel_err: number;
}

function timeTorch(
  dir: string,
  threads: number,
  openblasThreads: number,
  minSeconds: number,
): TorchRun {
  const script = join(packageRoot(), 'bench', 'torch_stage.py');
  const env = {
    ...process.env,
    OPENBLAS_NUM_THREADS: String(openblasThreads),
    OMP_NUM_THREADS: String(threads),
  };
  const r = spawnSync(
    PYTHON,
    [script, dir, '--threads', String(threads), '--min-seconds', String(minSeconds)],
    { encoding: 'utf8', env },
  );
  if (r.status !== 0) throw new Error(`${script} failed: ${r.stderr.trim().split('\n').pop()}`);
  return {
    ...(JSON.parse(r.stdout.trim().split('\n').pop()!) as Omit<TorchRun, 'openblas_threads'>),
    openblas_threads: openblasThreads,
  };
}

/** The shape's weights (seeded) and inputs: a stage's x and output gradient, or the model's tokens. */
function prepare(shape: Shape, batch: number): Work {
  const c = shape.config;
  if (shape.stage === 'model') {
    const ids = (seed: number) =>
      Int32Array.from(
        { length: batch * c.seq },
        (_, i) => (i * 7919 + seed * 104729) % c.vocab_size,
      );
    return {
      model: Model.initial(c, 'bench'),
      ids: tf.tensor2d(ids(1), [batch, c.seq], 'int32'),
      targets: tf.tensor2d(ids(2), [batch, c.seq], 'int32'),
    };
  }
  return {
    stage: Stage.initial(c, shape.stage, 'bench'),
    x: tf.randomNormal([batch, c.seq, c.bottleneck], 0, 1, 'float32', 1),
    dy: tf.randomNormal([batch, c.seq, c.bottleneck], 0, 1, 'float32', 2),
  };
}

/** What torch_stage.py reads: the weights, the inputs, and iota's output (or loss) to check against. */
function writeTorchInputs(dir: string, c: ModelConfig, work: Work): void {
  const entry = (t: tf.Tensor) => ({
    dtype: 'F32' as const,
    shape: t.shape,
    data: t.dataSync() as Float32Array,
  });
  if ('stage' in work) {
    const y = work.stage.forward(work.x);
    writeFileSync(join(dir, 'weights.safetensors'), work.stage.toSafetensors());
    writeFileSync(
      join(dir, 'io.safetensors'),
      encodeSafetensors({ x: entry(work.x), dy: entry(work.dy), y: entry(y) }, {}),
    );
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ config: c, stage: work.stage.spec.index }),
    );
    y.dispose();
    return;
  }
  for (const s of work.model.stages)
    writeFileSync(join(dir, `stage${s.spec.index}.safetensors`), s.toSafetensors());
  const logits = work.model.logits(work.ids);
  const loss = tf.tidy(() => crossEntropySum(logits, work.targets).dataSync()[0]);
  logits.dispose();
  const rows = (t: tf.Tensor2D) => t.arraySync();
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      config: c,
      stage: null,
      tokens: rows(work.ids),
      targets: rows(work.targets),
      loss,
    }),
  );
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      shapes: { type: 'string', default: 'a,b,c,d,e' },
      batch: { type: 'string', default: '4' },
      'min-seconds': { type: 'string', default: '3' },
      'no-torch': { type: 'boolean', default: false },
      profile: {
        type: 'boolean',
        default: false,
        description: 'also print where a step of each shape spends its time, by kernel',
      },
      json: { type: 'boolean', default: false },
    },
  });
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const defaultBatch = Number(values.batch);
  const minSeconds = Number(values['min-seconds']);
  await selectBackend('native');
  const loaded = loadNative();
  if (!loaded.ok) throw new Error(loaded.reason);
  const addon = loaded.addon;
  const info = addon.info();
  const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'unknown CPU'}`;
  let sgemm = sgemmGflops(addon);
  log(
    `${machine}; iota native: ${info.threads} threads, ${info.blas}; sgemm ${sgemm.toFixed(1)} GFLOP/s`,
  );
  const torchMissing = values['no-torch'] ? 'skipped (--no-torch)' : ensureTorch(log);
  if (torchMissing) log(`PyTorch: ${torchMissing}`);
  const settings = [...new Set([1, info.threads])];

  const all = shapes();
  const results: Record<string, unknown> = {};
  const ratio: Record<string, number | null> = {};
  const gflops: Record<string, number> = {};
  const torchGflops: Record<string, number | null> = {};
  const profiles: Record<string, Record<string, number>> = {};
  for (const key of values.shapes!.split(',')) {
    const shape = all[key];
    if (!shape) throw new Error(`unknown shape ${key}: choose from ${Object.keys(all).join(', ')}`);
    const c = shape.config;
    const batch = shape.batch ?? defaultBatch;
    const work = prepare(shape, batch);
    const flops =
      'stage' in work
        ? stageFlops(c, work.stage.spec, batch)
        : work.model.stages.reduce((sum, s) => sum + stageFlops(c, s.spec, batch), 0);
    let ours = timeIota(work, batch, c.seq, minSeconds);
    let best: TorchRun | null = null;
    const tried: TorchRun[] = [];
    if (!torchMissing) {
      const dir = mkdtempSync(join(os.tmpdir(), 'iota-bench-kernels-'));
      try {
        writeTorchInputs(dir, c, work);
        for (const t of settings)
          for (const ob of settings) tried.push(timeTorch(dir, t, ob, minSeconds));
        best = tried.reduce((p, q) => (q.tokens_per_s > p.tokens_per_s ? q : p));
        // PyTorch's figure is the best of several runs; ours is the better of one before and
        // one after them, so a neighbour's burst on the host hurts neither side alone.
        const again = timeIota(work, batch, c.seq, minSeconds);
        if (again.ms_per_step < ours.ms_per_step) ours = again;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    if (values.profile) {
      const p = profileIota(work, batch, Math.max(3, Math.ceil(2000 / ours.ms_per_step)));
      profiles[key] = p;
      const top = Object.entries(p).filter(([k]) => k !== 'step' && k !== 'outside kernels');
      log(
        `(${key}) profile, ms per step of ${p.step}: outside kernels ${p['outside kernels']}, ` +
          top
            .slice(0, 12)
            .map(([k, ms]) => `${k} ${ms}`)
            .join(', '),
      );
    }
    gflops[key] = round(flops / (ours.ms_per_step / 1000) / 1e9, 1);
    ratio[key] = best ? round(ours.tokens_per_s / best.tokens_per_s, 3) : null;
    torchGflops[key] = best ? round(flops / (best.ms_per_step / 1000) / 1e9, 1) : null;
    results[key] = {
      about: shape.about,
      batch,
      seq: c.seq,
      gflop_per_step: round(flops / 1e9, 2),
      iota: ours,
      torch_best: best,
      torch_tried: tried,
    };
    const tps = (v: number) => Math.round(v).toLocaleString('en-US').padStart(7);
    log(
      `(${key}) ${shape.about}, batch ${batch}: iota ${tps(ours.tokens_per_s)} tokens/s (${gflops[key]} GFLOP/s)` +
        (best
          ? `  torch ${tps(best.tokens_per_s)} tokens/s (${torchGflops[key]} GFLOP/s; torch threads ${best.threads}, OpenBLAS ${best.openblas_threads})  ratio ${ratio[key]}`
          : ''),
    );
    if (best && best.output_rel_err > 1e-4)
      log(
        `    warning: PyTorch's stage output differs from iota's by ${best.output_rel_err.toExponential(2)} (relative)`,
      );
    if ('stage' in work) {
      tf.dispose([work.x, work.dy]);
      work.stage.dispose();
    } else {
      tf.dispose([work.ids, work.targets]);
      work.model.dispose();
    }
  }
  // Measured again at the end, keeping the better: a neighbour on the host can take a core
  // for a second, and the ceiling is what the machine can do.
  sgemm = Math.max(sgemm, sgemmGflops(addon));
  log(
    `sgemm ceiling: ${sgemm.toFixed(1)} GFLOP/s (best of two one-second runs, 1024^3, ${info.threads} threads)`,
  );
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ bench: 'kernels', machine, threads: info.threads, blas: info.blas, sgemm_gflops: round(sgemm, 1), ratio_vs_torch: ratio, gflops, torch_gflops: torchGflops, torch_missing: torchMissing, ...(values.profile ? { profiles } : {}), results })}\n`,
    );
  }
}
