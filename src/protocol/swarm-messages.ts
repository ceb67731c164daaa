/**
 * The swarm's wire messages: joining a stage, work items and their reports, gradient uploads,
 * the run and its status. TypeBox schemas, validated by the server on the way in and out.
 */
import { Type, type Static } from '@sinclair/typebox';

const Hex64 = Type.String({ pattern: '^[0-9a-f]{64}$' });
const Ms = Type.Integer({ description: 'epoch milliseconds' });
export const PhaseName = Type.Union([
  Type.Literal('training'),
  Type.Literal('uploading'),
  Type.Literal('merging'),
]);

export const ObjectRefSchema = Type.Object({
  key: Type.String(),
  size: Type.Integer(),
  sha256: Type.String(),
  url: Type.Optional(Type.String()),
});
export const WindowRefSchema = Type.Object({
  key: Type.String(),
  start: Type.Integer({ description: 'first byte of the window in the shard object' }),
  end: Type.Integer({ description: 'one past its last byte' }),
  sha256: Type.String({ description: 'of the window bytes' }),
  url: Type.Optional(Type.String({ description: 'read it with Range: bytes=start-(end-1)' })),
});
export const ManifestRefSchema = Type.Object({
  key: Type.String(),
  size: Type.Integer(),
  sha256: Type.String(),
  epoch: Type.Integer(),
  step: Type.Integer(),
  url: Type.Optional(Type.String()),
});

const StageViewFields = {
  stage: Type.Integer(),
  epoch: Type.Integer(),
  phase: PhaseName,
  since: Ms,
  deadline: Type.Optional(Ms),
  manifest: ManifestRefSchema,
  note: Type.Optional(Type.String()),
};

export const JoinRequest = Type.Object(
  {
    layer: Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 0, maximum: 1023 })], {
      description: "'auto' or a stage index",
    }),
  },
  { additionalProperties: false },
);
export type JoinRequest = Static<typeof JoinRequest>;
export const JoinReply = Type.Object({
  ...StageViewFields,
  next_stage: Type.Optional(Type.Integer()),
});
export type JoinReply = Static<typeof JoinReply>;

export const WorkRequest = Type.Object(
  {
    max: Type.Optional(Type.Integer({ minimum: 1, maximum: 16, default: 1 })),
    /** a long poll: when there is nothing for you now, wait up to this long for a change */
    wait_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
  },
  { additionalProperties: false },
);
export type WorkRequest = Static<typeof WorkRequest>;

export const WorkItemSchema = Type.Object({
  lease: Type.String(),
  item: Type.Integer(),
  epoch: Type.Integer(),
  stage: Type.Integer(),
  kind: Type.Union([Type.Literal('fwd'), Type.Literal('bwd'), Type.Literal('tail')]),
  samples: Type.Array(Type.Integer()),
  expires_at: Ms,
  windows: Type.Optional(Type.Array(WindowRefSchema)),
  x: Type.Optional(ObjectRefSchema),
  dy: Type.Optional(ObjectRefSchema),
  output_key: Type.Optional(Type.String()),
});
export type WorkItemMessage = Static<typeof WorkItemSchema>;

export const IdleSchema = Type.Object({
  reason: Type.String(),
  message: Type.String(),
  next_change_at: Type.Optional(Ms),
});
export const UploadDutySchema = Type.Object({
  epoch: Type.Integer(),
  stage: Type.Integer(),
  key: Type.String({ description: 'where your gradient sum goes' }),
  samples: Type.Integer({ description: 'samples the ledger credits you (n_i)' }),
  deadline: Ms,
});

export const WorkReply = Type.Object({
  ...StageViewFields,
  server_time: Ms,
  items: Type.Array(WorkItemSchema),
  idle: Type.Optional(IdleSchema),
  duty: Type.Optional(UploadDutySchema),
});
export type WorkReply = Static<typeof WorkReply>;

