/**
 * Initial weights from a pure-JS PRNG keyed by (run seed, parameter name), so every machine and
 * backend derives the same epoch-0 weights bit for bit: N(0, 0.02) for matrices, ones for norms.
 */
import { createHash } from 'node:crypto';
import type { StageLayout } from './params.js';

export const INIT_STD = 0.02;

/** xoshiro128** seeded from sha256(seed, name): fast, well distributed, reproducible. */
export class KeyedRandom {
  private s: Uint32Array;

  constructor(seed: number | string, name: string) {
    const h = createHash('sha256').update(`iota-init\u0000${seed}\u0000${name}`).digest();
    this.s = new Uint32Array([
      h.readUInt32LE(0),
      h.readUInt32LE(4),
      h.readUInt32LE(8),
      h.readUInt32LE(12),
    ]);
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
  }

  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** uniform in (0, 1), 53 bits */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5;
    const lo = this.nextUint32() >>> 6;
    return (hi * 67108864 + lo + 0.5) / 9007199254740992;
  }

  /** standard normal by Box-Muller; both outputs used */
  fillNormal(out: Float32Array, std: number): void {
    for (let i = 0; i < out.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(this.nextFloat()));
      const a = 2 * Math.PI * this.nextFloat();
      out[i] = std * r * Math.cos(a);
      if (i + 1 < out.length) out[i + 1] = std * r * Math.sin(a);
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The stage's initial flat weight vector. */
export function initialWeights(layout: StageLayout, seed: number | string): Float32Array {
  const flat = new Float32Array(layout.size);
  for (const p of layout.params) {
    const view = flat.subarray(p.offset, p.offset + p.size);
    if (p.kind === 'norm') view.fill(1);
    else new KeyedRandom(seed, p.name).fillNormal(view, INIT_STD);
  }
  return flat;
}
