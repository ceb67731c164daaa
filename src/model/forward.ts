/**
 * A stage's forward as a pure function of its parameters, so one graph can chain several
 * stages (the equivalence oracle) and a stage can be differentiated on its own.
 *   head: ids int32 [b, s] -> [b, s, B]
 *   body: [b, s, B] -> [b, s, B]
 *   tail: [b, s, B] -> logits [b, s, V]
 * (A single-stage model maps ids to logits.)
 */
import * as tf from '@tensorflow/tfjs';
import { headDim, type ModelConfig, type StageSpec } from '../config/model.js';
import { block, type BlockContext, type Params } from './block.js';
import { causalMask, embed, linear, rmsNorm } from './layers.js';
import { ropeTables } from './rope.js';

/** Constant tensors a stage needs for one sequence length; keep and dispose with the stage. */
export class StageConstants {
  readonly ctx: BlockContext;

  constructor(c: ModelConfig, seq: number) {
    const { cos, sin } = ropeTables(c, seq);
    const hd = headDim(c);
    this.ctx = {
      shape: { heads: c.n_heads, kvGroups: c.n_kv_groups, headDim: hd },
      eps: c.norm_eps,
      bottleneck: c.bottleneck,
      cos: tf.keep(tf.tensor2d(cos, [seq, hd])),
      sin: tf.keep(tf.tensor2d(sin, [seq, hd])),
      mask: tf.keep(causalMask(seq, c.n_heads / c.n_kv_groups)),
    };
  }

  dispose(): void {
    this.ctx.cos.dispose();
    this.ctx.sin.dispose();
    this.ctx.mask.dispose();
  }
}

export function stageForward(
  s: StageSpec,
  p: Params,
  input: tf.Tensor,
  ctx: BlockContext,
): tf.Tensor3D {
  let x = s.hasEmbedding
    ? embed(input as tf.Tensor2D, p['tok_emb.weight'] as tf.Tensor2D)
    : (input as tf.Tensor3D);
  const n = s.endBlock - s.firstBlock;
  for (let i = 0; i < n; i++)
    x = block(x, p, i, ctx, i === 0 && s.decodesInput, i === n - 1 && s.encodesOutput);
  if (!s.hasHead) return x;
  return linear(rmsNorm(x, p['final_norm.weight'], ctx.eps), p['out_head.weight']) as tf.Tensor3D;
}
