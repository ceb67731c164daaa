/**
 * Gradient uploads in UPLOADING(E): where a miner's gradient goes, until when its URL is good,
 * the acceptance of an upload against the ledger's credit and the merge's partitioning, and when
 * the phase closes.
 * Functions over the Coordinator, which delegates to them (as status.ts does).
 */
import { learningRate } from '../../model/schedule.js';
import { keys } from '../../store/keys.js';
import { HttpError } from '../errors.js';
import type { GradientRow, StageRow } from '../state/swarm.js';
import type { Coordinator } from './coordinator.js';
import type { UploadDuty } from './contracts.js';
import { requiredFraction, requiredSamples } from './scheduler.js';

export interface DeclaredGradient {
  size: number;
  sha256: string;
  partitions: string[];
}

export function gradientKey(run: string, epoch: number, stage: number, miner: string): string {
  return keys.gradient({ run, epoch, stage, owner: miner });
}

/** Upload URLs for a gradient expire with the UPLOADING phase; refused outside it. */
export function gradientExpiry(
  c: Coordinator,
  miner: string,
  epoch: number,
  stage: number,
  now: number,
): number {
  const st = c.stageOrThrow(stage);
  requireUploading(c, st, epoch, now);
  requireCredit(c, epoch, stage, miner);
  return st.deadline!;
}

/** Partitions of a stage's flat vector, as the merge cuts it. */
export function partitionCount(c: Coordinator, stage: number): number {
  return Math.ceil(
    c.cfg.params[stage] / Math.max(1, Math.floor(c.cfg.run.merge.partition_bytes / 4)),
  );
}

/** Records a stored gradient once it matches what the miner declared; a repeat of the same upload is answered again. */
export function acceptGradient(
  c: Coordinator,
  miner: string,
  epoch: number,
  stage: number,
  declared: DeclaredGradient,
  stored: { size: number; sha256?: string } | undefined,
  now: number,
): { samples: number; key: string } {
  c.member(miner);
  const key = gradientKey(c.cfg.name, epoch, stage, miner);
  const st = c.stageOrThrow(stage);
  const existing = c.state.gradient(epoch, stage, miner);
  if (existing) {
    if (existing.sha256 === declared.sha256 && existing.size === declared.size)
      return { samples: existing.n, key };
    throw new HttpError(
      'E_ALREADY_UPLOADED',
      `your gradient for stage ${stage}, epoch ${epoch} was already accepted with another hash`,
    );
  }
  requireUploading(c, st, epoch, now);
  const n = requireCredit(c, epoch, stage, miner);
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
  const P = partitionCount(c, stage);
  if (declared.partitions.length !== P)
    throw new HttpError(
      'E_BAD_REQUEST',
      `stage ${stage} has ${P} merge partitions; the upload declares ${declared.partitions.length} partition hashes`,
    );
  c.state.addGradient({
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
  c.advanceStage(stage, now);
  return { samples: n, key };
}

/** What a miner credited in this stage's epoch still has to upload, with the step's learning rate. */
export function uploadDuty(c: Coordinator, st: StageRow, miner: string): UploadDuty | undefined {
  const n = c.state.minerCredit(st.epoch, st.stage, miner);
  if (n === 0 || c.state.gradient(st.epoch, st.stage, miner)) return undefined;
  return {
    epoch: st.epoch,
    stage: st.stage,
    key: gradientKey(c.cfg.name, st.epoch, st.stage, miner),
    samples: n,
    lr: learningRate(st.epoch, c.cfg.run.optimizer.lr, c.cfg.run.schedule),
    step: st.manifest.step + 1,
    deadline: st.deadline!,
  };
}

/**
 * What UPLOADING(E) of a stage does now: close once the uploaded share of its credited samples
 * meets the decaying requirement, or once every credited miner still heard from has uploaded
 * and the floor is met (the silent lose theirs at the close); give up at the deadline; or wait.
 */
export function uploadsNext(
  c: Coordinator,
  st: StageRow,
  credits: Array<{ miner: string; n: number }>,
  uploads: GradientRow[],
  now: number,
): 'close' | 'wait' | { abandon: string } {
  const p = c.cfg.run.phases;
  const total = credits.reduce((a, x) => a + x.n, 0);
  const uploaded = uploads.reduce((a, g) => a + g.n, 0);
  const floor = requiredSamples(total, p.floor_fraction);
  if (
    uploaded >=
    requiredSamples(
      total,
      requiredFraction(p.required_fraction, p.floor_fraction, st.since, st.deadline!, now),
    )
  )
    return 'close';
  const done = new Set(uploads.map((g) => g.miner));
  if (uploaded >= floor && credits.every((x) => done.has(x.miner) || c.isSilent(x.miner, now)))
    return 'close';
  if (now >= st.deadline!)
    return {
      abandon: `only ${uploaded} of ${total} credited samples were uploaded by the deadline (floor ${floor})`,
    };
  return 'wait';
}

function requireUploading(c: Coordinator, st: StageRow, epoch: number, now: number): void {
  if (st.phase !== 'uploading' || st.epoch !== epoch)
    throw c.phaseClosed(
      st,
      `gradients of epoch ${epoch} are accepted in UPLOADING(${epoch}) only`,
      now,
    );
}

function requireCredit(c: Coordinator, epoch: number, stage: number, miner: string): number {
  const n = c.state.minerCredit(epoch, stage, miner);
  if (n === 0)
    throw new HttpError(
      'E_NOTHING_TO_UPLOAD',
      `the ledger credits you no samples at stage ${stage} in epoch ${epoch}`,
    );
  return n;
}
