/**
 * How long a lease may last and how much work a miner is given, as pure functions. A lease is
 * renewed by heartbeats while its miner is alive, but never past its due time: a few times
 * what its item should take at the miner's measured rate (or its stage's median while it has
 * none). A miner whose lease lapses that way, or who refuses good input, is given less: after
 * k such faults it gets no new room for 2^(k-1) epochs, then one item at a time, until reports
 * work the faults off; so a miner that takes work and sits on it holds up little.
 */
import type { MemberRow, TaskKind } from '../state/swarm.js';
import { UNITS } from './scheduler.js';

export interface DueRules {
  /** a lease ends this many times its item's expected time after it began */
  due_factor: number;
  /** never sooner than this */
  due_min_s: number;
  /** the fallback while no rate is known anywhere: this many leases */
  lease_s: number;
}

/**
 * When a lease taken at `now` ends whatever the heartbeats: `rate` is the miner's measured
 * work units per second (or its stage's median), undefined when nobody has one yet. A miner
 * computes its items one at a time: `queued` leases it already holds come first, so the item
 * is expected that many item-times later.
 */
export function leaseDue(
  kind: TaskKind,
  n: number,
  rate: number | undefined,
  rules: DueRules,
  now: number,
  queued = 0,
): number {
  const expectedMs =
    (1 + queued) *
    (rate !== undefined && rate > 0 ? (1000 * UNITS[kind] * n) / rate : rules.lease_s * 1000);
  // Whole milliseconds: upload URLs expire with the lease, and their expiry is an integer.
  return now + Math.ceil(Math.max(rules.due_min_s * 1000, rules.due_factor * expectedMs));
}

/** Items a miner may hold now: `inFlight`, less after lapses (see the file's header). */
export function allowance(
  m: Pick<MemberRow, 'lapses' | 'lapsed_epoch'>,
  inFlight: number,
  epoch: number,
): number {
  if (m.lapses <= 0) return inFlight;
  const waited = epoch - (m.lapsed_epoch ?? epoch);
  return waited >= 2 ** (m.lapses - 1) ? 1 : 0;
}

/** The median of the known rates, or undefined when there are none. */
export function medianRate(rates: Array<number | null | undefined>): number | undefined {
  const known = rates.filter((r): r is number => r !== null && r !== undefined && r > 0);
  if (known.length === 0) return undefined;
  known.sort((a, b) => a - b);
  return known[Math.floor((known.length - 1) / 2)];
}
