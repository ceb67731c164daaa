/**
 * The miner: joins a run, takes a stage, does forward and backward work for as many samples as
 * it can, uploads its gradient sum when its stage is UPLOADING, merges the partitions it is
 * given when MERGING, loads the new weights and goes on. Compute runs on its own thread; items
 * are worked on concurrently (up to the run's `in_flight`), so downloads and uploads overlap
 * compute, and heartbeats keep leases alive during long steps.
 */
import { stageSpecs } from '../config/model.js';
import { IotaError, isIotaError } from '../errors.js';
import { encodeGradient, partitionHashes } from '../merge/gradient.js';
import { partitionElements } from '../merge/manifest.js';
import { loadStageWeights } from '../merge/weights.js';
import { MergeWorker } from '../merge/worker.js';
import { OwnCopies } from '../merge/own-copies.js';
import { stageLayout } from '../model/params.js';
import { ApiError, SignedClient } from '../protocol/client.js';
import type { WorkItemMessage, WorkReply, JoinReply } from '../protocol/swarm-messages.js';
import { describeUpload } from '../store/index.js';
import { sha256Hex } from '../tensor-io/hash.js';
import { Compute } from '../compute/compute.js';
import { shareNative } from '../kernels/native/loader.js';
import { Stopwatch } from './timing.js';
import { uploadObject } from '../protocol/upload.js';
import {
  afterFailure,
  ITEM_LOST,
  UNREACHABLE_INPUT,
  untilAnswered,
  UPLOAD_OVER,
} from './refusals.js';
import {
  newStats,
  type ManifestRef,
  type MinerEvent,
  type MinerOptions,
  type RunInfo,
} from './options.js';
import { encodeActivation, type Codec } from '../compute/tensors.js';
import { computeItem, keepLimits } from './item-compute.js';

export type { MinerOptions, MinerEvent } from './options.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** How long the orchestrator may hold a request for work while there is none (a long poll). */
const WORK_WAIT_MS = 2000;

export class Miner {
  readonly client: SignedClient;
  private compute: Compute;
  private info!: RunInfo;
  stage = -1;
  epoch = -1;
  private weights?: Float32Array;
  private manifestKey = '';
  private stopping = false;
  private heartbeat?: NodeJS.Timeout;
  private merger?: MergeWorker;
  /** what this miner uploaded for the merge, so that it never downloads it back */
  private readonly copies = new OwnCopies();
  private uploadedFor = -1;
  /** where its time went (timing.ts) */
  readonly clock = new Stopwatch();
  /** items being worked on, up to the run's in_flight (`launch`) */
  private readonly active = new Set<Promise<void>>();
  /** the first unexpected failure of an item in flight, thrown by the next step */
  private itemFailure?: { error: unknown };
  /** samples whose gradient this miner holds for the current epoch (acknowledged) */
  credited = 0;
  readonly stats = newStats();

  constructor(private readonly o: MinerOptions) {
    this.client = new SignedClient({ baseUrl: o.orchestrator, identity: o.identity, run: '' });
    this.compute = new Compute(o.computeWorker);
  }

  /** Stop taking work; items in flight are finished and reported. */
  stop(): void {
    this.stopping = true;
  }

  private emit(e: MinerEvent): void {
    this.o.onEvent(e);
  }

  async run(): Promise<void> {
    try {
      await this.start();
      let failures = 0;
      while (!this.stopping) {
        try {
          await this.step();
          failures = 0;
        } catch (e) {
          const next = afterFailure(e, ++failures);
          if (!next) throw e;
          this.emit({ event: 'warning', message: next.message });
          await sleep(next.waitMs);
          continue;
        }
        if (this.o.maxSamples !== undefined && this.stats.samples >= this.o.maxSamples) break;
        if (this.o.maxEpochs !== undefined && this.stats.epochsDone >= this.o.maxEpochs) break;
      }
    } finally {
      // Items in flight are finished and reported (or lost) before the compute thread goes.
      while (this.active.size > 0) await Promise.allSettled([...this.active]);
      if (this.heartbeat) clearInterval(this.heartbeat);
      await this.compute.close();
      await this.client.close();
      this.emit({
        event: 'stopped',
        samples: this.stats.samples,
        epochs: this.stats.epochsDone,
        backwards: { kept: this.stats.bwdKept, recomputed: this.stats.bwdRecomputed },
        timing: this.clock.snapshot(),
      });
    }
  }