export const ReportRequest = Type.Object(
  {
    lease: Type.String({ pattern: '^[A-Za-z0-9_]{1,64}$' }),
    output: Type.Optional(
      Type.Object(
        { size: Type.Integer({ minimum: 0 }), sha256: Hex64 },
        { additionalProperties: false },
      ),
    ),
    losses: Type.Optional(Type.Array(Type.Number({ minimum: 0 }), { minItems: 1, maxItems: 4096 })),
  },
  { additionalProperties: false },
);
export type ReportRequest = Static<typeof ReportRequest>;
export const ReportReply = Type.Object({
  item: Type.Integer(),
  stage: Type.Integer(),
  kind: Type.String(),
  credited: Type.Integer({ description: 'samples to add to your gradient accumulator now' }),
});
export type ReportReply = Static<typeof ReportReply>;

export const RefuseRequest = Type.Object(
  {
    lease: Type.String({ pattern: '^[A-Za-z0-9_]{1,64}$' }),
    code: Type.String({ maxLength: 64 }),
    message: Type.String({ maxLength: 500 }),
  },
  { additionalProperties: false },
);
export type RefuseRequest = Static<typeof RefuseRequest>;

export const GradientRequest = Type.Object(
  {
    epoch: Type.Integer({ minimum: 0 }),
    stage: Type.Integer({ minimum: 0 }),
    size: Type.Integer({ minimum: 0 }),
    sha256: Hex64,
    partitions: Type.Array(Hex64, {
      maxItems: 1_000_000,
      description:
        'sha256 of each merge partition’s bytes of the gradient (mergers read them by Range)',
    }),
  },
  { additionalProperties: false },
);
export type GradientRequest = Static<typeof GradientRequest>;
export const GradientReply = Type.Object({ key: Type.String(), samples: Type.Integer() });
export type GradientReply = Static<typeof GradientReply>;

export const RunReply = Type.Object({
  name: Type.String(),
  config_hash: Type.String(),
  stages: Type.Integer(),
  params: Type.Array(Type.Integer(), {
    description: 'elements of each stage’s flat weight vector',
  }),
  run: Type.Unsafe<Record<string, unknown>>({ type: 'object', additionalProperties: true }),
  model: Type.Unsafe<Record<string, unknown>>({ type: 'object', additionalProperties: true }),
});
export type RunReply = Static<typeof RunReply>;

const Count = Type.Integer();
export const SwarmStatus = Type.Object({
  run: Type.String(),
  server_time: Ms,
  epoch: Type.Integer({ description: 'the epoch the head is training' }),
  target: Type.Integer({ description: 'samples per epoch' }),
  allocation: Type.Object({
    epoch: Type.Integer(),
    allocated: Count,
    closed_at: Type.Optional(Ms),
    drain_deadline: Type.Optional(Ms),
  }),
  stages: Type.Array(
    Type.Object({
      ...StageViewFields,
      capacity: Type.Number({
        description: 'samples/s the stage can process, from measured rates',
      }),
      queue: Type.Object({ ready: Count, leased: Count, held: Count }),
      miners: Type.Array(
        Type.Object({
          id: Type.String(),
          state: Type.String(),
          rate: Type.Optional(Type.Number()),
          done: Count,
          last_seen: Ms,
          next_stage: Type.Optional(Type.Integer()),
          idle: Type.Optional(Type.Object({ reason: Type.String(), message: Type.String() })),
          name: Type.Optional(Type.String({ description: 'the name it registered with' })),
        }),
      ),
    }),
  ),
  ledger: Type.Array(
    Type.Object({
      epoch: Type.Integer(),
      stage: Type.Integer(),
      state: Type.String(),
      samples: Count,
    }),
  ),
  losses: Type.Array(
    Type.Object({ epoch: Type.Integer(), item: Type.Integer(), loss: Type.Number(), at: Ms }),
  ),
  throughput: Type.Number({ description: 'samples/s through the tail over the last minute' }),
  evals: Type.Array(
    Type.Object({ epoch: Type.Integer(), loss: Type.Number(), windows: Type.Integer(), at: Ms }),
    { description: 'held-out evaluation losses, newest first' },
  ),
  merge_share: Type.Optional(
    Type.Number({
      description: 'share of recent epochs’ time the head spent uploading and merging',
    }),
  ),
  lease_expiries: Count,
});
export type SwarmStatus = Static<typeof SwarmStatus>;

