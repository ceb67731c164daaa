/**
 * Model config: the shapes of a Llama-3 model cut into pipeline stages (DESIGN.md section 2).
 * IOTA calls a stage a "layer"; this code says stage everywhere.
 */
import { Type, type Static } from '@sinclair/typebox';

export const RopeScalingSchema = Type.Object(
  {
    factor: Type.Number({ exclusiveMinimum: 0, description: 'Llama-3 frequency scaling factor' }),
    low_freq_factor: Type.Number({ exclusiveMinimum: 0 }),
    high_freq_factor: Type.Number({ exclusiveMinimum: 0 }),
    original_context_length: Type.Integer({ minimum: 1 }),
  },
  { additionalProperties: false },
);

/**
 * A stage is [first, end): block indices, with -1 meaning "the embedding" at the start and "the LM
 * head" at the end.
 */
export const StageRangeSchema = Type.Tuple([
  Type.Integer({ minimum: -1 }),
  Type.Integer({ minimum: -1 }),
]);

export const ModelConfigSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, pattern: '^[A-Za-z0-9._-]+$' }),
    tokenizer: Type.Union([Type.Literal('byte'), Type.Literal('gpt2'), Type.Literal('llama3')]),
    vocab_size: Type.Integer({ minimum: 2 }),
    dim: Type.Integer({ minimum: 2 }),
    n_layers: Type.Integer({ minimum: 1, description: 'transformer blocks in the whole model' }),
    n_heads: Type.Integer({ minimum: 1 }),
    n_kv_groups: Type.Integer({
      minimum: 1,
      description: 'K/V heads; consecutive query heads share one',
    }),
    ffn_dim: Type.Integer({ minimum: 1, description: 'SwiGLU hidden width' }),
    bottleneck: Type.Integer({
      minimum: 1,
      description: 'width B of the activation crossing a stage boundary',
    }),
    seq: Type.Integer({ minimum: 1, description: 'context length in tokens' }),
    norm_eps: Type.Number({ exclusiveMinimum: 0, default: 1e-5 }),
    rope_theta: Type.Number({ exclusiveMinimum: 0 }),
    rope_scaling: Type.Union([RopeScalingSchema, Type.Null()], { default: null }),
    stages: Type.Array(StageRangeSchema, { minItems: 1 }),
  },
  { additionalProperties: false },
);

export type ModelConfig = Static<typeof ModelConfigSchema>;
export type RopeScaling = Static<typeof RopeScalingSchema>;

export interface StageSpec {
  index: number;
  /** first global block index (inclusive) */
  firstBlock: number;
  /** last global block index + 1 */
  endBlock: number;
  hasEmbedding: boolean;
  hasHead: boolean;
  /** the stage's first block decodes a bottleneck input */
  decodesInput: boolean;
  /** the stage's last block is a bottleneck block */
  encodesOutput: boolean;
}

/** Cross-field rules; returns [field, problem] pairs so the loader can name them. */
export function modelConfigProblems(c: ModelConfig): Array<[string, string]> {
  const p: Array<[string, string]> = [];
  if (c.dim % c.n_heads !== 0)
    p.push(['dim', `must be divisible by n_heads (${c.dim} % ${c.n_heads} != 0)`]);
  else if ((c.dim / c.n_heads) % 2 !== 0)
    p.push([
      'n_heads',
      `head size dim/n_heads = ${c.dim / c.n_heads} must be even for rotary embeddings`,
    ]);
  if (c.n_heads % c.n_kv_groups !== 0)
    p.push(['n_kv_groups', `must divide n_heads (${c.n_heads} % ${c.n_kv_groups} != 0)`]);
  // B = dim would keep every residual channel across a boundary: no bottleneck at all, and a
  // case the reference wires differently (its first blocks skip the decoder when B = dim).
  if (c.bottleneck >= c.dim)
    p.push([
      'bottleneck',
      `must be smaller than dim (${c.bottleneck} >= ${c.dim}): it is the width that crosses a stage boundary`,
    ]);
  if (c.tokenizer === 'byte' && c.vocab_size !== 256)
    p.push(['vocab_size', 'must be 256 with the byte tokenizer']);
  if (c.tokenizer === 'gpt2' && c.vocab_size < 50257)
    p.push(['vocab_size', 'must be >= 50257 with the gpt2 tokenizer']);
  if (c.tokenizer === 'llama3' && c.vocab_size < 128256)
    p.push(['vocab_size', 'must be >= 128256 with the llama3 tokenizer']);
  p.push(
    ...stageProblems(c.stages, c.n_layers).map(([f, m]): [string, string] => [`stages${f}`, m]),
  );
  return p;
}

