/**
 * `npm run bench -- disagreement [--model FILE] [--trials N] [--json]`: how much honest
 * replicas of the same work disagree across backends (native, wasm, cpu): every stage's forward
 * output (compared after the bf16 round trip a miner's output takes, as the validator does),
 * input gradient, and tail loss, for N random batches of real activations. The validator's
 * default threshold is 10x the largest relative error seen (the 99.9th percentile of a few
 * hundred comparisons is their maximum), printed as `suggested_threshold`.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { loadModelConfig, stageSpecs } from '../src/config/index.js';
import { decodeActivation, encodeActivation } from '../src/compute/tensors.js';
import { BACKENDS, probeBackend, selectBackend } from '../src/kernels/backends.js';
import { initialWeights } from '../src/model/init.js';
import { stageLayout } from '../src/model/params.js';
import { Stage } from '../src/model/stage.js';
import { relativeError } from '../src/validator/validator.js';

interface Outputs {
  fwd: Float32Array[][];
  dx: Float32Array[][];
  loss: number[];
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string', default: 'configs/tiny.yaml' },
      trials: { type: 'string', default: '12' },
      batch: { type: 'string', default: '2' },
      json: { type: 'boolean', default: false },
    },
  });
  const config = loadModelConfig(values.model!);
  const specs = stageSpecs(config);
  const trials = Number(values.trials);
  const batch = Number(values.batch);
  const seq = config.seq;
  const log = (s: string) => process.stderr.write(`${s}\n`);
  // Trained-looking weights are not needed: the seeded initial weights plus a perturbation
  // that breaks their symmetry (norms exactly 1, decoders with no signal) are enough.
  const weights = specs.map((s) =>
    initialWeights(stageLayout(config, s), 7).map((w, i) => w + 0.01 * Math.sin(i * 12.9898)),
  );
  const tokens = Array.from({ length: trials }, (_, t) =>
    Int32Array.from(
      { length: batch * (seq + 1) },
      (_, i) => (i * 7919 + t * 104729) % config.vocab_size,
    ),
  );

  const byBackend = new Map<string, Outputs>();
  for (const name of BACKENDS) {
    const p = await probeBackend(name);
    if (!p.available) {
      log(`${name}: not available (${p.reason})`);
      continue;
    }
    await selectBackend(name);
    const stages = specs.map((s, i) => new Stage(config, s, weights[i]));
    const out: Outputs = { fwd: specs.map(() => []), dx: specs.map(() => []), loss: [] };
    for (const tok of tokens) {
      const ids = tf.tensor2d(
        Int32Array.from(
          { length: batch * seq },
          (_, i) => tok[Math.floor(i / seq) * (seq + 1) + (i % seq)],
        ),
        [batch, seq],
        'int32',
      );
      const targets = tf.tensor2d(
        Int32Array.from(
          { length: batch * seq },
          (_, i) => tok[Math.floor(i / seq) * (seq + 1) + (i % seq) + 1],
        ),
        [batch, seq],
        'int32',
      );
      let x: tf.Tensor = ids;
      const inputs: tf.Tensor[] = [];
      for (let s = 0; s < stages.length - 1; s++) {
        inputs.push(x);
        const y = stages[s].forward(x);
        out.fwd[s].push(Float32Array.from(await y.data()));
        x = y;
      }
      inputs.push(x);
      const tail = stages[stages.length - 1].tailStep(
        x,
        targets,
        new Float32Array(stages[stages.length - 1].layout.size),
      );
      out.loss.push(tail.lossSum / batch);
      let dy = tail.dx;
      if (dy) out.dx[stages.length - 1].push(Float32Array.from(await dy.data()));
      for (let s = stages.length - 2; s >= 1; s--) {
        const dx = stages[s].backward(inputs[s], dy!, new Float32Array(stages[s].layout.size));
        out.dx[s].push(Float32Array.from(await dx!.data()));
        dy?.dispose();
        dy = dx;
      }
      dy?.dispose();
      tf.dispose([ids, targets, ...inputs.slice(1)]);
    }
    byBackend.set(name, out);
    log(`${name}: ${trials} batches through ${specs.length} stages`);
  }

  const names = [...byBackend.keys()];
  const shape: [number, number, number] = [batch, seq, config.bottleneck];
  const errors = { fwd_bf16: [] as number[], dx: [] as number[], loss: [] as number[] };
  for (let a = 0; a < names.length; a++) {
    for (let b = a + 1; b < names.length; b++) {
      const A = byBackend.get(names[a])!;
      const B = byBackend.get(names[b])!;
      for (let s = 0; s < specs.length; s++) {
        A.fwd[s].forEach((v, t) => {
          const rt = (x: Float32Array) =>
            decodeActivation(encodeActivation(x, shape, 'bf16'), shape);
          errors.fwd_bf16.push(relativeError(rt(v), rt(B.fwd[s][t])));
        });
        A.dx[s].forEach((v, t) => errors.dx.push(relativeError(v, B.dx[s][t])));
      }
      A.loss.forEach((v, t) => errors.loss.push(Math.abs(v - B.loss[t]) / Math.abs(v)));
    }
  }
  const max = (xs: number[]) => (xs.length ? Math.max(...xs) : 0);
  const worst = Math.max(max(errors.fwd_bf16), max(errors.dx), max(errors.loss));
  const suggested = Number((10 * worst).toPrecision(2));
  const result = {
    bench: 'disagreement',
    model: config.name,
    backends: names,
    comparisons: errors.fwd_bf16.length + errors.dx.length + errors.loss.length,
    max_rel_err: { fwd_bf16: max(errors.fwd_bf16), dx: max(errors.dx), loss: max(errors.loss) },
    suggested_threshold: suggested,
  };
  log(
    `backends ${names.join(', ')}: ${result.comparisons} comparisons; largest relative error: forward (bf16) ${result.max_rel_err.fwd_bf16.toExponential(2)}, input gradient ${result.max_rel_err.dx.toExponential(2)}, loss ${result.max_rel_err.loss.toExponential(2)}`,
  );
  log(`suggested validation.threshold (10x the largest): ${suggested}`);
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
}
