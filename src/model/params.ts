/**
 * The parameters of a stage: names, shapes and the flat order in which weights, gradients and
 * optimizer state are laid out. Names are the reference's PyTorch state_dict keys with block
 * indices local to the stage; the order follows its `parameters()` order:
 *
 *   tok_emb.weight                                      (head only)
 *   per block i (local index):
 *     trf_blocks.i.bottleneck_decoder.bottleneck_decoder.0.weight  [dim, B]  (first block of a non-head stage)
 *     trf_blocks.i.att.W_key.weight     [kvDim, dim]
 *     trf_blocks.i.att.W_value.weight   [kvDim, dim]
 *     trf_blocks.i.att.W_query.weight   [dim, dim]
 *     trf_blocks.i.att.out_proj.weight  [dim, dim]
 *     trf_blocks.i.ff.fc1.weight        [ffn, dim]   gate
 *     trf_blocks.i.ff.fc2.weight        [ffn, dim]   up
 *     trf_blocks.i.ff.fc3.weight        [dim, ffn]   down
 *     trf_blocks.i.ff.fc4.weight        [B, dim]     (last block of a non-tail stage)
 *     trf_blocks.i.norm1.weight         [dim]
 *     trf_blocks.i.norm2.weight         [dim]
 *   final_norm.weight                                   (tail only)
 *   out_head.weight   [vocab, dim]                      (tail only)
 *
 * (The reference also carries an unused decoder in every bottleneck block; iota does not.)
 */
import { headDim, type ModelConfig, type StageSpec } from '../config/model.js';

export type ParamKind = 'matrix' | 'norm';

export interface ParamSpec {
  name: string;
  shape: number[];
  /** matrices (embeddings and linears) get weight decay and N(0, 0.02) init; norms neither */
  kind: ParamKind;
  /** element offset in the stage's flat vector */
  offset: number;
  size: number;
}

export interface StageLayout {
  params: ParamSpec[];
  byName: Map<string, ParamSpec>;
  /** elements in the flat vector */
  size: number;
}

export const DECODER = 'bottleneck_decoder.bottleneck_decoder.0.weight';

export function blockPrefix(local: number): string {
  return `trf_blocks.${local}.`;
}

export function stageLayout(c: ModelConfig, s: StageSpec): StageLayout {
  const kvDim = c.n_kv_groups * headDim(c);
  const entries: Array<[string, number[], ParamKind]> = [];
  if (s.hasEmbedding) entries.push(['tok_emb.weight', [c.vocab_size, c.dim], 'matrix']);
  const nBlocks = s.endBlock - s.firstBlock;
  for (let i = 0; i < nBlocks; i++) {
    const p = blockPrefix(i);
    if (i === 0 && s.decodesInput) entries.push([p + DECODER, [c.dim, c.bottleneck], 'matrix']);
    entries.push(
      [`${p}att.W_key.weight`, [kvDim, c.dim], 'matrix'],
      [`${p}att.W_value.weight`, [kvDim, c.dim], 'matrix'],
      [`${p}att.W_query.weight`, [c.dim, c.dim], 'matrix'],
      [`${p}att.out_proj.weight`, [c.dim, c.dim], 'matrix'],
      [`${p}ff.fc1.weight`, [c.ffn_dim, c.dim], 'matrix'],
      [`${p}ff.fc2.weight`, [c.ffn_dim, c.dim], 'matrix'],
      [`${p}ff.fc3.weight`, [c.dim, c.ffn_dim], 'matrix'],
    );
    if (i === nBlocks - 1 && s.encodesOutput)
      entries.push([`${p}ff.fc4.weight`, [c.bottleneck, c.dim], 'matrix']);
    entries.push([`${p}norm1.weight`, [c.dim], 'norm'], [`${p}norm2.weight`, [c.dim], 'norm']);
  }
  if (s.hasHead)
    entries.push(
      ['final_norm.weight', [c.dim], 'norm'],
      ['out_head.weight', [c.vocab_size, c.dim], 'matrix'],
    );

  let offset = 0;
  const params = entries.map(([name, shape, kind]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const spec = { name, shape, kind, offset, size };
    offset += size;
    return spec;
  });
  return { params, byName: new Map(params.map((p) => [p.name, p])), size: offset };
}

/** Metadata written beside a stage's tensors, so a file says which blocks it holds. */
export function stageMetadata(c: ModelConfig, s: StageSpec): Record<string, string> {
  return {
    format: 'iota-stage',
    model: c.name,
    stage: String(s.index),
    stages: String(c.stages.length),
    first_block: String(s.firstBlock),
    end_block: String(s.endBlock),
  };
}
