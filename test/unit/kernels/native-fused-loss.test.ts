/**
 * The fused cross-entropy (kernels/native/loss.ts) against the unfused graph it replaces, both on
 * the native backend: per-sample losses within 1e-5 relative error and the logits' gradient
 * within 1e-4, on random shapes with odd vocabularies, batch 1 and sequence lengths that are not
 * powers of two; the stock cpu backend keeps the unfused graph; a target outside the vocabulary
 * is refused rather than silently scored as a zero logit.
 */
import * as tf from '@tensorflow/tfjs';
import { crossEntropyPerSample, crossEntropyPerSampleUnfused } from '../../../src/model/layers.js';
import { nativeStats, resetNativeStats } from '../../../src/kernels/native/index.js';
import { selectBackend } from '../../../src/kernels/backends.js';
import { randomFloats, relativeError, requireNative } from './native.js';

await requireNative();

type Loss = (logits: tf.Tensor3D, targets: tf.Tensor2D) => tf.Tensor1D;

/** Per-sample losses and the gradient of sum(losses * w) for the logits, as plain arrays. */
function lossAndGrad(
  f: Loss,
  [b, s, v]: number[],
  seed: number,
  scale: number,
): { losses: Float32Array; grad: Float32Array } {
  return tf.tidy(() => {
    const logits = tf.tensor3d(randomFloats(b * s * v, seed, -scale, scale), [b, s, v]);
    const ids = Int32Array.from(randomFloats(b * s, seed + 1, 0, v), (x) => Math.floor(x));
    const targets = tf.tensor2d(ids, [b, s], 'int32');
    const w = tf.tensor1d(randomFloats(b, seed + 2, 0.5, 1.5));
    const losses = f(logits, targets).dataSync() as Float32Array;
    const grad = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x as tf.Tensor3D, targets), w)))(logits);
    return { losses: Float32Array.from(losses), grad: Float32Array.from(grad.dataSync()) };
  });
}

describe('fused cross-entropy on native', () => {
  beforeAll(async () => {
    await selectBackend('native');
  });

  const shapes: Array<[number, number, number, number]> = [
    // [batch, seq, vocab, logit scale]
    [1, 1, 2, 1],
    [1, 7, 33, 3],
    [3, 13, 1001, 10],
    [1, 9, 50257, 4],
    [4, 129, 517, 30],
  ];
  it.each(shapes)('b %i, s %i, vocab %i, logits up to %i', (b, s, v, scale) => {
    const seed = b * 1000 + s * 10 + v;
    resetNativeStats();
    const fused = lossAndGrad(crossEntropyPerSample, [b, s, v], seed, scale);
    const stats = nativeStats();
    expect(stats.fallbacks).toEqual({});
    const unfused = lossAndGrad(crossEntropyPerSampleUnfused, [b, s, v], seed, scale);
    expect(fused.losses.length).toBe(b);
    expect(relativeError(fused.losses, unfused.losses)).toBeLessThanOrEqual(1e-5);
    expect(relativeError(fused.grad, unfused.grad)).toBeLessThanOrEqual(1e-4);
    // the gradient is softmax minus one-hot, scaled: each row sums to zero
    const row = fused.grad.subarray(0, v);
    expect(Math.abs(row.reduce((a, x) => a + x, 0))).toBeLessThan(1e-5);
  });

  it('is what the model uses on native, and not on cpu', async () => {
    const count = (backend: 'native' | 'cpu') => {
      const before = tf.memory().numTensors;
      const out = tf.tidy(() => {
        const logits = tf.tensor3d(randomFloats(2 * 3 * 11, 5), [2, 3, 11]);
        const targets = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], 'int32');
        return Array.from(crossEntropyPerSample(logits, targets).dataSync());
      });
      expect(tf.memory().numTensors).toBe(before);
      return { backend, out };
    };
    resetNativeStats();
    const native = count('native');
    expect(nativeStats().calls).toBeGreaterThan(0);
    await selectBackend('cpu');
    const cpu = count('cpu');
    expect(tf.getKernel('IotaCrossEntropy', 'cpu')).toBeUndefined();
    expect(relativeError(native.out, cpu.out)).toBeLessThanOrEqual(1e-5);
    await selectBackend('native');
  });

  it('refuses a target outside the vocabulary', () => {
    const logits = tf.zeros([1, 2, 5]) as tf.Tensor3D;
    const targets = tf.tensor2d([[1, 5]], [1, 2], 'int32');
    expect(() => crossEntropyPerSample(logits, targets)).toThrow(
      expect.objectContaining({ code: 'E_BAD_TOKEN' }),
    );
    tf.dispose([logits, targets]);
  });
});
