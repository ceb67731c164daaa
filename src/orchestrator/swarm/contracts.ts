/**
 * What the coordinator exchanges with the rest of the orchestrator: the hooks through which
 * the merge and validation plug into the phases, its settings, and the shapes of work items,
 * stage views and replies (the routes turn them into protocol messages).
 */
import type { ModelConfig } from '../../config/model.js';
import type { RunConfig } from '../../config/run.js';
import type { PlanParticipant } from '../../merge/plan.js';
import type { MergeOutcome } from '../state/merge.js';
import type {
  GradientRow,
  ManifestRef,
  ObjectRef,
  Phase,
  TaskKind,
  TaskRow,
  WindowRef,
} from '../state/swarm.js';

/** A participant of a stage's merge: its accepted gradient upload and its ledger credit. */
export type MergeParticipant = PlanParticipant;

export type { MergeOutcome };

/**
 * How the MERGING phase plugs in (the merge module provides it). `begin` is called once when a
 * stage enters MERGING(E), inside the transaction; `outcome` says how the merge ended once it
 * has (the coordinator then moves the stage on); `tick` runs while the stage is merging
 * (re-assignments, the orchestrator taking what is left near the deadline).
 */
export interface MergeHooks {
  begin(stage: number, epoch: number, participants: MergeParticipant[], now: number): void;
  outcome(stage: number, epoch: number): MergeOutcome | undefined;
  tick?(stage: number, epoch: number, now: number): void;
}

/**
 * How validation plugs in (the validator issue): after a report is accepted the hook may ask
 * for the work to be checked; a returned gate id holds the item's next task back until the
 * verdict (the outputs of miners on probation are not forwarded unverified).
 */
export interface ValidationHooks {
  afterReport(t: TaskRow, miner: string, now: number): number | null;
  joined?(miner: string, now: number): void;
  tick?(now: number): void;
  /** a stage entered TRAINING(epoch) */
  stageAdvanced?(stage: number, epoch: number, now: number): void;
  /** a stage closed UPLOADING(epoch) with these uploads */
  uploadsClosed?(stage: number, epoch: number, uploads: GradientRow[], now: number): void;
  /** recent held-out evaluation losses, for status */
  evals?(): Array<{ epoch: number; loss: number; windows: number; at: number }>;
}

export interface SwarmSettings {
  /** the run's name: object keys live under runs/<name>/ */
  name: string;
  run: RunConfig;
  model: ModelConfig;
  /** relative cost of one sample at each stage (parameter counts) */
  costs: number[];
  /** elements of each stage's flat weight vector */
  params: number[];
  /** the data window of a sample id, with its shard's key and the window's sha256 */
  window(sampleId: number): WindowRef;
  /** held-out window j (evaluation), and how many there are */
  heldOut?: { count: number; window(j: number): WindowRef };
}

/** The parts the coordinator drives: both optional (a swarm without them never merges). */
export interface SwarmHooks {
  merge?: MergeHooks;
  validation?: ValidationHooks;
}

export interface Idle {
  reason:
    | 'not_joined'
    | 'uploading'
    | 'merging'
    | 'in_flight_limit'
    | 'epoch_full'
    | 'waiting_for_upstream';
  message: string;
  /** when something that may end the wait is due (ms), if known */
  next_change_at?: number;
}

export interface WorkItem {
  lease: string;
  item: number;
  epoch: number;
  stage: number;
  kind: TaskKind;
  samples: number[];
  expires_at: number;
  /** head input and tail targets: the data windows */
  windows?: WindowRef[];
  /** the stage's input activations (forward output of the stage before) */
  x?: ObjectRef;
  /** the gradient of the stage's output (backward output of the stage after) */
  dy?: ObjectRef;
  /** where the miner uploads its output, when the task has one */
  output_key?: string;
}

export interface StageView {
  stage: number;
  epoch: number;
  phase: Phase;
  since: number;
  deadline?: number;
  manifest: ManifestRef;
  note?: string;
}

export interface UploadDuty {
  epoch: number;
  stage: number;
  key: string;
  samples: number;
  deadline: number;
}

export interface WorkReply extends StageView {
  server_time: number;
  items: WorkItem[];
  idle?: Idle;
  duty?: UploadDuty;
}

export interface ReportBody {
  lease: string;
  output?: { size: number; sha256: string };
  losses?: number[];
}

export const PHASE_CALLS: Record<Phase, string[]> = {
  training: [
    'POST /v1/work (items)',
    'POST /v1/report',
    'uploads of activations under a held lease',
  ],
  uploading: ['POST /v1/work (the upload duty)', 'POST /v1/gradient', 'uploads of your gradient'],
  merging: ['POST /v1/work (why idle)', 'the merge calls (merge issue)'],
};
