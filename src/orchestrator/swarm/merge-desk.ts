/**
 * What mergers call (DESIGN.md section 4): their jobs, their step-1 and step-2 results, their
 * claims that an input cannot be read, and their right to upload a partition. Every result
 * goes to the merge coordinator, which decides when a partition is agreed.
 */
import { partitionSize } from '../../merge/manifest.js';
import { optimStateSize } from '../../merge/update.js';
import { HttpError } from '../errors.js';
import type { JobRow, MergeRow } from '../state/merge.js';
import type { SwarmState } from '../state/swarm.js';
import type { MergeCoordinator } from './merge.js';
import type { MergeAudit, MergeJob, Reduced, Updated, Witnessed } from './merge-types.js';
import { phaseClosed } from './phases.js';
import { requireStage } from './require.js';

export class MergeDesk {
  constructor(
    private readonly merge: MergeCoordinator,
    private readonly swarm: SwarmState,
    private readonly audit?: MergeAudit,
  ) {}

  /** Where a merger of epoch E's step 2 uploads a partition's new weights and moments. */
  outputKeys(epoch: number, stage: number, partition: number, miner: string) {
    return this.merge.outputKeys(epoch, stage, partition, miner);
  }

  /** The jobs assigned to a miner now, with everything needed to do them (URLs added by the route). */
  async jobsFor(miner: string, now: number): Promise<MergeJob[]> {
    this.swarm.seen(miner, now); // a merger asking for work is alive
    const out: MergeJob[] = [];
    for (const j of this.merge.state.jobsFor(miner)) {
      const m = this.merge.state.merge(j.epoch, j.stage);
      if (!m || m.round !== j.round || m.step !== j.step) continue;
      out.push(await this.merge.describe(m, j.step as 1 | 2, j.partition, miner, now));
    }
    return out;
  }

  private job(
    miner: string,
    epoch: number,
    stage: number,
    round: number,
    partition: number,
    step: 1 | 2,
    now: number,
  ): { m: MergeRow; j: JobRow } {
    const st = requireStage(this.swarm, this.swarm.stages().length, stage);
    this.swarm.seen(miner, now);
    const m = this.merge.state.merge(epoch, stage);
    if (!m || st.phase !== 'merging' || st.epoch !== epoch)
      throw phaseClosed(st, `stage ${stage} is not merging epoch ${epoch}`, now);
    const j = m.round === round ? this.merge.state.job(m, step, partition, miner) : undefined;
    if (!j || m.step !== step || j.state !== 'assigned') {
      throw new HttpError(
        'E_NO_JOB',
        `you hold no step ${step} job for partition ${partition} of stage ${stage}, ` +
          `epoch ${epoch} (round ${m.round}, step ${m.step})`,
        'ask for your jobs again (GET /v1/merge/jobs)',
      );
    }
    return { m, j };
  }

  reduced(
    miner: string,
    b: {
      epoch: number;
      stage: number;
      round: number;
      partition: number;
      sha256: string;
      norm2: number;
      slice_norms2: Record<string, number>;
    },
    now: number,
  ): { accepted: true } {
    const { m, j } = this.job(miner, b.epoch, b.stage, b.round, b.partition, 1, now);
    const ids = m.plan.participants.map((p) => p.miner);
    if (Object.keys(b.slice_norms2).sort().join() !== [...ids].sort().join())
      throw new HttpError(
        'E_BAD_REQUEST',
        'slice_norms2 names every participant of the plan, and only them',
      );
    this.merge.state.setJob(
      j,
      'done',
      { sha256: b.sha256, norm2: b.norm2, slice_norms2: b.slice_norms2 } satisfies Reduced,
      now,
    );
    const slices = 4 * m.plan.partitions[b.partition].length * m.plan.participants.length;
    this.merge.traffic.count(m.epoch, m.stage, m.plan.params, miner, slices, 0);
    this.merge.settle(m, 1, b.partition, now);
    return { accepted: true };
  }