function stageProblems(stages: Array<[number, number]>, nLayers: number): Array<[string, string]> {
  const p: Array<[string, string]> = [];
  const n = stages.length;
  if (stages[0][0] !== -1) p.push(['[0][0]', 'the first stage must start with -1 (the embedding)']);
  if (stages[n - 1][1] !== -1)
    p.push([`[${n - 1}][1]`, 'the last stage must end with -1 (the LM head)']);
  let expect = 0;
  stages.forEach(([a, b], i) => {
    const first = a === -1 ? 0 : a;
    const end = b === -1 ? nLayers : b;
    if (i > 0 && a === -1)
      p.push([`[${i}][0]`, '-1 is allowed only at the start of the first stage']);
    if (i < n - 1 && b === -1)
      p.push([`[${i}][1]`, '-1 is allowed only at the end of the last stage']);
    if (first !== expect)
      p.push([`[${i}]`, `must start at block ${expect} (stages must be contiguous), got ${a}`]);
    if (end <= first) p.push([`[${i}]`, `must hold at least one block, got [${a}, ${b}]`]);
    if (end > nLayers) p.push([`[${i}][1]`, `block ${end} is beyond n_layers (${nLayers})`]);
    expect = end;
  });
  if (p.length === 0 && expect !== nLayers)
    p.push([`[${n - 1}]`, `stages cover ${expect} of ${nLayers} blocks`]);
  return p;
}

export function stageSpecs(c: ModelConfig): StageSpec[] {
  const n = c.stages.length;
  return c.stages.map(([a, b], i) => ({
    index: i,
    firstBlock: a === -1 ? 0 : a,
    endBlock: b === -1 ? c.n_layers : b,
    hasEmbedding: i === 0,
    hasHead: i === n - 1,
    decodesInput: i > 0,
    encodesOutput: i < n - 1,
  }));
}

export function headDim(c: ModelConfig): number {
  return c.dim / c.n_heads;
}

/** Parameters of one plain block: attention (q, k, v, out), SwiGLU (3 matrices), two norms; no biases. */
export function blockParams(c: ModelConfig): number {
  const kvDim = c.n_kv_groups * headDim(c);
  const attention = 2 * c.dim * c.dim + 2 * c.dim * kvDim;
  const ffn = 3 * c.dim * c.ffn_dim;
  return attention + ffn + 2 * c.dim;
}

/** Parameter count from shapes alone, plain blocks only (no fc4, no decoders). */
export function plainParamCount(c: ModelConfig): number {
  return c.n_layers * blockParams(c) + 2 * c.vocab_size * c.dim + c.dim;
}

/** Parameter count of one stage including its bottleneck encoder (fc4) and decoder. */
export function stageParamCount(c: ModelConfig, s: StageSpec): number {
  let n = (s.endBlock - s.firstBlock) * blockParams(c);
  if (s.hasEmbedding) n += c.vocab_size * c.dim;
  if (s.hasHead) n += c.vocab_size * c.dim + c.dim;
  if (s.encodesOutput) n += c.dim * c.bottleneck;
  if (s.decodesInput) n += c.bottleneck * c.dim;
  return n;
}
