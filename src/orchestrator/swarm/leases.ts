/**
 * Leases: a task handed to a miner until a time, the key its output goes to, and why a lease
 * is no longer the caller's to use. A lease id names its task (state/swarm.ts `leaseId`).
 */
import { keys } from '../../store/keys.js';
import { HttpError } from '../errors.js';
import { leaseId, type SwarmState, type TaskRow } from '../state/swarm.js';
import type { WorkItem } from './contracts.js';

/** Leases a ready task to a miner and describes it as the miner receives it. */
export function leaseTask(
  state: SwarmState,
  run: string,
  t: TaskRow,
  miner: string,
  expires: number,
  now: number,
): WorkItem {
  const lease = leaseId(t);
  state.leaseTask(t, miner, lease, now, expires);
  const out: WorkItem = {
    lease,
    item: t.item,
    epoch: t.epoch,
    stage: t.stage,
    kind: t.kind,
    samples: Array.from({ length: t.n }, (_, i) => t.first_sample + i),
    expires_at: expires,
    ...t.input,
  };
  const key = outputKey(run, t, miner, lease);
  if (key) out.output_key = key;
  return out;
}

/** Where a task's output goes: forward activations, or the gradient of the stage's input. */
export function outputKey(
  run: string,
  t: Pick<TaskRow, 'kind' | 'stage' | 'epoch' | 'first_sample'>,
  miner: string,
  lease: string,
): string | undefined {
  // The head's backward has no input gradient to pass on.
  if (t.kind !== 'fwd' && t.stage === 0) return undefined;
  return keys.activation({
    run,
    epoch: t.epoch,
    sample: t.first_sample,
    stage: t.stage,
    direction: t.kind === 'fwd' ? 'fwd' : 'bwd',
    owner: miner,
    lease,
  });
}

/** Why a lease is not the caller's to use any more, in words a miner's log can show. */
export function leaseLost(
  lease: string,
  t: TaskRow | undefined,
  miner: string,
  now: number,
): HttpError {
  const hint = 'the item is gone from you; ask for new work (POST /v1/work)';
  if (!t || t.miner !== miner)
    return new HttpError('E_LEASE_LOST', `lease ${lease} is not held by you`, hint);
  if (t.state === 'void')
    return new HttpError(
      'E_LEASE_LOST',
      `item ${t.item} was dropped while you held lease ${lease} (another miner refused its input, or a check failed it)`,
      hint,
    );
  if (t.state !== 'leased')
    return new HttpError('E_LEASE_LOST', `lease ${lease} was already reported`, hint);
  return new HttpError(
    'E_LEASE_LOST',
    `lease ${lease} expired ${now - (t.expires ?? now)} ms ago and its item went back to the queue`,
    'send heartbeats while computing (a miner does, every lease_s / 3)',
  );
}

/** A lease the caller holds now, or E_LEASE_LOST saying why not. */
export function heldLease(state: SwarmState, miner: string, lease: string, now: number): TaskRow {
  const t = state.taskByLease(lease);
  if (!t || t.miner !== miner || t.state !== 'leased' || (t.expires ?? 0) < now)
    throw leaseLost(lease, t, miner, now);
  return t;
}