const RefSchema = Type.Object({
  key: Type.String(),
  size: Type.Integer(),
  sha256: Type.String(),
  url: Type.Optional(Type.String()),
});
const MergeOutputs = Type.Object(
  { w: Type.String(), optim: Type.String() },
  { description: 'step 2: where you upload the result; absent, you witness: report its hashes' },
);
export const MergeJobSchema = Type.Object({
  epoch: Type.Integer(),
  stage: Type.Integer(),
  round: Type.Integer(),
  step: Type.Union([Type.Literal(1), Type.Literal(2)]),
  partition: Type.Integer(),
  offset: Type.Integer({ description: 'first element of the partition in the flat vector' }),
  length: Type.Integer(),
  N: Type.Integer({ description: 'samples of all participants: Gbar = sum G_i / N' }),
  inputs: Type.Array(
    Type.Object({
      miner: Type.String(),
      key: Type.String(),
      start: Type.Integer(),
      end: Type.Integer(),
      sha256: Type.String({ description: 'of bytes [start, end)' }),
      url: Type.Optional(Type.String()),
    }),
  ),
  deadline: Ms,
  gbar_sha256: Type.Optional(Type.String()),
  clip_factor: Type.Optional(Type.Number()),
  lr: Type.Optional(Type.Number()),
  t: Type.Optional(Type.Integer()),
  w: Type.Optional(RefSchema),
  optim: Type.Optional(RefSchema),
  outputs: Type.Optional(MergeOutputs),
});
export type MergeJobMessage = Static<typeof MergeJobSchema>;
export const MergeJobsReply = Type.Object({ jobs: Type.Array(MergeJobSchema) });
export type MergeJobsReply = Static<typeof MergeJobsReply>;

