/**
 * Every native kernel against the stock cpu kernel on the same inputs: forward within 1e-5
 * relative error and gradients (tf.grads on each backend) within 1e-4, over the broadcast,
 * transpose and axis cases the model and tfjs's gradients produce, and served without a single
 * fallback to a stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeStats, resetNativeStats } from '../../../src/kernels/native/index.js';
import { requireNative, randomFloats, relativeError, runOn, sizeOf } from './native.js';

await requireNative();

interface Input {
  shape: number[];
  lo?: number;
  hi?: number;
  /** explicit values (int32 indices, for instance) */
  values?: number[];
  dtype?: 'float32' | 'int32';
}

interface Case {
  inputs: Input[];
  f: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[];
  /** compare gradients of sum(f(x) * w) with respect to the float inputs too */
  grad?: boolean;
  /** gradient kernels are allowed to fall back (tfjs builds them from ops not in the model) */
  gradFallbackOk?: boolean;
}

let seed = 1;

async function check(c: Case): Promise<void> {
  const data = c.inputs.map((s) =>
    s.values ? s.values : Array.from(randomFloats(sizeOf(s.shape), seed++, s.lo ?? -1, s.hi ?? 1)),
  );
  const make = () => c.inputs.map((s, i) => tf.tensor(data[i], s.shape, s.dtype ?? 'float32'));
  const cpu = await runOn('cpu', () => c.f(...make()));
  resetNativeStats();
  const native = await runOn('native', () => c.f(...make()));
  expect(nativeStats().fallbacks).toEqual({});
  expect(nativeStats().calls).toBeGreaterThan(0);
  expect(native.map((o) => o.length)).toEqual(cpu.map((o) => o.length));
  cpu.forEach((o, i) => expect(relativeError(native[i], o)).toBeLessThanOrEqual(1e-5));
  if (!c.grad) return;
  const wSeed = seed++;
  const floats = c.inputs
    .map((s, i) => [s, i] as const)
    .filter(([s]) => (s.dtype ?? 'float32') === 'float32');
  const grads = () => {
    const xs = make();
    const loss = (...fs: tf.Tensor[]) => {
      const args = xs.map((x, i) => {
        const k = floats.findIndex(([, j]) => j === i);
        return k >= 0 ? fs[k] : x;
      });
      const out = c.f(...args);
      const ys = Array.isArray(out) ? out : [out];
      return tf.addN(
        ys.map((y, k) => tf.sum(tf.mul(y, tf.tensor(randomFloats(y.size, wSeed + k), y.shape)))),
      ) as tf.Scalar;
    };
    return tf.grads(loss)(floats.map(([, i]) => xs[i]));
  };
  const gCpu = await runOn('cpu', grads);
  resetNativeStats();
  const gNative = await runOn('native', grads);
  if (!c.gradFallbackOk) expect(nativeStats().fallbacks).toEqual({});
  gCpu.forEach((g, i) => expect(relativeError(gNative[i], g)).toBeLessThanOrEqual(1e-4));
}

const f32 = (shape: number[], lo?: number, hi?: number): Input => ({ shape, lo, hi });
const ints = (shape: number[], values: number[]): Input => ({ shape, values, dtype: 'int32' });

