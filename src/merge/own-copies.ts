/**
 * A merger's own copies of what it uploaded: its gradient sum and the partitions (new weights,
 * moments) it computed in step 2. With r = k every merger computes every partition, so the
 * merged weights, the next epoch's moments and its own gradient slices need never come back
 * from the store: each is served from here when its bytes hash to what the plan or manifest
 * names (a copy that does not match is simply not used, and the object is downloaded).
 *
 * Copies are tagged with the epoch whose weights they belong to (a gradient of epoch E: E; the
 * outputs of epoch E's merge: E + 1) and dropped by `keepFrom`, so at most one epoch's gradient,
 * one merge's outputs and the moments the next merge needs are held.
 */
import { sha256Hex } from '../tensor-io/hash.js';

interface Copy {
  epoch: number;
  bytes: Uint8Array;
}

export class OwnCopies {
  private readonly byKey = new Map<string, Copy>();
  private readonly bySha = new Map<string, Copy & { kind: 'weights' | 'optim' }>();
  /** bytes served from here instead of the store */
  bytesSaved = 0;

  /** The gradient sum uploaded under `key` for epoch E. */
  gradient(key: string, epoch: number, bytes: Uint8Array): void {
    this.byKey.set(key, { epoch, bytes });
  }

  /** A step-2 output (an encoded partition or its moments) with its sha256, for weights of `epoch`. */
  output(kind: 'weights' | 'optim', sha256: string, epoch: number, bytes: Uint8Array): void {
    this.bySha.set(sha256, { kind, epoch, bytes });
  }

  /** Bytes [start, end) of the object uploaded under `key`, if held and they hash to `sha256`. */
  range(key: string, start: number, end: number, sha256: string): Uint8Array | undefined {
    const c = this.byKey.get(key);
    if (!c || end > c.bytes.length) return undefined;
    const bytes = c.bytes.subarray(start, end);
    return this.served(sha256Hex(bytes) === sha256 ? bytes : undefined);
  }

  /** A whole output object with this sha256, if held (its bytes were hashed when it was made). */
  whole(sha256: string): Uint8Array | undefined {
    return this.served(this.bySha.get(sha256)?.bytes);
  }

  /**
   * Drops what no later step can use once the weights of `epoch` are loaded: gradients of
   * earlier epochs, every weights copy, and moments older than `epoch` (the moments of `epoch`
   * are the next merge's input).
   */
  keepFrom(epoch: number): void {
    for (const [k, c] of this.byKey) if (c.epoch < epoch) this.byKey.delete(k);
    for (const [k, c] of this.bySha)
      if (c.kind === 'weights' || c.epoch < epoch) this.bySha.delete(k);
  }

  /** Bytes held now. */
  get heldBytes(): number {
    let n = 0;
    for (const c of this.byKey.values()) n += c.bytes.length;
    for (const c of this.bySha.values()) n += c.bytes.length;
    return n;
  }

  private served(bytes: Uint8Array | undefined): Uint8Array | undefined {
    if (bytes) this.bytesSaved += bytes.length;
    return bytes;
  }
}
