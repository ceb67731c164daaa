/**
 * Training on backend native: the model's steps use native kernels only, give the losses the
 * stock cpu kernels give, and keep tensors and pooled buffers bounded.
 */
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import {
  loadModelConfig,
  stageSpecs,
  validateConfig,
  type ModelConfig,
} from '../../../src/config/index.js';
import { testRun } from '../../support/model.js';
import { selectBackend } from '../../../src/kernels/backends.js';
import { nativeStats, resetNativeStats } from '../../../src/kernels/native/index.js';
import { Model } from '../../../src/model/model.js';
import { stageLayout } from '../../../src/model/params.js';
import { Stage } from '../../../src/model/stage.js';
import { batchTensors, Trainer, type TrainerSettings } from '../../../src/model/trainer.js';
import { requireNative, randomFloats } from './native.js';

await requireNative();

function settings(batch: number): TrainerSettings {
  const run = testRun({
    samples_per_epoch: 1,
    schedule: { kind: 'constant', total_epochs: 1000 },
  });
  return { optimizer: run.optimizer, schedule: run.schedule, batch };
}

/** Byte windows of English text, seq + 1 tokens each, wrapped into the vocabulary. */
function textSamples(config: ModelConfig, n: number, from = 0): Int32Array[] {
  const text = Buffer.from(
    'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief. '.repeat(
      40,
    ),
  );
  return Array.from({ length: n }, (_, i) =>
    Int32Array.from(
      text.subarray((from + i) * 29, (from + i) * 29 + config.seq + 1),
      (b) => b % config.vocab_size,
    ),
  );
}

const tiny = () => loadModelConfig(join(process.cwd(), 'configs/tiny.yaml'));
const small = () => loadModelConfig(join(process.cwd(), 'configs/small.yaml'));

describe('training on backend native', () => {
  it('runs a tiny training step without one stock-kernel fallback', async () => {
    await selectBackend('native');
    const config = tiny();
    const model = Model.initial(config, 'fallbacks');
    resetNativeStats();
    const r = new Trainer(model, settings(2)).step(textSamples(config, 2));
    const stats = nativeStats();
    model.dispose();
    expect(Number.isFinite(r.loss)).toBe(true);
    expect(stats.calls).toBeGreaterThan(500);
    expect(stats.fallbacks).toEqual({});
    expect(stats.fallbackCalls).toBe(0);
  });

  it("runs a small training step's forward, loss and backward without one stock-kernel fallback", async () => {
    // Only the tfjs part: the optimizer is JavaScript on flat arrays, and Model.initial's
    // seeded init, both slow under jest for small's 26 M parameters, use no kernels.
    await selectBackend('native');
    const config = small();
    const model = new Model(
      config,
      stageSpecs(config).map((spec) => {
        const w = new Float32Array(stageLayout(config, spec).size);
        for (let i = 0; i < w.length; i += 4099) w.fill(((i % 7) - 3) * 0.01, i, i + 4099);
        return new Stage(config, spec, w);
      }),
    );
    const [ids, targets] = batchTensors(textSamples(config, 1), config.seq);
    const sums = model.stages.map((s) => new Float32Array(s.layout.size));
    resetNativeStats();
    const loss = model.lossAndGrads(ids, targets, sums);
    const stats = nativeStats();
    tf.dispose([ids, targets]);
    model.dispose();
    expect(Number.isFinite(loss)).toBe(true);
    expect(stats.calls).toBeGreaterThan(500);
    expect(stats.fallbacks).toEqual({});
    expect(stats.fallbackCalls).toBe(0);
  });

  it('gives the losses of the stock cpu kernels over 20 tiny steps, within 1e-4', async () => {
    // tiny's shapes at half its sequence length: the stock cpu kernels are slow (under jest,
    // whose sandbox makes Math.* calls many times slower, slower still)
    const config = validateConfig('model', { ...tiny(), seq: 32 }, 'tiny at seq 32');
    const losses = async (backend: 'native' | 'cpu') => {
      await selectBackend(backend);
      const model = Model.initial(config, 'parity');
      const trainer = new Trainer(model, settings(1));
      const out = Array.from(
        { length: 20 },
        (_, i) => trainer.step(textSamples(config, 1, i)).loss,
      );
      model.dispose();
      return out;
    };
    const native = await losses('native');
    const cpu = await losses('cpu');
    expect(native[19]).toBeLessThan(native[0]); // it learns
    native.forEach((l, i) => expect(Math.abs(l - cpu[i]) / cpu[i]).toBeLessThanOrEqual(1e-4));
  });

  it('keeps the live tensor count flat across steps', async () => {
    await selectBackend('native');
    const config = tiny();
    const model = Model.initial(config, 'leak');
    const trainer = new Trainer(model, settings(2));
    trainer.step(textSamples(config, 2));
    const after1 = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) trainer.step(textSamples(config, 2, i));
    expect(tf.memory().numTensors).toBe(after1);
    model.dispose();
  });

  it('never hands out again a buffer that dataSync exposed', async () => {
    await selectBackend('native');
    const a = tf.tensor(randomFloats(5000, 1), [50, 100]);
    const b = tf.tensor(randomFloats(5000, 2), [50, 100]);
    const sum = tf.add(a, b);
    const seen = sum.dataSync();
    const copy = Float32Array.from(seen);
    sum.dispose();
    // same-sized outputs would come from the pool's free list
    const more = Array.from({ length: 4 }, () => tf.mul(a, b));
    expect(Float32Array.from(seen)).toEqual(copy);
    tf.dispose([a, b, ...more]);
  });

  it('recycles freed intermediate buffers for outputs of the same size', async () => {
    await selectBackend('native');
    const a = tf.tensor(randomFloats(5000, 3), [50, 100]);
    const first = tf.mul(a, a);
    const storage = (
      tf.backend() as unknown as { data: { get(id: object): { values: unknown } } }
    ).data.get(first.dataId).values;
    first.dispose();
    const second = tf.mul(a, 2);
    const reused = (
      tf.backend() as unknown as { data: { get(id: object): { values: unknown } } }
    ).data.get(second.dataId).values;
    expect(reused).toBe(storage);
    const expected = Array.from(a.dataSync(), (v) => Math.fround(v * 2));
    expect(Array.from(second.dataSync())).toEqual(expected);
    tf.dispose([a, second]);
  });
});
