/** What a spot check of a merged partition needs, read from the merge's own records. */
import { sliceRange } from '../../merge/gradient.js';
import type { MergeState } from '../state/merge.js';
import type { MergeAuditInputs, Updated, Witnessed } from './merge-types.js';

/** A merger's accepted step-2 result with its inputs (undefined once gone). */
export function mergeAuditInputs(
  state: MergeState,
  epoch: number,
  stage: number,
  partition: number,
  merger: string,
): MergeAuditInputs | undefined {
  const m = state.merge(epoch, stage);
  const j =
    m && state.jobsAt(m, 2, partition).find((x) => x.merger === merger && x.state === 'done');
  if (!m || !j || m.clip_factor === null || m.lr === null || m.t === null) return undefined;
  const r = j.result as unknown as Updated | Witnessed;
  if ('witness' in r) return undefined; // nothing of its own in the store to check
  const p = m.plan.partitions[partition];
  return {
    offset: p.offset,
    length: p.length,
    N: m.plan.N,
    clip_factor: m.clip_factor,
    lr: m.lr,
    t: m.t,
    inputs: m.plan.participants.map((q) => ({
      miner: q.miner,
      key: q.key,
      ...sliceRange(m.plan.params, p.offset, p.length),
    })),
    result: { w: r.w.key, optim: r.optim.key },
  };
}
