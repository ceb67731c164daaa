/**
 * The native AdamW and gradient accumulation against the JavaScript they replace, bit for bit:
 * the merge's cross-check compares mergers' bytes across machines, some without the addon. And
 * the optimizer step that updates a stage's weights in place where the backend shares them.
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../../src/kernels/backends.js';
import { loadedNative } from '../../../src/kernels/native/loader.js';
import {
  adamwUpdate,
  clipFactor,
  meanGradient,
  sumOfSquares,
  type AdamWSettings,
} from '../../../src/model/optimizer.js';
import { Stage } from '../../../src/model/stage.js';
import { optimizerStep } from '../../../src/model/trainer.js';
import { testModel } from '../../support/model.js';
import type { ParamSpec } from '../../../src/model/params.js';
import { randomFloats, requireNative } from './native.js';

await requireNative();

/** A stage-like layout: matrices (decayed) and norms (not), odd sizes. */
function layout(sizes: number[]): ParamSpec[] {
  let offset = 0;
  return sizes.map((size, i) => {
    const p: ParamSpec = {
      name: `p${i}`,
      shape: [size],
      kind: i % 3 === 2 ? 'norm' : 'matrix',
      offset,
      size,
    };
    offset += size;
    return p;
  });
}

const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

describe('native AdamW', () => {
  it('is loaded here, so the optimizer takes it', () => {
    expect(loadedNative()).toBeDefined();
  });

  const cases: Array<[string, number[], number, number]> = [
    // name, param sizes, partition start, partition length
    ['a whole small stage', [7, 1, 1000, 13, 3], 0, 1024],
    [
      'a partition starting and ending inside parameters',
      [300, 33, 90001, 17, 50000, 5],
      250,
      90200,
    ],
    ['past the pool grain, one parameter', [70001], 0, 70001],
  ];
  it.each(cases)('gives the bytes JavaScript gives: %s', (_name, sizes, offset, length) => {
    const params = layout(sizes);
    const s: AdamWSettings = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
    const make = (seed: number) => {
      const g = randomFloats(length, seed, -2, 2);
      // zero, tiny and huge gradients beside ordinary ones
      for (let i = 0; i < length; i += 97) g[i] = [0, 1e-30, -3e20, 5e-39][(i / 97) % 4];
      return {
        w: randomFloats(length, seed + 1, -0.2, 0.2),
        g,
        m: randomFloats(length, seed + 2, -0.01, 0.01),
        v: randomFloats(length, seed + 3, 0, 1e-4),
        offset,
      };
    };
    for (const [step, clip] of [
      [1, 1],
      [7, 0.3125],
      [1000, 0.999],
    ]) {
      const js = make(step);
      const native = make(step);
      adamwUpdate(js, params, s, step, clip, 'off');
      adamwUpdate(native, params, s, step, clip);
      for (const k of ['w', 'm', 'v'] as const)
        expect(bytes(native[k]).equals(bytes(js[k]))).toBe(true);
      // and it did something: the weights moved
      expect(bytes(native.w).equals(bytes(make(step).w))).toBe(false);
    }
  });

  it("takes a gradient sum's mean and its sum of squares as JavaScript does", () => {
    const n = 100_003;
    const sum = randomFloats(n, 13, -50, 50);
    for (let i = 0; i < n; i += 101) sum[i] = [0, 3e-39, -1e30][(i / 101) % 3];
    const js = new Float32Array(n);
    for (let i = 0; i < n; i++) js[i] = sum[i] / 7;
    let squares = 0;
    for (let i = 0; i < n; i++) squares += js[i] * js[i];
    const mean = meanGradient(sum, 7);
    expect(bytes(mean).equals(bytes(js))).toBe(true);
    expect(Object.is(sumOfSquares(mean), squares)).toBe(true);
  });

  it('adds gradients into a sum as JavaScript does', () => {
    const addon = loadedNative()!;
    const n = 100_003;
    const sum = randomFloats(n, 11, -1e3, 1e3);
    const g = randomFloats(n, 12, -1e-3, 1e-3);
    const js = Float32Array.from(sum);
    for (let i = 0; i < n; i++) js[i] += g[i];
    addon.addInto(sum, g);
    expect(bytes(sum).equals(bytes(js))).toBe(true);
  });
});

describe('optimizer step in place', () => {
  it.each(['native', 'cpu', 'wasm'] as const)(
    'on %s: the weights the tensors read, updated where the backend shares them, as a copy would be',
    async (backend) => {
      await selectBackend(backend);
      const config = testModel();
      const stage = Stage.initial(config, 1, 'in-place');
      const n = stage.layout.size;
      const grads = randomFloats(n, 21, -1, 1);
      const s: AdamWSettings = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
      // the expected step, on a copy, in JavaScript
      const g = meanGradient(grads, 3);
      const factor = clipFactor(Math.sqrt(sumOfSquares(g)), 1);
      const want = { w: stage.getWeights(), g, m: new Float32Array(n), v: new Float32Array(n) };
      adamwUpdate({ ...want, offset: 0 }, stage.layout.params, s, 1, factor, 'off');

      const shared = stage.weightsInPlace();
      expect(shared !== undefined).toBe(backend !== 'wasm');
      optimizerStep(stage, grads, 3, new Float32Array(n), new Float32Array(n), s, 1, 1);
      expect(bytes(stage.getWeights()).equals(bytes(want.w))).toBe(true);
      // what the model computes with is the new weights, not the tensors' old copy
      const fresh = new Stage(config, stage.spec, want.w);
      const x = tf.tensor3d(randomFloats(2 * config.seq * config.bottleneck, 5), [
        2,
        config.seq,
        config.bottleneck,
      ]);
      const [a, b] = [stage.forward(x), fresh.forward(x)];
      expect(bytes(a.dataSync() as Float32Array).equals(bytes(b.dataSync() as Float32Array))).toBe(
        true,
      );
      tf.dispose([x, a, b]);
      stage.dispose();
      fresh.dispose();
    },
  );
});
