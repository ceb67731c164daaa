/**
 * Gradient uploads in UPLOADING(E): where a miner's gradient goes, until when its URL is good,
 * what a miner still has to upload (its duty), and the acceptance of an upload against the
 * ledger's credit and the merge's partitioning. When the phase closes is phases.ts's call.
 */
import { gradientSize } from '../../merge/gradient.js';
import { keys } from '../../store/keys.js';
import { HttpError } from '../errors.js';
import type { StageRow, SwarmState } from '../state/swarm.js';
import type { SwarmSettings, UploadDuty } from './contracts.js';
import { phaseClosed } from './phases.js';
import { requireMember, requireStage } from './require.js';

export interface DeclaredGradient {
  size: number;
  sha256: string;
  partitions: string[];
}

export class GradientUploads {
  constructor(
    private readonly state: SwarmState,
    private readonly cfg: SwarmSettings,
  ) {}

  key(epoch: number, stage: number, miner: string): string {
    return keys.gradient({ run: this.cfg.name, epoch, stage, owner: miner });
  }

  /**
   * Upload URLs for a gradient: in UPLOADING only, for a miner the ledger credits, before its
   * upload is accepted, of exactly the stage's gradient size; they expire with the phase.
   */
  expiry(miner: string, epoch: number, stage: number, size: number, now: number): number {
    const st = requireStage(this.state, this.cfg.costs.length, stage);
    this.requireUploading(st, epoch, now);
    this.requireCredit(epoch, stage, miner);
    if (this.state.gradient(epoch, stage, miner))
      throw new HttpError(
        'E_ALREADY_UPLOADED',
        `your gradient for stage ${stage}, epoch ${epoch} was already accepted`,
      );
    this.requireSize(stage, size);
    return st.deadline!;
  }

  /** A gradient is exactly the stage's size: anything else would break the merge. */
  private requireSize(stage: number, size: number): void {
    const want = gradientSize(this.cfg.params[stage]);
    if (size !== want)
      throw new HttpError(
        'E_BAD_SIZE',
        `a gradient of stage ${stage} is ${want} bytes (${this.cfg.params[stage]} float32 values), not ${size}`,
      );
  }

  /** Partitions of a stage's flat vector, as the merge cuts it. */
  partitionCount(stage: number): number {
    const elements = Math.max(1, Math.floor(this.cfg.run.merge.partition_bytes / 4));
    return Math.ceil(this.cfg.params[stage] / elements);
  }

  /**
   * Records a stored gradient once it matches what the miner declared; a repeat of the same
   * upload is answered again.
   */
  accept(
    miner: string,
    epoch: number,
    stage: number,
    declared: DeclaredGradient,
    stored: { size: number; sha256?: string } | undefined,
    now: number,
  ): { samples: number; key: string } {
    requireMember(this.state, miner);
    const key = this.key(epoch, stage, miner);
    const st = requireStage(this.state, this.cfg.costs.length, stage);
    const existing = this.state.gradient(epoch, stage, miner);
    if (existing) {
      if (existing.sha256 === declared.sha256 && existing.size === declared.size)
        return { samples: existing.n, key };
      throw new HttpError(
        'E_ALREADY_UPLOADED',
        `your gradient for stage ${stage}, epoch ${epoch} was already accepted with another hash`,
      );
    }
    this.requireUploading(st, epoch, now);
    const n = this.requireCredit(epoch, stage, miner);
    this.requireSize(stage, declared.size);
    if (!stored)
      throw new HttpError(
        'E_OUTPUT_MISSING',
        `no object at ${key}`,
        'upload the gradient before reporting it',
      );
    if (stored.size !== declared.size || stored.sha256 !== declared.sha256)
      throw new HttpError(
        'E_OUTPUT_MISMATCH',
        `the object at ${key} is not the one reported (size or sha256 differ)`,
      );
    const P = this.partitionCount(stage);
    if (declared.partitions.length !== P)
      throw new HttpError(
        'E_BAD_REQUEST',
        `stage ${stage} has ${P} merge partitions; the upload declares ${declared.partitions.length} partition hashes`,
      );
    this.state.addGradient({
      epoch,
      stage,
      miner,
      key,
      size: declared.size,
      sha256: declared.sha256,
      n,
      partitions: declared.partitions,
      uploaded_at: now,
    });
    return { samples: n, key };
  }

  /** What a miner credited in this stage's epoch still has to upload. */
  duty(st: StageRow, miner: string): UploadDuty | undefined {
    const n = this.state.ledger.minerCredit(st.epoch, st.stage, miner);
    if (n === 0 || this.state.gradient(st.epoch, st.stage, miner)) return undefined;
    return {
      epoch: st.epoch,
      stage: st.stage,
      key: this.key(st.epoch, st.stage, miner),
      samples: n,
      deadline: st.deadline!,
    };
  }

  private requireUploading(st: StageRow, epoch: number, now: number): void {
    if (st.phase !== 'uploading' || st.epoch !== epoch)
      throw phaseClosed(
        st,
        `gradients of epoch ${epoch} are accepted in UPLOADING(${epoch}) only`,
        now,
      );
  }

  private requireCredit(epoch: number, stage: number, miner: string): number {
    const n = this.state.ledger.minerCredit(epoch, stage, miner);
    if (n === 0)
      throw new HttpError(
        'E_NOTHING_TO_UPLOAD',
        `the ledger credits you no samples at stage ${stage} in epoch ${epoch}`,
      );
    return n;
  }
}
