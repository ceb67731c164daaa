/**
 * Leases: a task handed to a miner until a time, the key its output goes to and the exact
 * object it may upload there, why a lease is no longer the caller's to use, and what happens
 * when one lapses (lease-policy.ts says when). A lease id names its task (`leaseId`).
 */
import { activationSize } from '../../compute/tensors.js';
import { formatKey, keys, type ParsedKey } from '../../store/keys.js';
import { HttpError } from '../errors.js';
import { leaseId, type MemberRow, type SwarmState, type TaskRow } from '../state/swarm.js';
import type { SwarmSettings, WorkItem } from './contracts.js';
import { allowance, leaseDue, medianRate } from './lease-policy.js';
import { isSilent } from './require.js';

/** Leases a ready task to a miner and describes it as the miner receives it. */
export function leaseTask(
  state: SwarmState,
  run: string,
  t: TaskRow,
  miner: string,
  expires: number,
  due: number,
  now: number,
): WorkItem {
  const lease = leaseId(t);
  state.leaseTask(t, miner, lease, now, Math.min(expires, due), due);
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
      `item ${t.item} was dropped while you held lease ${lease} (another miner refused ` +
        `its input, or a check failed it)`,
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

/**
 * The one object a lease may upload: its output key, of exactly the size the run's shapes and
 * codec give, and (once a URL was issued) the bytes it first declared, so an output cannot be
 * swapped under a second URL. Returns the task; E_NOT_YOUR_PREFIX, E_BAD_SIZE or
 * E_ALREADY_DECLARED otherwise.
 */
export function checkOutputUpload(
  cfg: SwarmSettings,
  t: TaskRow,
  caller: string,
  key: Extract<ParsedKey, { kind: 'activation' }>,
  declared: { size: number; sha256: string },
): TaskRow {
  const want = outputKey(cfg.name, t, caller, key.lease);
  if (want === undefined || formatKey(key) !== want)
    throw new HttpError(
      'E_NOT_YOUR_PREFIX',
      `lease ${key.lease} uploads its output to ${want ?? 'nowhere (it has no output)'}, not ${formatKey(key)}`,
    );
  const codec = t.kind === 'fwd' ? cfg.run.activation_codec : 'f32';
  const size = activationSize([t.n, cfg.model.seq, cfg.model.bottleneck], codec);
  if (declared.size !== size)
    throw new HttpError(
      'E_BAD_SIZE',
      `this output is ${size} bytes ([${t.n}, ${cfg.model.seq}, ` +
        `${cfg.model.bottleneck}] in ${codec}), not ${declared.size}`,
    );
  if (t.declared !== null && t.declared !== declared.sha256)
    throw new HttpError(
      'E_ALREADY_DECLARED',
      `an upload of other bytes was already declared for ${want}`,
      'upload the output you declared first; a lease has one output',
    );
  return t;
}

/**
 * Leases that ended: by silence (the item goes back to the queue), or at their due time while
 * their miner was alive, a lapse (a fault, and less work for the miner). Returns how many.
 */
export function expireLeases(state: SwarmState, leaseMs: number, now: number): number {
  const ended = state.expiredLeases(now);
  for (const t of ended) {
    const alive = t.miner !== null && !isSilent(state, t.miner, leaseMs, now);
    state.unlease(t, now);
    if (alive && t.due !== null && now >= t.due)
      recordLapse(
        state,
        t.miner!,
        t,
        'lease_lapsed',
        `held ${t.kind} of item ${t.item} for ${now - (t.leased_at ?? now)} ms without reporting it`,
        now,
      );
  }
  return ended.length;
}

/** A lapse or a false refusal: a fault for scoring, and one more lapse against its work. */
export function recordLapse(
  state: SwarmState,
  miner: string,
  t: Pick<TaskRow, 'epoch' | 'stage'>,
  kind: 'lease_lapsed' | 'false_refusal',
  detail: string,
  now: number,
): void {
  state.fault(t.epoch, t.stage, miner, kind, detail, now);
  const m = state.member(miner);
  if (m) state.setLapses(miner, m.lapses + 1, state.stage(m.stage).epoch);
}

/** A report works one lapse off. */
export function workedOff(state: SwarmState, miner: string): void {
  const m = state.member(miner);
  if (m && m.lapses > 0) state.setLapses(miner, m.lapses - 1, m.lapsed_epoch);
}

/**
 * Items a miner may hold: fewer after lapses (lease-policy.ts), but never none for every live
 * miner of a stage, so faults never stall a stage on their own.
 */
export function roomFor(
  state: SwarmState,
  m: MemberRow,
  inFlight: number,
  epoch: number,
  leaseMs: number,
  now: number,
): number {
  const room = allowance(m, inFlight, epoch);
  if (room > 0) return room;
  const others = state
    .members()
    .filter(
      (o) => o.stage === m.stage && o.miner !== m.miner && !isSilent(state, o.miner, leaseMs, now),
    );
  return others.some((o) => allowance(o, inFlight, epoch) > 0) ? 0 : 1;
}

/**
 * Each stage's median rate (for the leases of miners not measured yet), and leases given
 * before any rate was known (`unmeasured`: their lease ids) brought forward to what the rates
 * now say; those that got a rate, or ended, leave the set.
 */
export function measureRates(
  state: SwarmState,
  cfg: SwarmSettings,
  unmeasured: Set<string>,
  now: number,
): Array<number | undefined> {
  const members = state.members();
  const medians = cfg.costs.map((_, s) =>
    medianRate(members.filter((m) => m.stage === s).map((m) => m.rate)),
  );
  for (const lease of unmeasured) {
    const t = state.taskByLease(lease);
    if (!t || t.state !== 'leased' || t.leased_at === null || t.due === null) {
      unmeasured.delete(lease);
      continue;
    }
    const m = t.miner === null ? undefined : state.member(t.miner);
    const rate = m?.rate ?? medians[t.stage];
    if (rate === undefined) continue;
    const queued = t.miner === null ? 0 : Math.max(0, state.heldItems(t.miner, 'leased') - 1);
    const due = leaseDue(t.kind, t.n, rate, cfg.run.phases, t.leased_at, queued);
    if (due < t.due) state.tightenDue(t, Math.max(due, now));
    unmeasured.delete(lease);
  }
  return medians;
}
