/** Lookups that refuse a call when what it names does not exist: the refusals every route shares. */
import { HttpError } from '../errors.js';
import type { MemberRow, StageRow, SwarmState } from '../state/swarm.js';

/** The caller's membership, or E_NOT_JOINED. */
export function requireMember(state: SwarmState, miner: string): MemberRow {
  const m = state.member(miner);
  if (!m)
    throw new HttpError(
      'E_NOT_JOINED',
      'you have not joined a stage of this run',
      'join first: POST /v1/join with {"layer": "auto"}',
    );
  return m;
}

/** A stage of this run, or E_BAD_STAGE. */
export function requireStage(state: SwarmState, stages: number, stage: number): StageRow {
  if (!Number.isInteger(stage) || stage < 0 || stage >= stages)
    throw new HttpError(
      'E_BAD_STAGE',
      `stage ${stage} does not exist; this run has stages 0..${stages - 1}`,
      "use --layer auto, or a stage from 'iota status'",
    );
  return state.stage(stage);
}

/** Whether a miner went unheard for longer than a lease (or never joined). */
export function isSilent(state: SwarmState, miner: string, leaseMs: number, now: number): boolean {
  const m = state.member(miner);
  return !m || m.last_seen < now - leaseMs;
}
