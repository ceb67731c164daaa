/**
 * The phase machine of one stage (DESIGN.md section 3; docs/phases.md) as pure functions of
 * plain facts and the time: what comes next, and why. The coordinator gathers the facts from
 * the state, applies the answer, and asks again until the answer is to stay.
 *
 *   TRAINING(E)  -> UPLOADING(E)    every sample of E is settled at this stage (allocation closed)
 *   UPLOADING(E) -> MERGING(E)      the uploads meet the decaying requirement, or every credited
 *                                   miner still heard from has uploaded and the floor is met
 *   MERGING(E)   -> TRAINING(E+1)   the merge published w_{E+1}
 *   any          -> TRAINING(E+1)   abandoned, visibly: no sample reached the stage, the uploads
 *                                   missed the floor by the deadline, the merge failed or missed
 *                                   its deadline (the replicas keep w_E)
 *
 * Epochs drain on their own clock: once allocation closes, an epoch drains until every sample
 * is settled at every stage or its drain deadline drops what is left.
 */
import { HttpError } from '../errors.js';
import type { ManifestRef, StageRow } from '../state/swarm.js';
import { PHASE_CALLS, type MergeOutcome } from './contracts.js';

export interface PhaseRules {
  upload_s: number;
  merge_s: number;
  /** the share of credited samples UPLOADING waits for at first */
  required_fraction: number;
  /** the share it decays to at its deadline, never below */
  floor_fraction: number;
}

export type StageFacts =
  | {
      phase: 'training';
      /** allocation of the epoch has closed and no sample of it is open at this stage */
      settled: boolean;
      /** samples credited at this stage in the epoch */
      credited: number;
    }
  | {
      phase: 'uploading';
      since: number;
      deadline: number;
      /** credited samples per miner, and whether the miner was heard from within a lease */
      credits: Array<{ miner: string; n: number; live: boolean }>;
      /** the uploads accepted, with the samples each carries */
      uploads: Array<{ miner: string; n: number }>;
    }
  | { phase: 'merging'; deadline: number; merge: MergeOutcome | undefined };

export type DropReason = 'dropped:upload_failed' | 'dropped:merge_failed';

export type Transition =
  | { to: 'stay' }
  | { to: 'uploading'; deadline: number }
  | { to: 'merging'; deadline: number }
  | { to: 'trained'; manifest: ManifestRef; excluded: Record<string, string> }
  | { to: 'abandoned'; why: string; dropAs: DropReason };

/** What a stage does next, given what is true of it at `now`. */
export function nextPhase(f: StageFacts, rules: PhaseRules, now: number): Transition {
  switch (f.phase) {
    case 'training':
      if (!f.settled) return { to: 'stay' };
      if (f.credited === 0)
        return {
          to: 'abandoned',
          why: 'no sample reached this stage in time',
          dropAs: 'dropped:upload_failed',
        };
      return { to: 'uploading', deadline: now + rules.upload_s * 1000 };
    case 'uploading':
      return uploadsNext(f, rules, now);
    case 'merging':
      if (f.merge && 'manifest' in f.merge)
        return { to: 'trained', manifest: f.merge.manifest, excluded: f.merge.excluded };
      if (f.merge) return { to: 'abandoned', why: f.merge.failed, dropAs: 'dropped:merge_failed' };
      if (now >= f.deadline)
        return {
          to: 'abandoned',
          why: 'the merge did not finish by its deadline',
          dropAs: 'dropped:merge_failed',
        };
      return { to: 'stay' };
  }
}

function uploadsNext(
  f: Extract<StageFacts, { phase: 'uploading' }>,
  rules: PhaseRules,
  now: number,
): Transition {
  const total = f.credits.reduce((a, x) => a + x.n, 0);
  const uploaded = f.uploads.reduce((a, g) => a + g.n, 0);
  const floor = requiredSamples(total, rules.floor_fraction);
  const share = requiredFraction(
    rules.required_fraction,
    rules.floor_fraction,
    f.since,
    f.deadline,
    now,
  );
  const merging = { to: 'merging', deadline: now + rules.merge_s * 1000 } as const;
  if (uploaded >= requiredSamples(total, share)) return merging;
  const done = new Set(f.uploads.map((g) => g.miner));
  if (uploaded >= floor && f.credits.every((c) => done.has(c.miner) || !c.live)) return merging;
  if (now >= f.deadline)
    return {
      to: 'abandoned',
      why: `only ${uploaded} of ${total} credited samples were uploaded by the deadline (floor ${floor})`,
      dropAs: 'dropped:upload_failed',
    };
  return { to: 'stay' };
}

/**
 * The share of a phase's work required before it may close at `now`: `start` when the phase
 * opens, decaying linearly to `floor` at its deadline, never below.
 */
export function requiredFraction(
  start: number,
  floor: number,
  since: number,
  deadline: number,
  now: number,
): number {
  if (deadline <= since || now >= deadline) return floor;
  const t = Math.max(0, (now - since) / (deadline - since));
  return Math.max(floor, start + (floor - start) * t);
}

/** Samples required out of `total`: the fraction, rounded up, and at least one when there are any. */
export function requiredSamples(total: number, fraction: number): number {
  if (total <= 0) return 0;
  return Math.min(total, Math.max(1, Math.ceil(fraction * total - 1e-9)));
}

/** What an epoch whose allocation closed does next: done draining, drop what is left, or wait. */
export function drainNext(
  open: number,
  drainDeadline: number,
  now: number,
): 'drained' | 'close' | 'wait' {
  if (open === 0) return 'drained';
  return now >= drainDeadline ? 'close' : 'wait';
}

/** The refusal of a call its stage's phase does not accept, saying when that changes. */
export function phaseClosed(st: StageRow, reason: string, now: number): HttpError {
  const phase = `${st.phase.toUpperCase()}(${st.epoch})`;
  return new HttpError(
    'E_PHASE_CLOSED',
    `stage ${st.stage} is in ${phase}: ${reason}`,
    `this phase accepts: ${PHASE_CALLS[st.phase].join('; ')}`,
    {
      phase,
      reason,
      server_time: now,
      ...(st.deadline !== null ? { next_change_at: st.deadline } : {}),
    },
  );
}