describe('native kernels agree with the stock cpu kernels', () => {
  describe('matMul: every transpose and batch broadcast', () => {
    const cases: Array<[string, number[], number[], boolean, boolean]> = [];
    for (const ta of [false, true])
      for (const tb of [false, true]) {
        const [M, K, N] = [13, 17, 9];
        const a = (batch: number[]) => [...batch, ...(ta ? [K, M] : [M, K])];
        const b = (batch: number[]) => [...batch, ...(tb ? [N, K] : [K, N])];
        cases.push([`2-D ta=${ta} tb=${tb}`, a([]), b([]), ta, tb]);
        cases.push([`batched ta=${ta} tb=${tb}`, a([3]), b([3]), ta, tb]);
        cases.push([`b shared over a 2-D batch ta=${ta} tb=${tb}`, a([2, 3]), b([]), ta, tb]);
        cases.push([`a batch 1 broadcast ta=${ta} tb=${tb}`, a([1]), b([4]), ta, tb]);
        cases.push([`b batch 1 broadcast ta=${ta} tb=${tb}`, a([2, 4]), b([1, 4]), ta, tb]);
        // large enough for the thread pool: row blocks (M >= N) and column blocks (M < N)
        cases.push([
          `parallel rows ta=${ta} tb=${tb}`,
          ta ? [128, 160] : [160, 128],
          tb ? [96, 128] : [128, 96],
          ta,
          tb,
        ]);
        cases.push([
          `parallel columns ta=${ta} tb=${tb}`,
          ta ? [128, 32] : [32, 128],
          tb ? [640, 128] : [128, 640],
          ta,
          tb,
        ]);
      }
    cases.push([
      'attention scores [b, g, r*s, hd] x [b, g, s, hd]^T',
      [2, 2, 24, 8],
      [2, 2, 12, 8],
      false,
      true,
    ]);
    cases.push([
      'attention values [b, g, r*s, s] x [b, g, s, hd]',
      [2, 2, 24, 12],
      [2, 2, 12, 8],
      false,
      false,
    ]);
    it.each(cases)('%s', async (_, as, bs, ta, tb) => {
      // tfjs's own matMul gradient does not reduce over broadcast batch dimensions (on any
      // backend), so gradients are compared where the batch shapes match
      const sameBatch = JSON.stringify(as.slice(0, -2)) === JSON.stringify(bs.slice(0, -2));
      await check({
        inputs: [f32(as), f32(bs)],
        f: (a, b) => tf.matMul(a, b, ta, tb),
        grad: sameBatch,
      });
    });

    it.each([
      ['relu', [1, 9]],
      ['linear', [13, 1]],
      ['sigmoid', [9]],
      ['leakyrelu', []],
    ] as Array<[string, number[]]>)(
      'fused matMul with bias %s and activation',
      async (activation, biasShape) => {
        await check({
          inputs: [f32([13, 17]), f32([9, 17]), f32(biasShape)],
          f: (a, b, bias) =>
            tf.fused.matMul({
              a,
              b,
              transposeB: true,
              bias,
              activation: activation as 'relu',
              leakyreluAlpha: 0.1,
            }),
          grad: true,
        });
      },
    );

    it('handles empty products', async () => {
      await check({ inputs: [f32([0, 5]), f32([5, 3])], f: (a, b) => tf.matMul(a, b) });
      await check({ inputs: [f32([4, 0]), f32([0, 3])], f: (a, b) => tf.matMul(a, b) });
    });
  });

  describe('binary ops with broadcasting', () => {
    const shapes: Array<[number[], number[]]> = [
      [
        [5, 7],
        [5, 7],
      ],
      [[5, 7], []],
      [[], [5, 7]],
      [[5, 7], [7]],
      [
        [5, 1],
        [1, 7],
      ],
      [
        [2, 1, 7],
        [3, 1],
      ],
      [
        [2, 3, 4, 5],
        [4, 1],
      ],
      [
        [1, 2, 8, 16],
        [8, 16],
      ],
      [
        [9, 1, 450],
        [1, 13, 1],
      ],
      [
        [3, 20001],
        [3, 1],
      ],
    ];
    const ops: Array<
      [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, number, number, number, number]
    > = [
      ['add', tf.add, -1, 1, -1, 1],
      ['sub', tf.sub, -1, 1, -1, 1],
      ['mul', tf.mul, -1, 1, -1, 1],
      ['div', tf.div, -1, 1, 0.5, 2],
      ['pow', tf.pow, 0.5, 2, -2, 2],
      ['maximum', tf.maximum, -1, 1, -1, 1],
      ['minimum', tf.minimum, -1, 1, -1, 1],
      ['squaredDifference', tf.squaredDifference, -1, 1, -1, 1],
    ];
    const cases = ops.flatMap(([name, op, alo, ahi, blo, bhi]) =>
      shapes.map(
        ([as, bs]) =>
          [name, JSON.stringify(as), JSON.stringify(bs), op, alo, ahi, blo, bhi] as const,
      ),
    );
    // tfjs's gradients of maximum, minimum and squaredDifference do not reduce broadcast
    // dimensions (on any backend): their gradients are compared on equal shapes only
    const reducesBroadcast = (name: string, as: string, bs: string) =>
      as === bs || !['maximum', 'minimum', 'squaredDifference'].includes(name);
    it.each(cases)('%s %s with %s', async (name, as, bs, op, alo, ahi, blo, bhi) => {
      await check({
        inputs: [f32(JSON.parse(as), alo, ahi), f32(JSON.parse(bs), blo, bhi)],
        f: op,
        grad: reducesBroadcast(name, as, bs),
      });
    });

    const comparisons: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor]> = [
      ['equal', tf.equal],
      ['notEqual', tf.notEqual],
      ['less', tf.less],
      ['lessEqual', tf.lessEqual],
      ['greater', tf.greater],
      ['greaterEqual', tf.greaterEqual],
    ];
    it.each(comparisons)('%s, with ties, broadcast both ways', async (_, op) => {
      // values on a coarse grid so that ties occur
      const grid = (n: number, s: number) =>
        Array.from(randomFloats(n, s, -3, 3), (v) => Math.round(v));
      for (const [as, bs] of [
        [
          [6, 5],
          [6, 5],
        ],
        [
          [6, 1],
          [1, 5],
        ],
        [[4, 3, 5], [5]],
        [[2, 40000], []],
      ] as Array<[number[], number[]]>) {
        await check({
          inputs: [
            { shape: as, values: grid(sizeOf(as), seed++) },
            { shape: bs, values: grid(sizeOf(bs), seed++) },
          ],
          f: op,
        });
      }
    });

    it('adds empty tensors', async () => {
      await check({ inputs: [f32([0, 3]), f32([3])], f: tf.add });
    });
  });

  describe('unary ops', () => {
    const ops: Array<[string, (x: tf.Tensor) => tf.Tensor, number, number, boolean?]> = [
      ['neg', tf.neg, -1, 1],
      ['exp', tf.exp, -5, 5],
      ['log', tf.log, 0.01, 10],
      ['sqrt', tf.sqrt, 0.01, 10],
      ['rsqrt', tf.rsqrt, 0.01, 10],
      ['square', tf.square, -3, 3],
      ['sigmoid', tf.sigmoid, -8, 8],
      ['relu', tf.relu, -1, 1],
      ['step', (x) => tf.step(x, 0.25), -1, 1],
      ['abs', tf.abs, -1, 1],
      ['reciprocal', tf.reciprocal, 0.5, 2],
      ['tanh', tf.tanh, -3, 3],
      ['relu6', tf.relu6, -8, 8],
      ['leakyRelu', (x) => tf.leakyRelu(x, 0.2), -1, 1],
      ['elu', tf.elu, -2, 2, true],
      ['log1p', tf.log1p, -0.5, 3],
    ];
    const cases = ops.flatMap(([name, op, lo, hi, gradFallbackOk]) =>
      [
        [3, 50],
        [70, 701],
      ].map((shape) => [name, JSON.stringify(shape), op, lo, hi, gradFallbackOk ?? false] as const),
    );
    it.each(cases)('%s on %s', async (_, shape, op, lo, hi, gradFallbackOk) => {
      await check({ inputs: [f32(JSON.parse(shape), lo, hi)], f: op, grad: true, gradFallbackOk });
    });
  });

  describe('softmax, log-sum-exp', () => {
    it.each([[[4, 7]], [[3, 2, 257]], [[2, 3, 5, 1000]]])(
      'softmax over the last axis of %j',
      async (shape) => {
        await check({ inputs: [f32(shape, -10, 10)], f: (x) => tf.softmax(x), grad: true });
      },
    );
    it('logSumExp and the masked attention pattern (scale, mask, softmax)', async () => {
      await check({
        inputs: [f32([2, 3, 300], -20, 20)],
        f: (x) => tf.logSumExp(x, -1),
        grad: true,
      });
      const mask = Array.from({ length: 8 * 8 }, (_, k) => (k % 8 > Math.floor(k / 8) ? -1e9 : 0));
      await check({
        inputs: [f32([2, 2, 8, 8], -3, 3), { shape: [8, 8], values: mask }],
        f: (s, m) => tf.softmax(tf.add(tf.mul(s, 0.125), m)),
        grad: true,
      });
    });
  });

  describe('reductions over any axes', () => {
    const axes: Array<number | number[] | null> = [-1, 0, 1, [0, 1], [1, 2], [0, 2], null];
    const cases = (['sum', 'mean', 'max', 'min'] as const).flatMap((op) =>
      axes.flatMap((axis) =>
        [false, true].map((keep) => [op, JSON.stringify(axis), keep] as const),
      ),
    );
    it.each(cases)('%s axis %s keepDims %s', async (op, axis, keep) => {
      const ax = JSON.parse(axis) as number | number[] | null;
      await check({
        inputs: [f32([4, 5, 6])],
        f: (x) => tf[op](x, ax ?? undefined, keep),
        grad: true,
      });
    });
    it.each([[0], [1], [[0, 1]]])(
      'large sums and means along %j (the pool splits the work)',
      async (axis) => {
        await check({
          inputs: [f32([64, 1200])],
          f: (x) => [tf.sum(x, axis), tf.mean(x, axis), tf.max(x, axis)],
          grad: true,
        });
      },
    );
    it('prod', async () => {
      await check({
        inputs: [f32([4, 5, 6], 0.9, 1.1)],
        f: (x) => [tf.prod(x, 1), tf.prod(x, [0, 2], true)],
      });
    });
  });

  describe('layout: transpose, slice, split, concat, pad, gather', () => {
    it.each([
      [
        [2, 3],
        [1, 0],
      ],
      [
        [2, 3, 4],
        [0, 2, 1],
      ],
      [
        [2, 3, 4],
        [2, 0, 1],
      ],
      [
        [2, 3, 4],
        [1, 0, 2],
      ],
      [
        [2, 5, 3, 4],
        [0, 2, 1, 3],
      ],
      [
        [2, 5, 3, 4],
        [3, 2, 1, 0],
      ],
      [
        [2, 64, 8, 64],
        [0, 2, 1, 3],
      ],
      [
        [1, 64, 1, 16],
        [0, 2, 1, 3],
      ],
    ])('transpose %j by %j', async (shape, perm) => {
      await check({ inputs: [f32(shape)], f: (x) => tf.transpose(x, perm), grad: true });
    });
    it('transposes int32 and bool tensors', async () => {
      await check({
        inputs: [
          ints(
            [2, 3, 4],
            Array.from({ length: 24 }, (_, i) => i * 7 - 50),
          ),
        ],
        f: (x) => tf.transpose(x, [2, 0, 1]),
      });
      await check({
        inputs: [f32([3, 4])],
        f: (x) => tf.cast(tf.transpose(tf.greater(x, 0), [1, 0]), 'float32'),
      });
    });
    it.each([
      [
        [1, 0, 2],
        [3, -1, 4],
      ],
      [
        [0, 0, 0],
        [-1, -1, 1],
      ],
      [
        [4, 5, 6],
        [1, 1, 1],
      ],
      [
        [0, 2, 0],
        [5, 3, 7],
      ],
      [
        [2, 0, 0],
        [0, 6, 7],
      ],
    ])('slice begin %j size %j', async (begin, size) => {
      await check({ inputs: [f32([5, 6, 7])], f: (x) => tf.slice(x, begin, size), grad: true });
    });
    it.each([
      [[2, 4], 1],
      [2, 2],
      [[1, 3], 0],
      [[3, 5], 2],
      [[8, 0], 2],
    ] as Array<[number | number[], number]>)('split into %j along axis %i', async (sizes, axis) => {
      await check({ inputs: [f32([4, 6, 8])], f: (x) => tf.split(x, sizes, axis), grad: true });
    });
    it.each([0, 1, 2, -1])('concat along axis %i, three inputs', async (axis) => {
      const shape = (k: number) => [2, 3, 4].map((d, i) => (i === (axis + 3) % 3 ? d + k : d));
      await check({
        inputs: [f32(shape(0)), f32(shape(2)), f32(shape(1))],
        f: (a, b, c) => tf.concat([a, b, c], axis),
        grad: true,
      });
    });
    it('concat of int32 tensors and of an empty one', async () => {
      await check({
        inputs: [ints([2, 2], [1, 2, 3, 4]), ints([2, 1], [5, 6])],
        f: (a, b) => tf.concat([a, b], 1),
      });
      await check({
        inputs: [f32([2, 0]), f32([2, 3])],
        f: (a, b) => tf.concat([a, b], 1),
        grad: true,
      });
    });
    it('pad with a constant', async () => {
      await check({
        inputs: [f32([3, 4])],
        f: (x) =>
          tf.pad(
            x,
            [
              [1, 2],
              [0, 3],
            ],
            1.5,
          ),
        grad: true,
      });
      await check({
        inputs: [f32([1, 64, 16])],
        f: (x) =>
          tf.pad(x, [
            [0, 0],
            [0, 0],
            [0, 48],
          ]),
        grad: true,
      });
    });
    it('gather rows and inner slices, float32 and int32', async () => {
      await check({
        inputs: [f32([10, 6]), ints([7], [3, 0, 9, 3, 5, 1, 8])],
        f: (t, i) => tf.gather(t, i),
      });
      await check({
        inputs: [f32([3, 10, 4]), ints([2, 2], [9, 0, 4, 4])],
        f: (t, i) => tf.gather(t, i, 1),
      });
      await check({
        inputs: [ints([5, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), ints([3], [4, 4, 0])],
        f: (t, i) => tf.gather(t, i),
      });
    });
    it('refuses an out-of-range gather index like the stock kernel', async () => {
      await tf.setBackend('native');
      const t = tf.zeros([4, 2]);
      const i = tf.tensor1d([1, 4], 'int32');
      expect(() => tf.gather(t, i)).toThrow(/index value 4 is not in \[0, 3\]/);
      tf.dispose([t, i]);
    });
  });

  describe('casts, one-hot, addN, where, fills', () => {
    it('casts between float32, int32 and bool', async () => {
      await check({
        inputs: [ints([5], [-3, 0, 7, 2147483647, -2147483648])],
        f: (x) => tf.cast(x, 'float32'),
      });
      await check({
        inputs: [f32([6, 7], -5, 5)],
        f: (x) => [
          tf.cast(x, 'int32'),
          tf.cast(tf.cast(x, 'bool'), 'float32'),
          tf.cast(tf.greater(x, 0), 'float32'),
        ],
      });
    });
    it('one-hot as int32 and float32, out-of-range ids give zero rows', async () => {
      await check({
        inputs: [ints([2, 5], [0, 6, 3, -1, 7, 2, 2, 5, 1, 0])],
        f: (i) => [tf.oneHot(i, 7), tf.oneHot(i, 7, 2, -1, 'float32')],
      });
    });
    it('addN, where, zerosLike, onesLike, fill', async () => {
      await check({
        inputs: [f32([3, 40]), f32([3, 40]), f32([3, 40])],
        f: (a, b, c) => tf.addN([a, b, c]),
        grad: true,
      });
      const condition = randomFloats(120, 77);
      await check({
        inputs: [f32([3, 40]), f32([3, 40])],
        f: (a, b) => tf.where(tf.greater(tf.tensor(condition, [3, 40]), 0), a, b),
        grad: true,
      });
      await check({
        inputs: [f32([3, 4])],
        f: (x) => [tf.zerosLike(x), tf.onesLike(x), tf.fill([3, 4], 2.5)],
      });
    });
  });
});
