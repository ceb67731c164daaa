/**
 * A seeded bijection of [0, n) for n up to 2^48: which window a sample id reads.
 *
 * Every participant (orchestrator, miners, validators) must compute the same mapping from the
 * run seed alone, on any machine and backend, and without materialising an array of n entries
 * (n can be billions of windows). So: a balanced Feistel network over 2h bits, the smallest even
 * width with 2^(2h) >= n, made a bijection of [0, n) by cycle-walking (apply the network again
 * until the value falls below n; as 2^(2h) < 4n, that takes fewer than 4 steps on average).
 *
 * Everything is 32-bit integer math (`Math.imul`, shifts) on halves of at most 24 bits, plus
 * exact double arithmetic below 2^48 to join and split them, so the result does not depend on
 * the JS engine or the host. The key schedule hashes the seed's UTF-8 bytes; a numeric seed is
 * keyed by its decimal string, so `42` and `'42'` give the same permutation.
 *
 * This is not cryptographic; it only has to scatter samples well and be reproducible.
 * Changing any constant here changes every run's sample order: the unit tests pin known values.
 */
import { IotaError } from '../errors.js';

export const MAX_PERMUTATION_SIZE = 2 ** 48;
const ROUNDS = 6;

/** murmur3's 32-bit finaliser: a cheap, well-mixing bijection of 32-bit words. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over the seed's UTF-8 bytes, then mixed: the 32-bit root of the key schedule. */
function hashSeed(seed: string, salt: number): number {
  let h = (0x811c9dc5 ^ salt) >>> 0;
  for (const b of Buffer.from(seed, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return fmix32(h);
}

export class Permutation {
  /** The domain [0, size). */
  readonly size: number;
  /** 2^h, where each Feistel half has h bits. */
  private readonly half: number;
  private readonly halfMask: number;
  private readonly keys: Uint32Array;

  /**
   * @param size  n, an integer in [1, 2^48].
   * @param seed  any string or number; equal seeds give equal permutations.
   */
  constructor(size: number, seed: string | number) {
    if (!Number.isInteger(size) || size < 1 || size > MAX_PERMUTATION_SIZE) {
      throw new IotaError(
        'E_BAD_PERMUTATION',
        `Permutation size ${size} is not an integer in [1, 2^48].`,
      );
    }
    this.size = size;
    let h = 1;
    while (2 ** (2 * h) < size) h++;
    this.half = 2 ** h;
    this.halfMask = this.half - 1;
    const seedText = String(seed);
    const a = hashSeed(seedText, 0);
    const b = hashSeed(seedText, 0x5bd1e995);
    this.keys = new Uint32Array(ROUNDS);
    for (let r = 0; r < ROUNDS; r++) {
      this.keys[r] = fmix32((a + Math.imul(r + 1, 0x9e3779b9)) ^ Math.imul(b, 2 * r + 1));
    }
  }

  /** The round function: a keyed hash of one half, cut to the half's width. */
  private round(r: number, x: number): number {
    return fmix32(Math.imul(x ^ this.keys[r], 0xcc9e2d51) ^ (this.keys[r] >>> 7)) & this.halfMask;
  }

  /** One pass of the network over [0, 2^(2h)). */
  private encrypt(x: number): number {
    let left = Math.floor(x / this.half);
    let right = x % this.half;
    for (let r = 0; r < ROUNDS; r++) {
      const next = left ^ this.round(r, right);
      left = right;
      right = next;
    }
    return left * this.half + right;
  }

  private decrypt(y: number): number {
    let left = Math.floor(y / this.half);
    let right = y % this.half;
    for (let r = ROUNDS - 1; r >= 0; r--) {
      const prev = right ^ this.round(r, left);
      right = left;
      left = prev;
    }
    return left * this.half + right;
  }

  private check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.size) {
      throw new IotaError(
        'E_BAD_PERMUTATION',
        `Index ${i} is outside the permutation's domain [0, ${this.size}).`,
      );
    }
  }

  /** The image of i. */
  permute(i: number): number {
    this.check(i);
    let x = this.encrypt(i);
    while (x >= this.size) x = this.encrypt(x);
    return x;
  }

  /** The j with permute(j) = y. */
  invert(y: number): number {
    this.check(y);
    let x = this.decrypt(y);
    while (x >= this.size) x = this.decrypt(x);
    return x;
  }
}
