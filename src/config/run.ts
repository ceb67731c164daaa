/**
 * Run config: what one training run does (hyperparameters, epoch target, schedule, phases,
 * merge). The model config is referenced by path, relative to the run file.
 */
import { Type, type Static } from '@sinclair/typebox';

const Positive = (description?: string, extra: object = {}) =>
  Type.Number({ exclusiveMinimum: 0, description, ...extra });
const Fraction = (def: number, description?: string) =>
  Type.Number({ minimum: 0, maximum: 1, default: def, description });

export const ScheduleSchema = Type.Object(
  {
    kind: Type.Union([Type.Literal('cosine'), Type.Literal('constant'), Type.Literal('sawtooth')], {
      default: 'cosine',
    }),
    warmup_epochs: Type.Integer({ minimum: 0, default: 0 }),
    constant_epochs: Type.Integer({
      minimum: 0,
      default: 0,
      description: 'epochs at the peak after warm-up',
    }),
    total_epochs: Type.Integer({
      minimum: 1,
      description: 'after this the rate stays at lr * final_factor',
    }),
    final_factor: Fraction(0.1, 'final lr as a fraction of the peak'),
    cycle_epochs: Type.Integer({ minimum: 1, default: 100, description: 'saw-tooth cycle length' }),
  },
  { additionalProperties: false },
);

export const OptimizerSchema = Type.Object(
  {
    lr: Positive('peak learning rate'),
    beta1: Type.Number({ minimum: 0, exclusiveMaximum: 1, default: 0.9 }),
    beta2: Type.Number({ minimum: 0, exclusiveMaximum: 1, default: 0.95 }),
    eps: Positive(undefined, { default: 1e-8 }),
    weight_decay: Type.Number({
      minimum: 0,
      default: 0.1,
      description: 'decoupled; matrices only',
    }),
    clip: Type.Number({
      minimum: 0,
      default: 1.0,
      description: 'global gradient norm bound; 0 turns clipping off',
    }),
  },
  { additionalProperties: false },
);

export const DataSchema = Type.Object(
  {
    corpus: Type.String({
      default: 'demo',
      description: "'demo' (bundled) or a path to a folder of .txt files",
    }),
    dir: Type.String({
      default: 'data',
      description: 'where token shards live; in a run file, relative to the file',
    }),
    held_out_fraction: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 0.5, default: 0.01 }),
  },
  { additionalProperties: false, default: {} },
);

export const PhasesSchema = Type.Object(
  {
    drain_s: Positive('seconds to drain the pipeline after allocation stops', { default: 60 }),
    upload_s: Positive(undefined, { default: 120 }),
    merge_s: Positive(undefined, { default: 300 }),
    lease_s: Positive('lease length; renewed by heartbeat', { default: 30 }),
    due_factor: Positive(
      'a lease ends this many times the time its item should take (from the measured rates), heartbeats or not',
      { default: 4 },
    ),
    due_min_s: Positive('a lease never ends by that rule sooner than this after it began', {
      default: 2,
    }),
    required_fraction: Fraction(
      1,
      'share of the credited samples UPLOADING waits for at first (1: every live miner; silent ones lose theirs)',
    ),
    floor_fraction: Fraction(0.25, 'the required share never decays below this'),
  },
  { additionalProperties: false, default: {} },
);

export const MergeSchema = Type.Object(
  {
    partition_bytes: Type.Integer({ minimum: 4096, default: 8 * 1024 * 1024 }),
    replicas: Type.Integer({ minimum: 1, maximum: 3, default: 2 }),
    max_sample_grad_norm: Positive(
      'participants beyond this per-sample gradient norm are excluded',
      { default: 1e4 },
    ),
  },
  { additionalProperties: false, default: {} },
);

export const ValidationSchema = Type.Object(
  {
    rate: Fraction(
      0.1,
      'share of accepted work items a validator replays (miners on probation: all)',
    ),
    upload_rate: Fraction(
      0.1,
      'probability, per miner and epoch, that every sample credited to it is replayed and its gradient upload compared',
    ),
    // Defaults: 10x the largest honest disagreement across the native, wasm and cpu backends,
    // measured with `npm run bench -- disagreement` (tiny, 180 comparisons: forward after bf16
    // 3.3e-4, input gradient 5.5e-7, loss 1.7e-7).
    threshold: Positive(
      'relative error ||v - m|| / ||v|| above which an output sent through a lossy codec (bf16, int8) fails',
      { default: 0.0033 },
    ),
    exact_threshold: Positive(
      'the same for float32 outputs (input gradients, f32 activations) and tail losses',
      { default: 6e-6 },
    ),
    probation_passes: Type.Integer({
      minimum: 0,
      default: 3,
      description: 'consecutive passes that release a new or quarantined miner from probation',
    }),
    task_s: Positive(
      'a validator holds a task this long; a gate on a probation miner’s output lasts at most this',
      { default: 60 },
    ),
    window_epochs: Type.Integer({
      minimum: 1,
      default: 10,
      description: 'scores count verified work of this many recent epochs',
    }),
    penalty_items: Positive('a failed verdict costs the work of this many of the miner’s items', {
      default: 20,
    }),
    burn_fraction: Fraction(0, 'share of incentive weight sent to the owner id (IOTA burns 0.8)'),
    owner: Type.Optional(
      Type.String({ maxLength: 64, description: 'the id that receives burn_fraction' }),
    ),
  },
  { additionalProperties: false, default: {} },
);

export const RunConfigSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, pattern: '^[A-Za-z0-9._-]+$' }),
    model: Type.String({
      minLength: 1,
      description: 'path of the model config, relative to this file',
    }),
    seed: Type.Integer({ minimum: 0, default: 0 }),
    samples_per_epoch: Type.Integer({
      minimum: 1,
      description: 'the epoch target: samples per optimizer step',
    }),
    batch: Type.Integer({ minimum: 1, default: 1, description: 'samples per work item' }),
    in_flight: Type.Integer({ minimum: 1, default: 2 }),
    activation_codec: Type.Union(
      [Type.Literal('bf16'), Type.Literal('f32'), Type.Literal('int8')],
      { default: 'bf16' },
    ),
    eval_every: Type.Integer({ minimum: 0, default: 1 }),
    keep_epochs: Type.Integer({ minimum: 1, default: 2 }),
    keep_weights_every: Type.Integer({
      minimum: 0,
      default: 10,
      description:
        'every n-th epoch keeps its weights and moments for good (0: none); the initial ' +
        'weights and the last keep_epochs epochs are always kept',
    }),
    data: DataSchema,
    optimizer: OptimizerSchema,
    schedule: ScheduleSchema,
    phases: PhasesSchema,
    merge: MergeSchema,
    validation: ValidationSchema,
  },
  { additionalProperties: false },
);

export type RunConfig = Static<typeof RunConfigSchema>;
export type OptimizerConfig = Static<typeof OptimizerSchema>;
export type ScheduleConfig = Static<typeof ScheduleSchema>;

export function runConfigProblems(c: RunConfig): Array<[string, string]> {
  const p: Array<[string, string]> = [];
  const s = c.schedule;
  if (s.warmup_epochs + s.constant_epochs > s.total_epochs) {
    p.push([
      'schedule.total_epochs',
      `must be >= warmup_epochs + constant_epochs (${s.warmup_epochs} + ${s.constant_epochs})`,
    ]);
  }
  if (c.phases.floor_fraction > c.phases.required_fraction) {
    p.push(['phases.floor_fraction', 'must be <= phases.required_fraction']);
  }
  return p;
}
