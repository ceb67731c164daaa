import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import {
  loadModelConfig,
  validateConfig,
  type ModelConfig,
  type RunConfig,
} from '../../../src/config/index.js';
import { selectBackend } from '../../../src/kernels/backends.js';
import { Model } from '../../../src/model/model.js';
import { Trainer, type TrainerSettings } from '../../../src/model/trainer.js';
import { relErr, testModel } from '../../support/model.js';

function settings(lr: number, batch = 4): TrainerSettings {
  const run = validateConfig(
    'run',
    {
      name: 't',
      model: 'x',
      samples_per_epoch: 1,
      optimizer: { lr },
      schedule: { kind: 'constant', total_epochs: 1000 },
    },
    'test run',
  ) as RunConfig;
  return { optimizer: run.optimizer, schedule: run.schedule, batch };
}

/** Byte windows of English text, seq + 1 tokens each. */
function textSamples(config: ModelConfig, n: number): Int32Array[] {
  const text = Buffer.from(
    'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. '.repeat(
      8,
    ),
  );
  return Array.from({ length: n }, (_, i) =>
    Int32Array.from(text.subarray(i * 13, i * 13 + config.seq + 1)),
  );
}

describe('single-process training', () => {
  it('overfits one fixed batch with tiny: the loss halves within a few hundred steps (wasm)', async () => {
    await selectBackend('wasm');
    const config = loadModelConfig(join(process.cwd(), 'configs/tiny.yaml'));
    const model = Model.initial(config, 'overfit');
    const trainer = new Trainer(model, settings(1e-2));
    const batch = textSamples(config, 2);
    const first = trainer.step(batch).loss;
    expect(first).toBeGreaterThan(5); // about ln(256) at init
    let steps = 1;
    let loss = first;
    while (loss > first / 2 && steps < 300) {
      loss = trainer.step(batch).loss;
      steps++;
    }
    expect(loss).toBeLessThanOrEqual(first / 2);
    model.dispose();
  });

  it('runs a training step on wasm that matches the same step on cpu', async () => {
    const config = testModel();
    const samples = textSamples(config, 3);
    const run = async (backend: 'wasm' | 'cpu') => {
      await selectBackend(backend);
      const model = Model.initial(config, 'backends');
      const r = new Trainer(model, settings(1e-3, 2)).step(samples);
      const weights = model.stages.map((s) => s.getWeights());
      model.dispose();
      return { loss: r.loss, norms: r.gradNorms, weights };
    };
    const wasm = await run('wasm');
    const cpu = await run('cpu');
    expect(Math.abs(wasm.loss - cpu.loss) / cpu.loss).toBeLessThanOrEqual(1e-5);
    expect(relErr(wasm.norms, cpu.norms)).toBeLessThanOrEqual(1e-4);
    wasm.weights.forEach((w, i) => expect(relErr(w, cpu.weights[i])).toBeLessThanOrEqual(1e-6));
  });

  it('keeps the live tensor count flat across 50 steps', async () => {
    await selectBackend('wasm');
    const config = testModel();
    const model = Model.initial(config, 'leak');
    const trainer = new Trainer(model, settings(1e-3, 2));
    const samples = textSamples(config, 3);
    trainer.step(samples);
    trainer.evaluate(samples);
    const after1 = tf.memory().numTensors;
    for (let i = 0; i < 49; i++) trainer.step(samples);
    trainer.evaluate(samples);
    expect(tf.memory().numTensors).toBe(after1);
    const live = tf.memory().numTensors;
    model.dispose();
    expect(tf.memory().numTensors).toBeLessThan(live);
  });
});
