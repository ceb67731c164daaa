/**
 * `npm run bench -- stage [--model FILE] [--stage N] [--batch N] [--min-seconds S] [--json]`:
 * one pipeline stage's work per sample as a miner does it, forward, then backward by
 * recompute, then the AdamW step on its flat weights, on every available backend.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import os from 'node:os';
import { loadModelConfig, stageSpecs } from '../src/config/index.js';
import { BACKENDS, probeBackend, selectBackend } from '../src/kernels/backends.js';
import { optimizerStep } from '../src/model/trainer.js';
import { Stage } from '../src/model/stage.js';

interface Result {
  backend: string;
  tokens_per_s: number;
  ms_per_step: number;
  steps: number;
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string', default: 'configs/tiny.yaml' },
      stage: { type: 'string' },
      batch: { type: 'string', default: '4' },
      'min-seconds': { type: 'string', default: '3' },
      backends: { type: 'string', default: BACKENDS.join(',') },
      json: { type: 'boolean', default: false },
    },
  });
  const config = loadModelConfig(values.model!);
  const specs = stageSpecs(config);
  const index = values.stage !== undefined ? Number(values.stage) : Math.floor(specs.length / 2);
  const batch = Number(values.batch);
  const minSeconds = Number(values['min-seconds']);
  const seq = config.seq;
  const results: Result[] = [];
  const unavailable: Array<{ backend: string; reason?: string }> = [];
  const log = (s: string) => process.stderr.write(`${s}\n`);
  log(
    `stage ${index} of ${config.name} (blocks ${specs[index].firstBlock}-${specs[index].endBlock - 1}), batch ${batch} x seq ${seq}: forward + backward (recompute) + AdamW`,
  );

  for (const name of values.backends!.split(',') as Array<(typeof BACKENDS)[number]>) {
    const p = await probeBackend(name);
    if (!p.available) {
      unavailable.push({ backend: name, reason: p.reason });
      continue;
    }
    await selectBackend(name);
    const stage = Stage.initial(config, index, 1);
    const spec = stage.spec;
    const input = spec.hasEmbedding
      ? tf.tensor2d(
          Int32Array.from({ length: batch * seq }, (_, i) => (i * 7919) % config.vocab_size),
          [batch, seq],
          'int32',
        )
      : tf.randomNormal([batch, seq, config.bottleneck], 0, 1, 'float32', 1);
    const targets = tf.tensor2d(
      Int32Array.from({ length: batch * seq }, (_, i) => (i * 104729) % config.vocab_size),
      [batch, seq],
      'int32',
    );
    const dy = spec.hasHead
      ? null
      : tf.randomNormal([batch, seq, config.bottleneck], 0, 1, 'float32', 2);
    const m = new Float32Array(stage.layout.size);
    const v = new Float32Array(stage.layout.size);
    const once = (t: number) => {
      const grads = new Float32Array(stage.layout.size);
      if (spec.hasHead) stage.tailStep(input, targets, grads).dx?.dispose();
      else {
        stage.forward(input).dispose();
        stage.backward(input, dy!, grads)?.dispose();
      }
      optimizerStep(
        stage,
        grads,
        batch,
        m,
        v,
        { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 },
        t,
        1,
      );
    };
    once(1); // warm-up: kernel compilation and first allocations
    let steps = 0;
    const t0 = performance.now();
    while (steps < 2 || performance.now() - t0 < minSeconds * 1000) once(++steps + 1);
    const seconds = (performance.now() - t0) / 1000;
    const r = {
      backend: name,
      tokens_per_s: (steps * batch * seq) / seconds,
      ms_per_step: (seconds * 1000) / steps,
      steps,
    };
    results.push(r);
    log(
      `  ${name.padEnd(10)} ${Math.round(r.tokens_per_s).toLocaleString().padStart(8)} tokens/s  ${r.ms_per_step.toFixed(1)} ms/step  (${steps} steps)`,
    );
    tf.dispose([input, targets, ...(dy ? [dy] : [])]);
    stage.dispose();
  }
  for (const u of unavailable) log(`  ${u.backend.padEnd(10)} unavailable: ${u.reason}`);
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ bench: 'stage', model: config.name, stage: index, batch, seq, machine: `${os.cpus().length} x ${os.cpus()[0]?.model}`, results, unavailable })}\n`,
    );
  }
}
