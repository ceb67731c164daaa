/** The rows of the swarm's tables, as `SwarmState` reads and writes them. */
import type { PlanParticipant } from '../../merge/plan.js';

export type Phase = 'training' | 'uploading' | 'merging';
export type TaskKind = 'fwd' | 'bwd' | 'tail';
export type TaskState = 'ready' | 'leased' | 'held' | 'done' | 'void';

export interface ObjectRef {
  key: string;
  size: number;
  sha256: string;
}

/** A data window: the byte range [start, end) of a shard object and its sha256. */
export interface WindowRef {
  key: string;
  start: number;
  end: number;
  sha256: string;
}

/** A stage manifest: the object listing a stage's weights for an epoch, and the steps taken. */
export interface ManifestRef extends ObjectRef {
  epoch: number;
  step: number;
}

export interface RunRow {
  name: string;
  config: string;
  config_hash: string;
  stages: number;
  created_at: number;
}

export interface StageRow {
  stage: number;
  epoch: number;
  phase: Phase;
  since: number;
  deadline: number | null;
  manifest: ManifestRef;
  note: string;
}

export interface EpochRow {
  epoch: number;
  started_at: number;
  allocated: number;
  closed_at: number | null;
  drain_deadline: number | null;
  drained_at: number | null;
  merge_ms: number;
}

export interface MemberRow {
  miner: string;
  stage: number;
  requested: string;
  next_stage: number | null;
  joined_at: number;
  joined_epoch: number;
  last_seen: number;
  rate: number | null;
  done: number;
}

export interface TaskInput {
  windows?: WindowRef[];
  x?: ObjectRef;
  dy?: ObjectRef;
}

export interface TaskRow {
  item: number;
  stage: number;
  kind: TaskKind;
  epoch: number;
  first_sample: number;
  n: number;
  state: TaskState;
  miner: string | null;
  prefer: string | null;
  lease: string | null;
  leased_at: number | null;
  expires: number | null;
  ready_at: number;
  input: TaskInput;
  output: ObjectRef | null;
  loss: number | null;
  done_at: number | null;
  /** a validation holding this task back (the output of a miner on probation), or null */
  gate: number | null;
}

export interface ItemRow {
  item: number;
  epoch: number;
  first_sample: number;
  n: number;
  windows: WindowRef[];
  created_at: number;
}

/** An accepted gradient upload: the merge's participant record, for one epoch and stage. */
export interface GradientRow extends PlanParticipant {
  epoch: number;
  stage: number;
  uploaded_at: number;
}