const JobKey = {
  epoch: Type.Integer({ minimum: 0 }),
  stage: Type.Integer({ minimum: 0 }),
  round: Type.Integer({ minimum: 0 }),
  partition: Type.Integer({ minimum: 0 }),
};
export const ReducedRequest = Type.Object(
  {
    ...JobKey,
    sha256: Hex64,
    norm2: Type.Number({ minimum: 0 }),
    slice_norms2: Type.Record(Type.String({ maxLength: 64 }), Type.Number({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type ReducedRequest = Static<typeof ReducedRequest>;
const Declared = Type.Object(
  { size: Type.Integer({ minimum: 0 }), sha256: Hex64 },
  { additionalProperties: false },
);
export const UpdatedRequest = Type.Object(
  { ...JobKey, w: Declared, optim: Declared },
  { additionalProperties: false },
);
export type UpdatedRequest = Static<typeof UpdatedRequest>;
export const UnavailableRequest = Type.Object(
  {
    ...JobKey,
    step: Type.Union([Type.Literal(1), Type.Literal(2)]),
    participant: Type.String({ maxLength: 64 }),
    reason: Type.String({ maxLength: 500 }),
  },
  { additionalProperties: false },
);
export type UnavailableRequest = Static<typeof UnavailableRequest>;
export const AcceptedReply = Type.Object({ accepted: Type.Boolean() });

const ReplayItem = Type.Object({
  item: Type.Integer(),
  kind: Type.Union([Type.Literal('bwd'), Type.Literal('tail')]),
  samples: Type.Array(Type.Integer()),
  windows: Type.Optional(Type.Array(WindowRefSchema)),
  x: Type.Optional(ObjectRefSchema),
  dy: Type.Optional(ObjectRefSchema),
});

export const ValidationTaskSchema = Type.Object({
  id: Type.Integer(),
  epoch: Type.Integer(),
  stage: Type.Integer(),
  item: Type.Integer({ description: '-1 for a whole upload; the partition for a merge' }),
  kind: Type.Union([
    Type.Literal('fwd'),
    Type.Literal('bwd'),
    Type.Literal('tail'),
    Type.Literal('upload'),
    Type.Literal('merge'),
  ]),
  miner: Type.String(),
  samples: Type.Array(Type.Integer()),
  weights: ManifestRefSchema,
  windows: Type.Optional(Type.Array(WindowRefSchema)),
  x: Type.Optional(ObjectRefSchema),
  dy: Type.Optional(ObjectRefSchema),
  output: Type.Optional(ObjectRefSchema),
  loss: Type.Optional(Type.Number()),
  codec: Type.String(),
  expires_at: Ms,
  /** an upload: the miner's gradient sum and every item credited to it at that stage and epoch */
  gradient: Type.Optional(ObjectRefSchema),
  items: Type.Optional(Type.Array(ReplayItem)),
  /** a merged partition: spot-check a few runs of its elements (w_E and the moments come from `weights`) */
  merge: Type.Optional(
    Type.Object({
      partition: Type.Integer(),
      offset: Type.Integer(),
      length: Type.Integer(),
      N: Type.Integer(),
      clip_factor: Type.Number(),
      lr: Type.Number(),
      t: Type.Integer({ description: 'the optimizer step the merge took' }),
      inputs: Type.Array(
        Type.Object({
          miner: Type.String(),
          key: Type.String(),
          start: Type.Integer(),
          end: Type.Integer(),
        }),
      ),
      result: Type.Object({ w: Type.String(), optim: Type.String() }),
    }),
  ),
});
export type ValidationTaskMessage = Static<typeof ValidationTaskSchema>;
export const ValidationTasksReply = Type.Object({
  tasks: Type.Array(ValidationTaskSchema),
  threshold: Type.Number({ description: 'for outputs sent through a lossy codec' }),
  exact_threshold: Type.Number({ description: 'for float32 outputs and losses' }),
});
export type ValidationTasksReply = Static<typeof ValidationTasksReply>;
export const VerdictRequest = Type.Object(
  {
    id: Type.Integer({ minimum: 1 }),
    passed: Type.Boolean(),
    abstain: Type.Optional(
      Type.Boolean({
        description:
          'the replay could not judge (e.g. an input it was given is bad): no verdict on the miner',
      }),
    ),
    rel_err: Type.Optional(Type.Number({ minimum: 0 })),
    detail: Type.String({ maxLength: 500 }),
  },
  { additionalProperties: false },
);
export type VerdictRequest = Static<typeof VerdictRequest>;
export const ScoresReply = Type.Object({
  epoch_from: Type.Integer(),
  scores: Type.Array(
    Type.Object({
      miner: Type.String(),
      work_flops: Type.Number(),
      failures: Type.Integer(),
      penalty_flops: Type.Number(),
      score: Type.Number(),
      weight: Type.Number(),
      probation: Type.Boolean(),
    }),
  ),
  burn: Type.Optional(Type.Object({ owner: Type.String(), weight: Type.Number() })),
});
export type ScoresReply = Static<typeof ScoresReply>;
export const VerdictsReply = Type.Object({
  miner: Type.String(),
  verdicts: Type.Array(
    Type.Object({
      id: Type.Integer(),
      epoch: Type.Integer(),
      stage: Type.Integer(),
      item: Type.Integer({
        description: 'the work item; -1 for a whole upload; the partition for a merge',
      }),
      kind: Type.String(),
      reason: Type.String({
        description: 'why it was checked: random, probation, attribution, upload, dispute',
      }),
      passed: Type.Boolean(),
      by: Type.Union([Type.Literal('validator'), Type.Literal('orchestrator')]),
      rel_err: Type.Union([Type.Number(), Type.Null()]),
      detail: Type.String(),
      at: Type.Integer(),
    }),
  ),
});
export type VerdictsReply = Static<typeof VerdictsReply>;

export const EvalTaskReply = Type.Object({
  task: Type.Optional(
    Type.Object({
      epoch: Type.Integer({
        description: 'evaluate the weights every stage trains this epoch with',
      }),
      stages: Type.Array(ManifestRefSchema),
      windows: Type.Array(WindowRefSchema),
      expires_at: Ms,
    }),
  ),
});
export type EvalTaskReply = Static<typeof EvalTaskReply>;
export const EvalRequest = Type.Object(
  {
    epoch: Type.Integer({ minimum: 0 }),
    loss: Type.Number({ minimum: 0 }),
    windows: Type.Integer({ minimum: 1 }),
  },
  { additionalProperties: false },
);
export type EvalRequest = Static<typeof EvalRequest>;
