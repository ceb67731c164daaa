/**
 * The main thread's handle on the compute thread (`compute-worker.js`, started from dist/):
 * requests and replies over postMessage, so downloads, uploads and heartbeats go on while a
 * stage computes.
 */
import { Worker } from 'node:worker_threads';
import type { ModelConfig } from '../config/model.js';
import { IotaError } from '../errors.js';

export interface ComputeRequest {
  id: number;
  op:
    | 'init'
    | 'weights'
    | 'reset'
    | 'forward'
    | 'backward'
    | 'tail'
    | 'commit'
    | 'discard'
    | 'sum'
    | 'release';
  config?: ModelConfig;
  stage?: number;
  backend?: string;
  weights?: Float32Array;
  key?: string;
  tokens?: Int32Array;
  x?: Float32Array;
  shape: number[];
  dy?: Float32Array;
  dyShape?: number[];
  targets?: Int32Array;
  /** backward and tail: which gradients to form (default 'all': the weights' too, kept pending) */
  grads?: Grads;
  /** init: how many forwards to keep for their backwards (none: every backward recomputes) */
  keep?: KeepLimits;
  /** forward: keep it under this name; backward: use the forward kept under it, if held */
  kept?: string;
}

/**
 * 'all': the weights' gradients too (a miner's work, held pending under its key); 'input': the
 * input gradient only (a validator's replay); 'none': the losses only (an evaluation).
 */
export type Grads = 'all' | 'input' | 'none';

export interface ComputeReply {
  id: number;
  error?: { code: string; message: string };
  backend?: string;
  y?: Float32Array;
  dx?: Float32Array;
  shape?: number[];
  losses?: Float32Array;
  sum?: Float32Array;
  committed?: boolean;
  /** backward from a kept forward: the thread holds no forward under that name */
  missing?: boolean;
}

/** At most `items` kept forwards holding at most `bytes` in all. */
export interface KeepLimits {
  items: number;
  bytes: number;
}

export type StageInput =
  | { tokens: Int32Array; shape: [number, number] }
  | { x: Float32Array; shape: [number, number, number] };

export class Compute {
  private worker: Worker;
  private next = 1;
  private waiting = new Map<
    number,
    { resolve: (r: ComputeReply) => void; reject: (e: Error) => void }
  >();
  backend = '';

  /** `workerUrl`: where the built compute-worker.js is (tests running from sources point at dist/). */
  constructor(workerUrl: URL = new URL('./compute-worker.js', import.meta.url)) {
    this.worker = new Worker(workerUrl);
    this.worker.on('message', (r: ComputeReply) => {
      const w = this.waiting.get(r.id);
      this.waiting.delete(r.id);
      if (!w) return;
      if (r.error) w.reject(new IotaError(r.error.code, r.error.message));
      else w.resolve(r);
    });
    this.worker.on('error', (e) => {
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
    });
  }

  private call(
    req: Omit<ComputeRequest, 'id' | 'shape'> & { shape?: number[] },
  ): Promise<ComputeReply> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ shape: [], ...req, id });
    });
  }

  async init(
    config: ModelConfig,
    stage: number,
    weights: Float32Array,
    backend: string,
    keep: KeepLimits = { items: 0, bytes: 0 },
  ): Promise<void> {
    this.backend = (
      await this.call({ op: 'init', config, stage, weights, backend, keep })
    ).backend!;
  }
  async setWeights(weights: Float32Array): Promise<void> {
    await this.call({ op: 'weights', weights });
  }
  async reset(): Promise<void> {
    await this.call({ op: 'reset' });
  }
  /**
   * `kept`: keep the forward's tape under this name for `backwardKept` (the thread keeps what
   * its `KeepLimits` allow, dropping the oldest, and none across new weights).
   */
  async forward(input: StageInput, kept?: string): Promise<{ y: Float32Array; shape: number[] }> {
    const r = await this.call({ op: 'forward', ...input, kept });
    return { y: r.y!, shape: r.shape! };
  }
  /**
   * The backward of the forward kept under `kept`, with no recompute; undefined when the thread
   * does not hold it (dropped, new weights), and the caller then recomputes with `backward`.
   */
  async backwardKept(
    key: string,
    kept: string,
    dy: Float32Array,
    dyShape: number[],
  ): Promise<{ dx?: Float32Array; shape?: number[] } | undefined> {
    const r = await this.call({ op: 'backward', key, kept, dy, dyShape });
    return r.missing ? undefined : { dx: r.dx, shape: r.shape };
  }
  /** Frees a kept forward whose backward will not come here. */
  async release(kept: string): Promise<void> {
    await this.call({ op: 'release', kept });
  }
  async backward(
    key: string,
    input: StageInput,
    dy: Float32Array,
    dyShape: number[],
    grads: Exclude<Grads, 'none'> = 'all',
  ): Promise<{ dx?: Float32Array; shape?: number[] }> {
    const r = await this.call({ op: 'backward', key, ...input, dy, dyShape, grads });
    return { dx: r.dx, shape: r.shape };
  }
  async tail(
    key: string,
    input: StageInput,
    targets: Int32Array,
    grads: Grads = 'all',
  ): Promise<{ losses: Float32Array; dx?: Float32Array; shape?: number[] }> {
    const r = await this.call({ op: 'tail', key, ...input, targets, grads });
    return { losses: r.losses!, dx: r.dx, shape: r.shape };
  }
  /** Adds an acknowledged item's gradient to the sum. */
  async commit(key: string): Promise<boolean> {
    return (await this.call({ op: 'commit', key })).committed!;
  }
  async discard(key: string): Promise<void> {
    await this.call({ op: 'discard', key });
  }
  async gradientSum(): Promise<Float32Array> {
    return (await this.call({ op: 'sum' })).sum!;
  }
  close(): Promise<number> {
    return this.worker.terminate();
  }
}
