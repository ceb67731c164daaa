/**
 * Windows and sampling: which tokens sample id i trains on.
 *
 * A dataset is an ordered list of shards. Each shard is cut into non-overlapping windows of
 * `seq + 1` tokens: window w of a shard covers its tokens [w*(seq+1), (w+1)*(seq+1)); the
 * leftover tokens at the shard's end are dropped, so no window crosses a shard end and every
 * window is one contiguous byte range of one file (one HTTP Range request). Global window
 * indices run over the shards in order. The head reads tokens [0, seq) of a window, the tail's
 * targets are tokens [1, seq].
 *
 * Sampling: a seeded `Permutation` p of [0, N) over all N windows. The images of the first H
 * indices are the held-out windows (evaluation only); training sample id i reads window
 * p(H + (i mod (N - H))). So held-out windows never appear as training samples, and within each
 * cycle of N - H consecutive sample ids every training window is read exactly once.
 * H = floor(N * heldOutFraction), at least 1 when N >= 2 and the fraction is positive, and
 * always leaving at least one training window.
 */
import { IotaError } from '../errors.js';
import { Permutation } from './permutation.js';
import { decodeTokens } from './shard.js';

/** What the index needs to know about one shard (all of it is in the dataset manifest). */
export interface ShardInfo {
  /** The shard's name, as in the store key `runs/<run>/data/<name>.bin`. */
  name: string;
  tokens: number;
  bytesPerToken: number;
  headerBytes: number;
}

export interface WindowLocation {
  shard: string;
  shardIndex: number;
  /** Index of the window's first token within its shard. */
  tokenStart: number;
}

export interface ByteRange {
  shard: string;
  /** First byte of the window in the shard file. */
  start: number;
  /** One past the last byte: `end - start = (seq + 1) * bytesPerToken`. */
  end: number;
}

function checkIndex(what: string, i: number, size: number): void {
  if (!Number.isSafeInteger(i) || i < 0 || i >= size) {
    throw new IotaError('E_BAD_SAMPLE', `${what} ${i} is outside [0, ${size}).`);
  }
}

export class WindowIndex {
  readonly seq: number;
  /** `seq + 1`: the tokens of one window. */
  readonly windowTokens: number;
  readonly numWindows: number;
  readonly numHeldOut: number;
  readonly numTrain: number;
  readonly shards: readonly ShardInfo[];
  private readonly permutation: Permutation;
  /** windowEnds[k] = number of windows in shards 0..k. */
  private readonly windowEnds: number[];

  /**
   * @param shards            the dataset's shards, in order.
   * @param seq               the model's sequence length (>= 1).
   * @param seed              the run seed that keys the permutation.
   * @param heldOutFraction   share of windows kept for evaluation, in [0, 1).
   */
  constructor(
    shards: readonly ShardInfo[],
    seq: number,
    seed: string | number,
    heldOutFraction = 0.01,
  ) {
    if (!Number.isSafeInteger(seq) || seq < 1) {
      throw new IotaError('E_BAD_SEQ', `Sequence length ${seq} is not an integer >= 1.`);
    }
    if (!(heldOutFraction >= 0 && heldOutFraction < 1)) {
      throw new IotaError('E_BAD_SAMPLE', `Held-out fraction ${heldOutFraction} is not in [0, 1).`);
    }
    this.seq = seq;
    this.windowTokens = seq + 1;
    this.shards = shards.map((s) => ({ ...s }));
    this.windowEnds = [];
    let total = 0;
    for (const s of this.shards) {
      if (
        !Number.isSafeInteger(s.tokens) ||
        s.tokens < 0 ||
        (s.bytesPerToken !== 2 && s.bytesPerToken !== 4) ||
        !Number.isSafeInteger(s.headerBytes) ||
        s.headerBytes < 0
      ) {
        throw new IotaError(
          'E_BAD_DATASET',
          `Shard "${s.name}" has an invalid token count, header size or token width.`,
        );
      }
      total += Math.floor(s.tokens / this.windowTokens);
      this.windowEnds.push(total);
    }
    if (total < 1) {
      const tokens = this.shards.reduce((a, s) => a + s.tokens, 0);
      throw new IotaError(
        'E_NO_WINDOWS',
        `The dataset has no window of ${this.windowTokens} tokens (${this.shards.length} shards, ${tokens} tokens).`,
        'Use a shorter sequence length or prepare more text.',
      );
    }
    this.numWindows = total;
    let held = Math.floor(total * heldOutFraction);
    if (heldOutFraction > 0 && total >= 2) held = Math.max(1, held);
    this.numHeldOut = Math.min(held, total - 1);
    this.numTrain = total - this.numHeldOut;
    this.permutation = new Permutation(total, seed);
  }

  /** The window that training sample `sampleId` (any integer >= 0) reads. */
  trainWindow(sampleId: number): number {
    checkIndex('Sample id', sampleId, Number.MAX_SAFE_INTEGER);
    return this.permutation.permute(this.numHeldOut + (sampleId % this.numTrain));
  }

  /** The j-th held-out window, j in [0, numHeldOut). */
  heldOutWindow(j: number): number {
    checkIndex('Held-out index', j, this.numHeldOut);
    return this.permutation.permute(j);
  }

  isHeldOut(window: number): boolean {
    checkIndex('Window', window, this.numWindows);
    return this.permutation.invert(window) < this.numHeldOut;
  }

  locate(window: number): WindowLocation {
    checkIndex('Window', window, this.numWindows);
    // First shard whose cumulative window count exceeds `window` (skips shards with none).
    let lo = 0;
    let hi = this.windowEnds.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.windowEnds[mid] > window) hi = mid;
      else lo = mid + 1;
    }
    const before = lo === 0 ? 0 : this.windowEnds[lo - 1];
    return {
      shard: this.shards[lo].name,
      shardIndex: lo,
      tokenStart: (window - before) * this.windowTokens,
    };
  }

  /** Exactly the window's `seq + 1` tokens in its shard file. */
  byteRange(window: number): ByteRange {
    const { shard, shardIndex, tokenStart } = this.locate(window);
    const s = this.shards[shardIndex];
    const start = s.headerBytes + tokenStart * s.bytesPerToken;
    return { shard, start, end: start + this.windowTokens * s.bytesPerToken };
  }
}

/**
 * Decodes the tokens of a byte range fetched with `byteRange` (u16 or u32 little-endian).
 * With `expectTokens` (normally `seq + 1`) a short or long read is refused; with `vocabSize`
 * so is any id outside the vocabulary.
 */
export function readWindow(
  bytes: Uint8Array,
  bytesPerToken: number,
  options: { expectTokens?: number; vocabSize?: number } = {},
): Int32Array {
  const { expectTokens, vocabSize } = options;
  if (expectTokens !== undefined && bytes.length !== expectTokens * bytesPerToken) {
    throw new IotaError(
      'E_BAD_SHARD',
      `Window read returned ${bytes.length} bytes, expected ${expectTokens * bytesPerToken} (${expectTokens} tokens).`,
    );
  }
  return decodeTokens(bytes, bytesPerToken, vocabSize);
}
