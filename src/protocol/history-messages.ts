/** The dashboard's history route: the run per epoch, and one miner's work per epoch. */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

const Ms = Type.Integer({ description: 'epoch milliseconds' });

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
export const HistoryReply = Type.Object({
  epochs: Type.Array(
    Type.Object({
      epoch: Type.Integer(),
      started_at: Ms,
      closed_at: Nullable(Ms),
      drained_at: Nullable(Ms),
      ended_at: Nullable(Ms),
      merge_ms: Type.Integer(),
      allocated: Type.Integer(),
      merged: Type.Integer({ description: 'samples merged in every stage' }),
      loss: Nullable(Type.Number({ description: 'mean training loss of its tail items' })),
      eval_loss: Nullable(Type.Number({ description: 'held-out loss of its weights' })),
    }),
  ),
  miner: Type.Optional(
    Type.Array(
      Type.Object({
        epoch: Type.Integer(),
        stage: Type.Integer(),
        state: Type.String(),
        samples: Type.Integer(),
      }),
    ),
  ),
  standing: Type.Optional(
    Type.Object({
      probation: Type.Boolean(),
      passes: Type.Integer({ description: 'checks passed (since its last quarantine)' }),
      passes_to_release: Type.Integer({ description: 'passes that end its probation' }),
      failures: Type.Integer({ description: 'checks failed, ever' }),
      quarantined_at: Nullable(Ms),
    }),
  ),
  seq: Type.Integer({ description: 'tokens per sample' }),
  config: Type.Object({
    run: Type.Record(Type.String(), Type.Unknown(), { description: 'the run config' }),
    model: Type.Record(Type.String(), Type.Unknown(), { description: 'the model config' }),
    params: Type.Array(Type.Integer(), { description: 'parameters per stage' }),
  }),
});
export type HistoryReply = Static<typeof HistoryReply>;
