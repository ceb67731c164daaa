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
  /** lapsed leases and false refusals not yet worked off (each halves the work it is given) */
  lapses: number;
  /** the epoch of its latest lapse */
  lapsed_epoch: number | null;
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
  /** while leased: when the lease ends whatever the heartbeats (null: only by silence) */
  due: number | null;
  /** while leased: the sha256 its miner declared for the output, once it asked for a URL */
  declared: string | null;
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

/** A row as SQLite returns it: objects still as JSON text. */
export type Raw<T> = { [K in keyof T]: T[K] extends object | null ? string | null : T[K] };

/** A task row with its JSON columns parsed. */
export function parseTaskRow(r: Raw<TaskRow> | undefined): TaskRow | undefined {
  return (
    r && {
      ...r,
      input: JSON.parse(r.input as string),
      output: r.output ? JSON.parse(r.output) : null,
    }
  );
}