  updated(
    miner: string,
    b: {
      epoch: number;
      stage: number;
      round: number;
      partition: number;
      w: { size: number; sha256: string };
      optim: { size: number; sha256: string };
    },
    stored: { w?: { size: number; sha256?: string }; optim?: { size: number; sha256?: string } },
    now: number,
  ): { accepted: true } {
    const { m, j } = this.job(miner, b.epoch, b.stage, b.round, b.partition, 2, now);
    const keys = this.merge.outputKeys(b.epoch, b.stage, b.partition, miner);
    const writes = j.writes === 1;
    if (writes) {
      for (const k of ['w', 'optim'] as const) {
        const s = stored[k];
        if (!s)
          throw new HttpError(
            'E_OUTPUT_MISSING',
            `no object at ${keys[k]}`,
            'upload it before reporting',
          );
        if (s.size !== b[k].size || s.sha256 !== b[k].sha256)
          throw new HttpError(
            'E_OUTPUT_MISMATCH',
            `the object at ${keys[k]} is not the one reported`,
          );
      }
    }
    this.merge.state.setJob(
      j,
      'done',
      writes
        ? ({ w: { key: keys.w, ...b.w }, optim: { key: keys.optim, ...b.optim } } satisfies Updated)
        : ({ witness: true, w: b.w, optim: b.optim } satisfies Witnessed),
      now,
    );
    const reducedIt = this.merge.state.job(m, 1, b.partition, miner)?.state === 'done';
    const slices = reducedIt
      ? 0
      : 4 * m.plan.partitions[b.partition].length * m.plan.participants.length;
    const optimBytes =
      this.swarm.stage(m.stage).manifest.step > 0 ? 8 * m.plan.partitions[b.partition].length : 0;
    this.merge.traffic.count(
      m.epoch,
      m.stage,
      m.plan.params,
      miner,
      slices + optimBytes,
      writes ? b.w.size + b.optim.size : 0,
    );
    // A witness uploaded nothing to check: its result is checked against the writer's.
    if (writes) this.audit?.updated(m.epoch, m.stage, b.partition, miner, now);
    this.merge.settle(m, 2, b.partition, now);
    return { accepted: true };
  }

  unavailable(
    miner: string,
    b: {
      epoch: number;
      stage: number;
      round: number;
      partition: number;
      step: 1 | 2;
      participant: string;
      reason: string;
    },
    now: number,
  ): { accepted: true } {
    const { m, j } = this.job(miner, b.epoch, b.stage, b.round, b.partition, b.step, now);
    if (!m.plan.participants.some((p) => p.miner === b.participant))
      throw new HttpError('E_BAD_REQUEST', `${b.participant} is not a participant of this merge`);
    this.merge.state.setJob(
      j,
      'unavailable',
      { participant: b.participant, reason: b.reason.slice(0, 200) },
      now,
    );
    return { accepted: true };
  }

  /** Upload URLs for merged partitions and optimizer state: only for the caller's step-2 jobs, until the deadline. */
  uploadExpiry(
    caller: string,
    key: { kind: 'merged' | 'optimizer'; epoch: number; stage: number; partition: number },
    size: number,
    now: number,
  ): number {
    const { epoch, stage, partition } = key;
    const m = this.merge.state.merge(epoch - 1, stage);
    const st = this.swarm.stage(stage);
    const j = m && this.merge.state.job(m, 2, partition, caller);
    if (!m || m.step !== 2 || !j || j.state !== 'assigned' || st.phase !== 'merging') {
      throw new HttpError(
        'E_NOT_YOUR_PREFIX',
        `you are not assigned to write partition ${partition} of stage ${stage} for epoch ${epoch}`,
      );
    }
    if (j.writes !== 1)
      throw new HttpError(
        'E_NOT_YOUR_PREFIX',
        `you witness partition ${partition} of stage ${stage}: another merger writes it`,
        'report the hashes of what you computed (POST /v1/merge/updated) and upload nothing',
      );
    // Exactly the partition's new weights (or moments): no room for anything else.
    const p = m.plan.partitions[partition];
    const want =
      key.kind === 'merged'
        ? partitionSize(p.length, p.offset)
        : optimStateSize(p.length, p.offset);
    if (size !== want)
      throw new HttpError(
        'E_BAD_SIZE',
        `the ${key.kind} object of partition ${partition} is ${want} bytes, not ${size}`,
      );
    return Math.max(now + 1000, st.deadline ?? now);
  }
}
