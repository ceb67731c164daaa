/** Lease ids: what they name, built and read in one place. */
import { randomHex } from '../../protocol/random.js';
import type { TaskKind, TaskRow } from './swarm-rows.js';

/**
 * A lease id names its task (item in base 36, stage, kind's letter) and 64 random bits, so a
 * report finds the task by its key: no index on the lease, which took pages of its own.
 */
export function leaseId(t: Pick<TaskRow, 'item' | 'stage' | 'kind'>): string {
  return `${t.item.toString(36)}_${t.stage}${t.kind[0]}_${randomHex(8)}`;
}
export const LEASE = /^([0-9a-z]{1,11})_(\d{1,4})([fbt])_[0-9a-f]{16}$/;
export const KIND_OF: Record<string, TaskKind> = { f: 'fwd', b: 'bwd', t: 'tail' };
