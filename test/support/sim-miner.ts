/** A simulated participant: a fresh key and a signed client, no model. */
import { newIdentity, type Identity } from '../../src/protocol/keys.js';
import { SignedClient } from '../../src/protocol/client.js';
import type { RegisterReply, StatusReply } from '../../src/protocol/messages.js';
import type {
  GradientReply,
  JoinReply,
  ReportReply,
  WorkItemMessage,
  WorkReply,
} from '../../src/protocol/swarm-messages.js';
import { describeUpload, download, upload, type UploadPlan } from '../../src/store/index.js';
import { encodeActivation, type Codec } from '../../src/compute/tensors.js';
import { encodeGradient, partitionHashes } from '../../src/merge/gradient.js';
import { partitionElements } from '../../src/merge/manifest.js';

/** What a simulated miner reads of `GET /v1/run`. */
interface RunShape {
  params: number[];
  run: { merge: { partition_bytes: number }; activation_codec: Codec };
  model: { seq: number; bottleneck: number };
}

export class SimParticipant {
  readonly identity: Identity;
  readonly client: SignedClient;

  constructor(url: string, run = 'test-run', identity = newIdentity(), clock?: () => number) {
    this.identity = identity;
    this.client = new SignedClient({ baseUrl: url, identity, run, clock, retries: 0 });
  }

  get id(): string {
    return this.identity.id;
  }

  register(name = 'sim'): Promise<RegisterReply> {
    return this.client.post<RegisterReply>('/v1/register', { version: 'test', name });
  }

  heartbeat(): Promise<{ server_time: number }> {
    return this.client.post('/v1/heartbeat', {});
  }

  status(): Promise<StatusReply> {
    return this.client.get<StatusReply>('/v1/status');
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

/**
 * A simulated miner over HTTP: joins a stage, takes work, reads its inputs through the URLs it
 * is given (verifying hashes), uploads made-up outputs through scoped URLs, reports them, and
 * uploads a made-up gradient when its stage is UPLOADING. No model: outputs are random bytes.
 */
export class SimMiner extends SimParticipant {
  held: WorkItemMessage[] = [];
  credited = 0;
  last?: WorkReply;

  async join(layer: 'auto' | number = 'auto'): Promise<JoinReply> {
    return this.client.post<JoinReply>('/v1/join', { layer });
  }

  /** Asks for up to `max` items; with `waitMs`, a long poll as the real miner makes. */
  async work(max = 2, waitMs?: number): Promise<WorkReply> {
    const body = waitMs === undefined ? { max } : { max, wait_ms: waitMs };
    this.last = await this.client.post<WorkReply>('/v1/work', body);
    this.held.push(...this.last.items);
    return this.last;
  }

  /** the bytes to upload as an item's output (default: random values of the run's shape and codec) */
  outputFor: (it: WorkItemMessage) => Uint8Array | Promise<Uint8Array> = async (it) => {
    const { run, model } = await this.runInfo();
    const shape: [number, number, number] = [it.samples.length, model.seq, model.bottleneck];
    const values = new Float32Array(shape[0] * shape[1] * shape[2]).map(() => Math.random() - 0.5);
    return encodeActivation(values, shape, it.kind === 'fwd' ? run.activation_codec : 'f32');
  };
  /** per-sample losses a tail item reports (default: made up) */
  lossesFor: (it: WorkItemMessage) => number[] | Promise<number[]> = (it) =>
    it.samples.map(() => 5 + Math.random());
  /** called after an output is uploaded and before it is reported (a test may tamper with it) */
  afterUpload?: (it: WorkItemMessage, key: string) => Promise<void> | void;

  /** Reads the item's inputs as a miner would, then uploads an output and reports. */
  async complete(it: WorkItemMessage, o: { skipInputs?: boolean } = {}): Promise<ReportReply> {
    if (!o.skipInputs) {
      for (const w of it.windows ?? [])
        await download(w.url!, { range: { start: w.start, end: w.end }, rangeSha256: w.sha256 });
      for (const ref of [it.x, it.dy])
        if (ref) await download(ref.url!, { sha256: ref.sha256, size: ref.size });
    }
    let output: { size: number; sha256: string } | undefined;
    if (it.output_key) {
      output = await this.put('activation', it.output_key, await this.outputFor(it));
      await this.afterUpload?.(it, it.output_key);
    }
    const losses = it.kind === 'tail' ? await this.lossesFor(it) : undefined;
    const r = await this.client.post<ReportReply>('/v1/report', {
      lease: it.lease,
      ...(output ? { output } : {}),
      ...(losses ? { losses } : {}),
    });
    this.credited += r.credited;
    this.held = this.held.filter((h) => h.lease !== it.lease);
    return r;
  }

  /** Takes up to `max` items and completes them all; returns how many. */
  async round(max = 2): Promise<number> {
    const w = await this.work(max);
    for (const it of w.items) await this.complete(it);
    if (w.duty) await this.uploadGradient(w.duty.epoch, w.duty.stage, w.duty.key, w.duty.samples);
    return w.items.length;
  }

  /** gradient sums this miner uploaded, by `epoch/stage` */
  readonly gradients = new Map<string, Float32Array>();
  /** makes the gradient sum to upload (default: uniform in [-0.5, 0.5) per element) */
  makeGradient: (params: number, samples: number) => Float32Array | Promise<Float32Array> = (
    params,
  ) => new Float32Array(params).map(() => Math.random() - 0.5);

  /** A made-up gradient of the stage's real length (`params`), with its partition hashes. */
  async uploadGradient(
    epoch: number,
    stage: number,
    key: string,
    samples = 1,
  ): Promise<GradientReply> {
    const run = await this.runInfo();
    const params = run.params[stage];
    const g = await this.makeGradient(params, samples);
    this.gradients.set(`${epoch}/${stage}`, g);
    const bytes = encodeGradient(g);
    const d = await this.put('gradient', key, bytes);
    return this.client.post<GradientReply>('/v1/gradient', {
      epoch,
      stage,
      ...d,
      partitions: partitionHashes(bytes, params, partitionElements(run.run.merge.partition_bytes)),
    });
  }

  /** the run as `GET /v1/run` describes it (cached) */
  private info?: RunShape;
  async runInfo(): Promise<RunShape> {
    this.info ??= await this.client.get<RunShape>('/v1/run');
    return this.info;
  }

  private async put(
    kind: string,
    key: string,
    bytes: Uint8Array,
  ): Promise<{ size: number; sha256: string }> {
    const d = describeUpload(bytes);
    const plan = await this.client.post<UploadPlan>('/v1/storage/upload', {
      kind,
      key,
      size: d.size,
      sha256: d.sha256,
      chunk_hashes: d.chunkHashes,
    });
    await upload(plan, bytes);
    return { size: d.size, sha256: d.sha256 };
  }
}
