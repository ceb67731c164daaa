/**
 * The building blocks of Llama 3 in tfjs ops. Linear weights are [out, in] as in PyTorch and
 * applied as matMul(x, W, false, true). Shapes: b batch, s sequence, d model width.
 */
import * as tf from '@tensorflow/tfjs';
import { CROSS_ENTROPY, CROSS_ENTROPY_GRAD } from '../kernels/native/loss.js';

/** x [..., in] -> [..., out] */
export function linear(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const x2 = x.reshape([-1, shape[shape.length - 1]]);
  const y = tf.matMul(x2, w, false, true);
  return y.reshape([...shape.slice(0, -1), w.shape[0]]);
}

/** RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * w */
export function rmsNorm(x: tf.Tensor, w: tf.Tensor, eps: number): tf.Tensor {
  const ms = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), w);
}

export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/** SwiGLU: fc3(silu(fc1 x) * fc2 x) */
export function swiglu(x: tf.Tensor, fc1: tf.Tensor, fc2: tf.Tensor, fc3: tf.Tensor): tf.Tensor {
  return linear(tf.mul(silu(linear(x, fc1)), linear(x, fc2)), fc3);
}

/** Rotate-half RoPE on x [b, heads, s, hd] with cos/sin tables [s, hd]. */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const hd = x.shape[3];
  const [x1, x2] = tf.split(x, [hd / 2, hd / 2], 3);
  const rotated = tf.concat([tf.neg(x2), x1], 3);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
}

export interface AttentionWeights {
  wq: tf.Tensor;
  wk: tf.Tensor;
  wv: tf.Tensor;
  wo: tf.Tensor;
}

export interface AttentionShape {
  heads: number;
  kvGroups: number;
  headDim: number;
}

/**
 * Causal grouped-query attention. K/V heads are shared by consecutive query heads (query head h
 * uses K/V head floor(h / rep), rep = heads / kvGroups: PyTorch's repeat_interleave). Instead of
 * copying K and V rep times, the rep query heads of a group are stacked along the sequence axis
 * and attend to the group's single K/V head in one matmul.
 * x [b, s, d] -> [b, s, d]; `mask` [rep * s, s] is 0 where a query may attend, -1e9 elsewhere.
 */
export function attention(
  x: tf.Tensor3D,
  w: AttentionWeights,
  a: AttentionShape,
  cos: tf.Tensor2D,
  sin: tf.Tensor2D,
  mask: tf.Tensor2D,
): tf.Tensor3D {
  const [b, s, d] = x.shape;
  const rep = a.heads / a.kvGroups;
  const heads = (t: tf.Tensor, n: number) =>
    t.reshape([b, s, n, a.headDim]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
  const q = applyRope(heads(linear(x, w.wq), a.heads), cos, sin).reshape([
    b,
    a.kvGroups,
    rep * s,
    a.headDim,
  ]);
  const k = applyRope(heads(linear(x, w.wk), a.kvGroups), cos, sin); // [b, g, s, hd]
  const v = heads(linear(x, w.wv), a.kvGroups);
  const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(a.headDim)), mask); // [b, g, rep*s, s]
  const out = tf.matMul(tf.softmax(scores), v).reshape([b, a.heads, s, a.headDim]);
  return linear(out.transpose([0, 2, 1, 3]).reshape([b, s, d]), w.wo) as tf.Tensor3D;
}

/** Causal mask for `rep` query heads stacked along the sequence: [rep * s, s]. */
export function causalMask(s: number, rep = 1): tf.Tensor2D {
  const m = new Float32Array(rep * s * s);
  for (let r = 0; r < rep; r++)
    for (let i = 0; i < s; i++) for (let j = i + 1; j < s; j++) m[(r * s + i) * s + j] = -1e9;
  return tf.tensor2d(m, [rep * s, s]);
}

/**
 * Token embedding lookup whose gradient is a row scatter-add done in JavaScript: tfjs's own
 * gather gradient (UnsortedSegmentSum) is missing on wasm and slow on cpu.
 * ids int32 [b, s], table [V, d] -> [b, s, d]
 */
export function embed(ids: tf.Tensor2D, table: tf.Tensor2D): tf.Tensor3D {
  const [b, s] = ids.shape;
  const [vocab, d] = table.shape;
  const idArray = ids.dataSync() as Int32Array;
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const t = args[0] as tf.Tensor;
    return {
      value: tf.gather(t, ids.reshape([-1])).reshape([b, s, d]),
      gradFunc: (dy: tf.Tensor) => {
        const g = dy.dataSync();
        const out = new Float32Array(vocab * d);
        for (let r = 0; r < idArray.length; r++) {
          const dst = idArray[r] * d;
          const src = r * d;
          for (let j = 0; j < d; j++) out[dst + j] += g[src + j];
        }
        return tf.tensor2d(out, [vocab, d]);
      },
    };
  });
  return f(table) as tf.Tensor3D;
}

/**
 * Each sample's mean cross-entropy over its positions. logits [b, s, V], targets int32 [b, s] -> [b].
 * Fused (one pass per row, no one-hot; kernels/native/loss.ts) where the active backend has the
 * kernels, the unfused graph otherwise.
 */
export function crossEntropyPerSample(logits: tf.Tensor3D, targets: tf.Tensor2D): tf.Tensor1D {
  if (!tf.getKernel(CROSS_ENTROPY, tf.getBackend()) || logits.dtype !== 'float32')
    return crossEntropyPerSampleUnfused(logits, targets);
  const [b, s, vocab] = logits.shape;
  const rows = crossEntropyRows(logits.reshape([b * s, vocab]), targets.reshape([b * s]));
  return tf.mean(rows.reshape([b, s]), -1) as tf.Tensor1D;
}

/** The reference graph of crossEntropyPerSample: logSumExp minus the target's logit through a one-hot. */
export function crossEntropyPerSampleUnfused(
  logits: tf.Tensor3D,
  targets: tf.Tensor2D,
): tf.Tensor1D {
  const vocab = logits.shape[2];
  const logZ = tf.logSumExp(logits, -1); // [b, s]
  // oneHot is made as int32 and cast: the wasm kernel ignores a float32 dtype and writes int bits.
  const picked = tf.sum(tf.mul(logits, tf.cast(tf.oneHot(targets, vocab), 'float32')), -1); // [b, s]
  return tf.mean(tf.sub(logZ, picked), -1) as tf.Tensor1D;
}

/** Each row's cross-entropy through the fused kernels: logits [rows, V], targets int32 [rows] -> [rows]. */
function crossEntropyRows(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const x = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const [loss, lse] = tf.engine().runKernel(CROSS_ENTROPY, { logits: x, targets }, {}) as [
      tf.Tensor1D,
      tf.Tensor1D,
    ];
    save([x, lse]);
    return {
      value: loss,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf
          .engine()
          .runKernel(
            CROSS_ENTROPY_GRAD,
            { logits: saved[0], targets, lse: saved[1], scale: dy },
            {},
          ) as tf.Tensor2D,
    };
  });
  return f(logits) as tf.Tensor1D;
}

/**
 * Per-sample mean cross-entropy over positions, summed over the batch (so a batch's gradient
 * is the sum of its samples' gradients). logits [b, s, V], targets int32 [b, s] -> scalar.
 */
export function crossEntropySum(logits: tf.Tensor3D, targets: tf.Tensor2D): tf.Scalar {
  return tf.sum(crossEntropyPerSample(logits, targets));
}
