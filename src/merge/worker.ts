/**
 * A merger's side of MERGING (used by the miner, and by tests and benches as simulated miners):
 * fetch the jobs, read each participant's slice of a partition by Range (checked against its
 * declared hash), reduce it, report; then apply clip and AdamW to the partition and upload the
 * new weights and moments (or, as a witness, report only their hashes). Every byte in and out
 * is counted.
 */
import { ApiError, type SignedClient } from '../protocol/client.js';
import { uploadObject } from '../protocol/upload.js';
import type { MergeJobMessage, MergeJobsReply } from '../protocol/swarm-messages.js';
import type { ParamSpec } from '../model/params.js';
import { describeUpload, download, type TransferOptions } from '../store/index.js';
import { sha256Hex } from '../tensor-io/hash.js';
import { isIotaError } from '../errors.js';
import { decodeSlice } from './gradient.js';
import { decodePartition, encodePartition } from './manifest.js';
import type { OwnCopies } from './own-copies.js';
import { reduceSlices, type Reduction, type Slice } from './reduce.js';
import {
  decodeOptimState,
  encodeOptimState,
  updatePartition,
  type PartitionUpdate,
} from './update.js';

export interface MergeWorkerOptions {
  client: SignedClient;
  /** the stage layout's parameters (weight decay applies to matrices only) */
  layout: (stage: number) => readonly ParamSpec[];
  adamw: { beta1: number; beta2: number; eps: number; weightDecay: number };
  /** this miner's own copy of the stage's current weights, if it has one (saves downloading w_E) */
  replica?: (stage: number) => Float32Array | undefined;
  /** what this merger uploaded itself: read from here, not the store, when the hashes match */
  copies?: OwnCopies;
  /** where the time goes: reading inputs, computing (reduce, update, encode), writing results */
  clock?: MergeClock;
  transfer?: TransferOptions;
  /** a test's hook to tamper with a result before it is reported (never set by the miner) */
  tamper?: {
    reduction?: (r: Reduction) => Reduction;
    update?: (u: PartitionUpdate) => PartitionUpdate;
  };
}

/** The miner's stopwatch, as far as the merge uses it. */
export interface MergeClock {
  time<T>(what: MergePart, p: Promise<T>): Promise<T>;
  timeSync<T>(what: MergePart, fn: () => T): T;
}
type MergePart = 'merge_read_ms' | 'merge_compute_ms' | 'merge_write_ms';

export class MergeWorker {
  bytesDown = 0;
  bytesUp = 0;
  jobsDone = 0;
  private reductions = new Map<string, Reduction>();

  constructor(private readonly o: MergeWorkerOptions) {}

  /**
   * Does every job assigned now; returns how many. A job that went away meanwhile (re-planned, re-
   * assigned, phase over) is skipped.
   */
  async runOnce(): Promise<number> {
    const { jobs } = await this.o.client.get<MergeJobsReply>('/v1/merge/jobs');
    let done = 0;
    for (const job of jobs) {
      try {
        if (await this.run(job)) done++;
      } catch (e) {
        if (e instanceof ApiError && (e.code === 'E_NO_JOB' || e.code === 'E_PHASE_CLOSED'))
          continue;
        throw e;
      }
    }
    return done;
  }

  private cacheKey(j: MergeJobMessage): string {
    return `${j.epoch}/${j.stage}/${j.round}/${j.partition}`;
  }

  private async reduce(job: MergeJobMessage): Promise<Reduction | undefined> {
    const cached = this.reductions.get(this.cacheKey(job));
    if (cached) return cached;
    const slices: Slice[] = [];
    for (const i of job.inputs) {
      const own = this.o.copies?.range(i.key, i.start, i.end, i.sha256);
      if (own) {
        slices.push({ miner: i.miner, data: decodeSlice(own, job.length) });
        continue;
      }
      try {
        const bytes = await this.timed(
          'merge_read_ms',
          download(
            i.url!,
            { range: { start: i.start, end: i.end }, rangeSha256: i.sha256 },
            this.o.transfer,
          ),
        );
        this.bytesDown += bytes.length;
        slices.push({ miner: i.miner, data: decodeSlice(bytes, job.length) });
      } catch (e) {
        if (!isIotaError(e)) throw e;
        await this.o.client.post('/v1/merge/unavailable', {
          epoch: job.epoch,
          stage: job.stage,
          round: job.round,
          partition: job.partition,
          step: job.step,
          participant: i.miner,
          reason: `${e.code}: ${e.message}`,
        });
        return undefined;
      }
    }
    const r = this.computing(() => reduceSlices(slices, job.N));
    this.reductions.set(this.cacheKey(job), r);
    return r;
  }

