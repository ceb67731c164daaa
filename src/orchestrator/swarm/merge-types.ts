/**
 * The shapes the orchestrator's merge exchanges: a merger's step results, the jobs it hands
 * out, the settings it needs, and what validation learns from it.
 */
import type { ModelConfig } from '../../config/model.js';
import type { RunConfig } from '../../config/run.js';
import type { ParamSpec } from '../../model/params.js';
import type { ObjectRef } from '../state/swarm.js';

/** The orchestrator's own merger id: the merger of last resort (merge-referee.ts). */
export const ORCHESTRATOR = 'orchestrator';

/** A step-1 result: the reduced partition's hash, its squared norm, each participant's slice norm. */
export interface Reduced {
  sha256: string;
  norm2: number;
  slice_norms2: Record<string, number>;
}

/** A step-2 result: the uploaded new weights and moments of a partition. */
export interface Updated {
  w: ObjectRef;
  optim: ObjectRef;
}

/** A witness's step-2 result: the hashes of the same objects, computed but not uploaded. */
export interface Witnessed {
  witness: true;
  w: { size: number; sha256: string };
  optim: { size: number; sha256: string };
}

export interface MergeInput {
  miner: string;
  key: string;
  start: number;
  end: number;
  sha256: string;
}

export interface MergeJob {
  epoch: number;
  stage: number;
  round: number;
  step: 1 | 2;
  partition: number;
  offset: number;
  length: number;
  N: number;
  inputs: MergeInput[];
  deadline: number;
  /** step 2 */
  gbar_sha256?: string;
  clip_factor?: number;
  lr?: number;
  t?: number;
  /** w_E of this partition, from the current manifest (a replica checks its own copy against it) */
  w?: ObjectRef;
  /** the moments after the previous step; absent before the first step (zeros) */
  optim?: ObjectRef;
  outputs?: { w: string; optim: string };
}

export interface MergeSettings {
  name: string;
  run: RunConfig;
  model: ModelConfig;
  /** each stage's flat layout (for weight decay on matrices only) */
  layouts: ParamSpec[][];
  params: number[];
}

/** What validation learns from merges: results to spot-check, and results that lost a dispute. */
export interface MergeAudit {
  updated(epoch: number, stage: number, partition: number, merger: string, now: number): void;
  disputed(
    epoch: number,
    stage: number,
    partition: number,
    merger: string,
    detail: string,
    now: number,
  ): void;
}

/**
 * A merger's step-2 result and what it was computed from, for a spot check (the validator
 * reads w_E and the moments from the manifest).
 */
export interface MergeAuditInputs {
  offset: number;
  length: number;
  N: number;
  clip_factor: number;
  lr: number;
  t: number;
  inputs: Array<{ miner: string; key: string; start: number; end: number }>;
  result: { w: string; optim: string };
}
