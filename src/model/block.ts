/**
 * One transformer block, in its three roles:
 *   plain:       h = x + att(norm1 x);                 out = h + ff(norm2 h)
 *   decoding     (first block of a non-head stage; x is [b, s, B]):
 *                z = relu(dec x); a = att(norm1 z);    h = cat(a[..., :B] + x, a[..., B:])
 *   bottleneck   (last block of a non-tail stage; output is [b, s, B]):
 *                out = h[..., :B] + fc4(silu(ff(norm2 h)))
 * So a width-B identity path crosses every stage boundary.
 */
import * as tf from '@tensorflow/tfjs';
import { blockPrefix, DECODER } from './params.js';
import { attention, linear, rmsNorm, silu, swiglu, type AttentionShape } from './layers.js';

export type Params = Record<string, tf.Tensor>;

export interface BlockContext {
  shape: AttentionShape;
  eps: number;
  bottleneck: number;
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
  mask: tf.Tensor2D;
}

export function block(
  x: tf.Tensor3D,
  p: Params,
  local: number,
  ctx: BlockContext,
  decodes: boolean,
  encodes: boolean,
): tf.Tensor3D {
  const n = blockPrefix(local);
  const w = (name: string) => {
    const t = p[n + name];
    if (!t) throw new Error(`missing parameter ${n + name}`);
    return t;
  };
  const att = (u: tf.Tensor3D) =>
    attention(
      rmsNorm(u, w('norm1.weight'), ctx.eps) as tf.Tensor3D,
      {
        wq: w('att.W_query.weight'),
        wk: w('att.W_key.weight'),
        wv: w('att.W_value.weight'),
        wo: w('att.out_proj.weight'),
      },
      ctx.shape,
      ctx.cos,
      ctx.sin,
      ctx.mask,
    );

  let h: tf.Tensor3D;
  if (decodes) {
    const B = ctx.bottleneck;
    const z = tf.relu(linear(x, w(DECODER))) as tf.Tensor3D; // [b, s, B] -> [b, s, d]
    const a = att(z);
    const d = a.shape[2];
    const [aLow, aHigh] = tf.split(a, [B, d - B], 2);
    h = (d > B ? tf.concat([tf.add(aLow, x), aHigh], 2) : tf.add(aLow, x)) as tf.Tensor3D;
  } else {
    h = tf.add(x, att(x)) as tf.Tensor3D;
  }
  const ff = swiglu(
    rmsNorm(h, w('norm2.weight'), ctx.eps),
    w('ff.fc1.weight'),
    w('ff.fc2.weight'),
    w('ff.fc3.weight'),
  );
  if (!encodes) return tf.add(h, ff) as tf.Tensor3D;
  const B = ctx.bottleneck;
  const residual = h.shape[2] > B ? tf.slice(h, [0, 0, 0], [-1, -1, B]) : h; // [b, s, d] -> [b, s, B]
  return tf.add(residual, linear(silu(ff), w('ff.fc4.weight'))) as tf.Tensor3D;
}
