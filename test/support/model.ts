/** Small model configs and random inputs for model tests. */
import * as tf from '@tensorflow/tfjs';
import { validateConfig, type ModelConfig, type RunConfig } from '../../src/config/index.js';

export function testModel(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return validateConfig(
    'model',
    {
      name: 'test',
      tokenizer: 'byte',
      vocab_size: 256,
      dim: 16,
      n_layers: 4,
      n_heads: 4,
      n_kv_groups: 2,
      ffn_dim: 24,
      bottleneck: 4,
      seq: 8,
      rope_theta: 31250,
      rope_scaling: {
        factor: 32,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_context_length: 8192,
      },
      stages: [
        [-1, 1],
        [1, 3],
        [3, -1],
      ],
      ...overrides,
    },
    'test model',
  );
}

/** A small valid run config for tests that need one but train nothing from it. */
export function testRun(overrides: Record<string, unknown> = {}): RunConfig {
  return validateConfig(
    'run',
    {
      name: 't',
      model: 'm.yaml',
      samples_per_epoch: 4,
      optimizer: { lr: 1e-3 },
      schedule: { kind: 'constant', total_epochs: 10 },
      ...overrides,
    },
    'test run',
  );
}

/** Deterministic pseudo-random ints in [0, n). */
export function randomIds(b: number, s: number, n: number, seed: number): tf.Tensor2D {
  const out = new Int32Array(b * s);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) % n;
  }
  return tf.tensor2d(out, [b, s], 'int32');
}

export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}