  private async start(): Promise<void> {
    // The run id is signed into every request: the orchestrator says which it serves.
    const hello = await this.client.get<{ run: string; protocol: number; config_hash?: string }>(
      '/v1/info',
    );
    if (!hello.config_hash)
      throw new IotaError(
        'E_NO_RUN',
        `${this.o.orchestrator} serves no run`,
        'start the orchestrator with --run FILE',
      );
    (this.client.o as { run: string }).run = hello.run;
    await this.client.post('/v1/register', {
      version: this.o.version,
      ...(this.o.name ? { name: this.o.name } : {}),
      backend: this.o.backend,
    });
    this.info = await this.client.get<RunInfo>('/v1/run');
    this.client.runHash = this.info.config_hash;
    const joined = await this.client.post<JoinReply>('/v1/join', { layer: this.o.layer });
    await this.enterStage(joined.stage, joined.manifest, joined.epoch);
    const every = Math.max(500, (this.info.run.phases.lease_s * 1000) / 3);
    this.heartbeat = setInterval(() => {
      this.client
        .post('/v1/heartbeat', {})
        .catch((e) =>
          this.emit({ event: 'warning', message: `heartbeat failed: ${(e as Error).message}` }),
        );
    }, every);
    this.heartbeat.unref();
  }

  private async enterStage(stage: number, manifest: ManifestRef, epoch: number): Promise<void> {
    // Every partition the manifest lists, each hash verified; those this miner computed itself
    // in the merge come from its own copies.
    const held = (sha256: string) => this.copies.whole(sha256);
    const bytesIn = (n: number) => (this.stats.bytesIn += n);
    const { weights } = await this.clock.time(
      'weights_ms',
      loadStageWeights(this.client, manifest, this.o.transfer, bytesIn, held),
    );
    if (stage !== this.stage) {
      await this.compute.close().catch(() => 0);
      this.compute = new Compute(this.o.computeWorker);
      const keep = keepLimits(this.info.run.in_flight, this.o.recompute);
      await this.compute.init(this.info.model, stage, weights, this.o.backend, keep);
      // The merge's AdamW runs here, on the addon the compute thread uses (the same bytes).
      if (this.compute.backend === 'native') shareNative();
      const opt = this.info.run.optimizer;
      const layout = stageLayout(this.info.model, stageSpecs(this.info.model)[stage]).params;
      this.merger = new MergeWorker({
        client: this.client,
        layout: () => layout,
        adamw: { beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weight_decay },
        replica: () => this.weights,
        copies: this.copies,
        clock: this.clock,
        transfer: this.o.transfer,
      });
      this.emit({
        event: 'joined',
        run: this.info.name,
        stage,
        epoch,
        backend: this.compute.backend,
        stages: this.info.stages,
      });
    } else {
      await this.compute.setWeights(weights);
      await this.compute.reset();
    }
    this.stage = stage;
    this.epoch = epoch;
    this.weights = weights;
    this.copies.keepFrom(manifest.epoch);
    this.manifestKey = manifest.key;
    this.credited = 0;
    this.emit({
      event: 'weights',
      stage,
      epoch,
      weights_epoch: manifest.epoch,
      step: manifest.step,
      sha256: sha256Hex(new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength)),
    });
  }

  /**
   * One exchange with the orchestrator and the work it gives. Items run on in the background,
   * up to the run's `in_flight` of them: the next is asked for (a long poll) as soon as there
   * is room, so its input downloads while the others compute and the compute thread is never
   * left waiting for a round trip. Anything that changes the weights or the epoch (a new
   * manifest, a move, an upload duty, a merge) waits for the items in flight first.
   */
  private async step(): Promise<void> {
    this.rethrowItemFailure();
    const room = this.info.run.in_flight - this.active.size;
    if (room <= 0) {
      await Promise.race(this.active);
      return;
    }
    const w = await this.clock.time(
      'calls_ms',
      this.client.post<WorkReply>('/v1/work', { max: room, wait_ms: WORK_WAIT_MS }),
    );
    const newWeights = w.stage !== this.stage || w.manifest.key !== this.manifestKey;
    // Items in flight finish (and count) before the weights or the epoch change, before the
    // gradient sum is uploaded and before a merge.
    if (newWeights || w.epoch > this.epoch || (w.items.length === 0 && w.phase !== 'training'))
      await this.settle();
    if (newWeights) {
      const moved = w.stage !== this.stage;
      if (!moved && w.epoch > this.epoch) this.stats.epochsDone += w.epoch - this.epoch;
      await this.enterStage(w.stage, w.manifest, w.epoch);
      if (this.o.maxEpochs !== undefined && this.stats.epochsDone >= this.o.maxEpochs) {
        // Hand back what was just leased: the leases lapse and the items go to others.
        return;
      }
    } else if (w.epoch > this.epoch) {
      // An epoch was abandoned: same weights, a new epoch; the gradient sum starts again.
      this.stats.epochsDone += w.epoch - this.epoch;
      this.epoch = w.epoch;
      this.credited = 0;
      await this.compute.reset();
    }
    const due = w.deadline ? ` until ${new Date(w.deadline).toISOString().slice(11, 19)}` : '';
    this.stats.phase = `${w.phase.toUpperCase()}(${w.epoch})${due}`;
    if (w.items.length > 0) {
      this.stats.idle = '';
      for (const it of w.items) this.launch(it);
      return;
    }
    if (w.duty && this.uploadedFor !== w.duty.epoch) {
      await this.uploadGradient(w.duty.epoch, w.duty.stage, w.duty.key, w.duty.samples);
      return;
    }
    if (w.phase === 'merging' && this.merger) {
      const done = await this.clock.time('merge_ms', this.merger.runOnce());
      if (done > 0) {
        this.emit({
          event: 'merge',
          epoch: w.epoch,
          stage: w.stage,
          jobs: done,
          bytes_in: this.merger.bytesDown,
          bytes_out: this.merger.bytesUp,
        });
        return;
      }
    }
    this.stats.idle = w.idle ? `${w.idle.reason}: ${w.idle.message}` : '';
    this.emit({
      event: 'idle',
      reason: w.idle?.reason,
      message: w.idle?.message,
      next_change_at: w.idle?.next_change_at,
      phase: w.phase,
      epoch: w.epoch,
    });
    // In training the orchestrator already waited for a change (the long poll): ask again
    // soon, or as an item in flight ends. Otherwise wait for the phase's next change.
    const until = w.idle?.next_change_at ? w.idle.next_change_at - w.server_time : 1000;
    const ms = Math.max(25, Math.min(w.phase === 'training' ? 25 : 250, until));
    await this.clock.time('idle_ms', Promise.race([sleep(ms), ...this.active]));
  }

  /** Works on an item in the background; an unexpected failure is thrown by the next step. */
  private launch(it: WorkItemMessage): void {
    const p: Promise<void> = this.item(it)
      .catch((e: unknown) => {
        this.itemFailure ??= { error: e };
      })
      .finally(() => this.active.delete(p));
    this.active.add(p);
  }

  /** Waits for every item in flight, then throws the first unexpected failure among them. */
  private async settle(): Promise<void> {
    while (this.active.size > 0) await Promise.all(this.active);
    this.rethrowItemFailure();
  }

  private rethrowItemFailure(): void {
    const f = this.itemFailure;
    if (!f) return;
    this.itemFailure = undefined;
    throw f.error;
  }

  private async item(it: WorkItemMessage): Promise<void> {
    const done = await computeItem(it, {
      compute: this.compute,
      clock: this.clock,
      model: this.info.model,
      transfer: this.o.transfer,
      recompute: this.o.recompute,
      onBytes: (b) => (this.stats.bytesIn += b),
      fetch: (get) => this.fetch(it, get),
    });
    if (!done) return;
    const { out, losses, act, kept, recomputed } = done;
    const codec: Codec = it.kind === 'fwd' ? this.info.run.activation_codec : 'f32';
    const n = it.samples.length;

    try {
      // The lease can be lost at the upload as at the report: expired, its item dropped
      // (another miner refused its input) or its epoch closed. The item is gone; work goes on.
      let output: { size: number; sha256: string } | undefined;
      if (it.output_key && out)
        output = await this.put(
          'activation',
          it.output_key,
          this.clock.timeSync('encode_ms', () => encodeActivation(out, act, codec)),
        );
      const r = await this.clock.time(
        'calls_ms',
        untilAnswered<{ credited: number }>(
          this.client,
          '/v1/report',
          { lease: it.lease, ...(output ? { output } : {}), ...(losses ? { losses } : {}) },
          (message) => this.emit({ event: 'warning', message }),
        ),
      );
      if (r.credited > 0) {
        await this.compute.commit(it.lease);
        this.credited += r.credited;
      }
      this.stats[it.kind] += n;
      if (it.kind === 'bwd') this.stats[recomputed ? 'bwdRecomputed' : 'bwdKept'] += n;
      if (it.kind !== 'fwd') this.stats.samples += n;
      const { epoch, stage, item } = it;
      if (losses) {
        const loss = (this.stats.lastLoss = losses.reduce((a, b) => a + b, 0) / losses.length);
        this.emit({ event: 'loss', epoch, item, samples: it.samples, loss });
      }
      this.emit({ event: 'item', kind: it.kind, epoch, stage, item, samples: n });
    } catch (e) {
      if (it.kind !== 'fwd') await this.compute.discard(it.lease);
      else if (kept) await this.compute.release(kept);
      if (isIotaError(e) && ITEM_LOST.has(e.code)) {
        this.emit({ event: 'lost', lease: it.lease, code: e.code, message: e.message });
        return;
      }
      throw e;
    }
  }

  /**
   * An item's inputs, or null when they are bad (refused: the item is dropped) or out of reach
   * (given up: its lease lapses to another, as the store out of reach says nothing about them).
   */
  private async fetch<T>(it: WorkItemMessage, get: () => Promise<T>): Promise<T | null> {
    try {
      return await this.clock.time('inputs_ms', get());
    } catch (e) {
      if (!isIotaError(e)) throw e;
      if (UNREACHABLE_INPUT.has(e.code))
        this.emit({ event: 'lost', lease: it.lease, code: e.code, message: e.message });
      else await this.refuse(it, e);
      return null;
    }
  }

  /** A bad input: tell the orchestrator (the item is dropped) and carry on. */
  private async refuse(it: WorkItemMessage, e: IotaError): Promise<void> {
    this.stats.refused++;
    this.emit({ event: 'refused', item: it.item, kind: it.kind, code: e.code, message: e.message });
    try {
      await this.client.post('/v1/refuse', {
        lease: it.lease,
        code: e.code,
        message: e.message.slice(0, 300),
      });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    }
  }

  private async uploadGradient(
    epoch: number,
    stage: number,
    key: string,
    samples: number,
  ): Promise<void> {
    if (samples !== this.credited)
      this.emit({
        event: 'warning',
        message: `the ledger credits ${samples} samples, this miner counted ${this.credited}`,
      });
    const sum = await this.clock.time('gradient_ms', this.compute.gradientSum());
    const bytes = this.clock.timeSync('encode_ms', () => encodeGradient(sum));
    const params = this.info.params[stage];
    try {
      const d = await this.put('gradient', key, bytes);
      this.copies.gradient(key, epoch, bytes);
      await this.client.post('/v1/gradient', {
        epoch,
        stage,
        ...d,
        partitions: partitionHashes(
          bytes,
          params,
          partitionElements(this.info.run.merge.partition_bytes),
        ),
      });
    } catch (e) {
      // The credit was voided meanwhile (a failed check), the phase closed, or the upload was
      // already taken: nothing left to upload for this epoch.
      if (!(isIotaError(e) && (UPLOAD_OVER.has(e.code) || e.code === 'E_URL_EXPIRED'))) throw e;
      this.uploadedFor = epoch;
      this.emit({ event: 'upload_skipped', epoch, stage, code: e.code, message: e.message });
      return;
    }
    this.uploadedFor = epoch;
    this.emit({ event: 'upload', epoch, stage, samples, bytes: bytes.length });
  }

  private async put(
    kind: 'activation' | 'gradient',
    key: string,
    bytes: Uint8Array,
  ): Promise<{ size: number; sha256: string }> {
    this.stats.bytesOut += bytes.length;
    const d = this.clock.timeSync('hash_ms', () => describeUpload(bytes));
    return this.clock.time(
      'upload_ms',
      uploadObject(this.client, kind, key, bytes, d, this.o.transfer),
    );
  }
}