  private async run(job: MergeJobMessage): Promise<boolean> {
    let red = await this.reduce(job);
    if (!red) return false;
    if (job.step === 1) {
      if (this.o.tamper?.reduction) red = this.o.tamper.reduction(red);
      await this.o.client.post('/v1/merge/reduced', {
        epoch: job.epoch,
        stage: job.stage,
        round: job.round,
        partition: job.partition,
        sha256: red.sha256,
        norm2: red.norm2,
        slice_norms2: red.sliceNorms2,
      });
      this.jobsDone++;
      return true;
    }
    if (red.sha256 !== job.gbar_sha256) {
      // The agreed mean differs from ours: recompute from the inputs once before giving up.
      this.reductions.delete(this.cacheKey(job));
      const again = await this.reduce(job);
      if (!again || again.sha256 !== job.gbar_sha256) return false;
      red = again;
    }
    const wE = await this.weights(job);
    const prev = job.optim
      ? decodeOptimState(
          this.o.copies?.whole(job.optim.sha256) ??
            (await this.fetch(job.optim.url!, job.optim.sha256, job.optim.size)),
          job.length,
        )
      : undefined;
    const { wBytes, optimBytes } = this.computing(() => {
      let u = updatePartition(
        wE,
        red.gbar,
        prev,
        job.offset,
        this.o.layout(job.stage),
        { lr: job.lr!, ...this.o.adamw },
        job.t!,
        job.clip_factor!,
      );
      if (this.o.tamper?.update) u = this.o.tamper.update(u);
      return {
        wBytes: encodePartition(u.w, job.offset),
        optimBytes: encodeOptimState(u.m, u.v, job.offset),
      };
    });
    // Without output keys this merger witnesses the partition: another uploads it, and the
    // orchestrator compares the hashes.
    const w = job.outputs
      ? await this.put('merged', job.outputs.w, wBytes)
      : { size: wBytes.length, sha256: sha256Hex(wBytes) };
    const optim = job.outputs
      ? await this.put('optimizer', job.outputs.optim, optimBytes)
      : { size: optimBytes.length, sha256: sha256Hex(optimBytes) };
    this.o.copies?.output('weights', w.sha256, job.epoch + 1, wBytes);
    this.o.copies?.output('optim', optim.sha256, job.epoch + 1, optimBytes);
    await this.o.client.post('/v1/merge/updated', {
      epoch: job.epoch,
      stage: job.stage,
      round: job.round,
      partition: job.partition,
      w,
      optim,
    });
    this.reductions.delete(this.cacheKey(job));
    this.jobsDone++;
    return true;
  }

  /** w_E of the partition: from the replica when its bytes hash to the manifest's, else downloaded. */
  private async weights(job: MergeJobMessage): Promise<Float32Array> {
    const replica = this.o.replica?.(job.stage);
    if (replica && replica.length >= job.offset + job.length) {
      const slice = replica.slice(job.offset, job.offset + job.length);
      if (sha256Hex(encodePartition(slice, job.offset)) === job.w!.sha256) return slice;
    }
    const bytes =
      this.o.copies?.whole(job.w!.sha256) ??
      (await this.fetch(job.w!.url!, job.w!.sha256, job.w!.size));
    return decodePartition(bytes, job.length);
  }

  private timed<T>(what: 'merge_read_ms' | 'merge_write_ms', p: Promise<T>): Promise<T> {
    return this.o.clock ? this.o.clock.time(what, p) : p;
  }

  private computing<T>(fn: () => T): T {
    return this.o.clock ? this.o.clock.timeSync('merge_compute_ms', fn) : fn();
  }

  private async fetch(url: string, sha256: string, size: number): Promise<Uint8Array> {
    const bytes = await this.timed(
      'merge_read_ms',
      download(url, { sha256, size }, this.o.transfer),
    );
    this.bytesDown += bytes.length;
    return bytes;
  }

  private async put(
    kind: 'merged' | 'optimizer',
    key: string,
    bytes: Uint8Array,
  ): Promise<{ size: number; sha256: string }> {
    const d = await this.timed(
      'merge_write_ms',
      uploadObject(this.o.client, kind, key, bytes, describeUpload(bytes), this.o.transfer),
    );
    this.bytesUp += bytes.length;
    return d;
  }
}
