/**
 * Training windows read from a prepared dataset on the local disk: exactly the window's bytes,
 * by position, the way a remote reader fetches them by Range. Used by single-process training
 * and evaluation.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { IotaError } from '../errors.js';
import type { Dataset } from './dataset.js';
import { WindowIndex, readWindow } from './windows.js';

export class LocalWindows {
  readonly index: WindowIndex;
  private fds = new Map<string, number>();
  private paths: Map<string, string>;

  constructor(
    readonly dataset: Dataset,
    seq: number,
    seed: string | number,
    heldOutFraction = 0.01,
  ) {
    this.index = new WindowIndex(dataset.shards, seq, seed, heldOutFraction);
    this.paths = new Map(dataset.shards.map((s) => [s.name, s.path]));
  }

  /** The seq + 1 tokens of training sample `id` (ids cycle over the training windows). */
  trainSample(id: number): Int32Array {
    return this.window(this.index.trainWindow(id));
  }

  /** The seq + 1 tokens of held-out window `j`. */
  heldOutSample(j: number): Int32Array {
    return this.window(this.index.heldOutWindow(j));
  }

  window(w: number): Int32Array {
    return readWindow(this.windowBytes(w), this.dataset.manifest.bytesPerToken, {
      expectTokens: this.index.windowTokens,
      vocabSize: this.dataset.manifest.vocabSize,
    });
  }

  /** The window's bytes as stored in its shard: what a Range read of the shard object returns. */
  windowBytes(w: number): Uint8Array {
    const r = this.index.byteRange(w);
    const buf = new Uint8Array(r.end - r.start);
    const got = readSync(this.fd(r.shard), buf, 0, buf.length, r.start);
    return buf.subarray(0, got);
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }

  private fd(shard: string): number {
    let fd = this.fds.get(shard);
    if (fd === undefined) {
      const path = this.paths.get(shard);
      if (!path) throw new IotaError('E_BAD_DATASET', `dataset has no shard ${shard}`);
      fd = openSync(path, 'r');
      this.fds.set(shard, fd);
    }
    return fd;
  }
}
