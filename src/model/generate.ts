/**
 * Sampling text from a model: temperature and top-k over the last position's logits, with a
 * seeded JS random source so the same seed gives the same text on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import { KeyedRandom } from './init.js';
import type { Model } from './model.js';

export interface SampleOptions {
  tokens: number;
  temperature: number;
  topK: number;
  seed: number | string;
}

export function* generateTokens(
  model: Model,
  prompt: number[],
  o: SampleOptions,
): Generator<number> {
  const seq = model.config.seq;
  const rng = new KeyedRandom(o.seed, 'generate');
  const context = prompt.slice();
  for (let n = 0; n < o.tokens; n++) {
    const window = context.slice(-seq);
    const logits = tf.tidy(() => {
      const ids = tf.tensor2d(Int32Array.from(window), [1, window.length], 'int32');
      const all = model.logits(ids);
      return tf.slice(all, [0, window.length - 1, 0], [1, 1, -1]).reshape([-1]);
    });
    const z = logits.dataSync() as Float32Array;
    logits.dispose();
    const next = sample(z, o, rng);
    context.push(next);
    yield next;
  }
}

function sample(z: Float32Array, o: SampleOptions, rng: KeyedRandom): number {
  if (o.temperature <= 0) return argmax(z);
  const order = Array.from(z.keys())
    .sort((a, b) => z[b] - z[a])
    .slice(0, Math.max(1, o.topK));
  const max = z[order[0]];
  const weights = order.map((i) => Math.exp((z[i] - max) / o.temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let r = rng.nextFloat() * total;
  for (let k = 0; k < order.length; k++) {
    r -= weights[k];
    if (r <= 0) return order[k];
  }
  return order[order.length - 1];
}

function argmax(z: Float32Array): number {
  let best = 0;
  for (let i = 1; i < z.length; i++) if (z[i] > z[best]) best = i;
  return best;
}
