import { isIotaError } from '../../../src/errors.js';
import {
  BF16_MAX_REL_ERROR,
  BF16_SUBNORMAL_ABS_ERROR,
  F16_MAX_REL_ERROR,
  F16_SUBNORMAL_ABS_ERROR,
  bf16ToFloat32,
  dequantizeRows8,
  f16ToFloat32,
  float32ToBf16,
  float32ToF16,
  quantizeRows8,
  rows8ErrorBound,
} from '../../../src/tensor-io/index.js';

/** Deterministic PRNG (mulberry32) so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random non-NaN float32s drawn uniformly over bit patterns: tiny, huge, subnormal, negative. */
function randomFloats(n: number, seed: number): Float32Array {
  const next = rng(seed);
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let x: number;
    do x = Math.floor(next() * 2 ** 32);
    while ((x & 0x7fffffff) > 0x7f800000);
    bits[i] = x;
  }
  return new Float32Array(bits.buffer);
}

const fromBits = (...bits: number[]) => new Float32Array(Uint32Array.from(bits).buffer);
const allPatterns = () => Uint16Array.from({ length: 65536 }, (_, i) => i);

/**
 * An independent rounding reference: a 16-bit format's non-negative finite patterns
 * 0..maxFinite increase with their value, so the nearest representable value to |x| can be
 * found by binary search, ties going to the even pattern.
 */
function nearestPattern(
  x: number,
  table: Float32Array,
  maxFinite: number,
  overflowAt: number,
): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= overflowAt) return sign | (maxFinite + 1);
  let lo = 0;
  let hi = maxFinite;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (table[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  if (lo === maxFinite || table[lo] === a) return sign | lo;
  const below = a - table[lo];
  const above = table[lo + 1] - a;
  const pick = below < above ? lo : above < below ? lo + 1 : lo % 2 === 0 ? lo : lo + 1;
  return sign | pick;
}

describe('bf16', () => {
  const table = bf16ToFloat32(allPatterns());
  const maxFinite = 0x7f7f;
  const overflowAt = 2 ** 127 * (2 - 2 ** -8); // halfway between the largest bf16 and 2^128

  it('rounds to nearest with ties to even (hand-computed bit patterns)', () => {
    const cases: [number, number][] = [
      [0x3f808000, 0x3f80], // 1 + 2^-8: tie, stays at even 1
      [0x3f818000, 0x3f82], // 1 + 3*2^-8: tie, rounds up to even 1 + 2^-6
      [0x3f808001, 0x3f81], // just above the tie rounds up
      [0x3f80ffff, 0x3f81],
      [0xbf818000, 0xbf82], // negative tie
      [0x3f7fffff, 0x3f80], // just below 1 carries into the exponent
      [0x7f7fffff, 0x7f80], // float32 max rounds past the largest bf16: infinity
      [0x7f800000, 0x7f80],
      [0xff800000, 0xff80],
      [0x00000000, 0x0000],
      [0x80000000, 0x8000],
      [0x00000001, 0x0000], // smallest float32 subnormal underflows
    ];
    const out = float32ToBf16(fromBits(...cases.map((c) => c[0])));
    expect(Array.from(out)).toEqual(cases.map((c) => c[1]));
  });

  it('keeps NaN a NaN, including NaNs whose payload lies only in the dropped bits', () => {
    const out = bf16ToFloat32(float32ToBf16(fromBits(0x7fc00000, 0x7f800001, 0xff800001)));
    expect(Array.from(out).every(Number.isNaN)).toBe(true);
  });

  it('decodes every pattern exactly, so encoding a decoded value gives the pattern back', () => {
    const back = float32ToBf16(table);
    for (let p = 0; p < 65536; p++) {
      if (Number.isNaN(table[p]))
        expect(Number.isNaN(bf16ToFloat32(back.subarray(p, p + 1))[0])).toBe(true);
      else if (back[p] !== p) throw new Error(`pattern ${p} came back as ${back[p]}`);
    }
  });

  it('matches the nearest representable value on random floats', () => {
    const xs = randomFloats(20000, 1);
    const out = float32ToBf16(xs);
    for (let i = 0; i < xs.length; i++) {
      const want = nearestPattern(xs[i], table, maxFinite, overflowAt);
      if (out[i] !== want) throw new Error(`${xs[i]} encoded as ${out[i]}, nearest is ${want}`);
    }
  });

  it(`stays within relative error ${BF16_MAX_REL_ERROR} (normal) and ${BF16_SUBNORMAL_ABS_ERROR} (subnormal)`, () => {
    const xs = randomFloats(20000, 2);
    const ys = bf16ToFloat32(float32ToBf16(xs));
    let checked = 0;
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i];
      const a = Math.abs(x);
      if (a >= overflowAt) {
        expect(ys[i]).toBe(x > 0 ? Infinity : -Infinity);
      } else if (a >= 2 ** -126) {
        if (Math.abs(ys[i] - x) > BF16_MAX_REL_ERROR * a) throw new Error(`${x} -> ${ys[i]}`);
        checked++;
      } else if (Math.abs(ys[i] - x) > BF16_SUBNORMAL_ABS_ERROR) {
        throw new Error(`${x} -> ${ys[i]}`);
      }
    }
    expect(checked).toBeGreaterThan(10000);
  });
});

describe('f16', () => {
  const table = f16ToFloat32(allPatterns());
  const maxFinite = 0x7bff;
  const overflowAt = 65520;

  it('decodes known patterns', () => {
    const pats = [0x3c00, 0xc000, 0x7bff, 0x0400, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00, 0x3555];
    const want = [
      1,
      -2,
      65504,
      2 ** -14,
      2 ** -24,
      1023 * 2 ** -24,
      -0,
      Infinity,
      -Infinity,
      0.333251953125,
    ];
    expect(Array.from(f16ToFloat32(Uint16Array.from(pats)))).toEqual(want);
    expect(Number.isNaN(f16ToFloat32(Uint16Array.from([0x7e00]))[0])).toBe(true);
  });

  it('rounds to nearest with ties to even, through subnormals and overflow (hand-computed)', () => {
    const cases: [number, number][] = [
      [1 + 2 ** -11, 0x3c00], // tie, stays at even 1
      [1 + 3 * 2 ** -11, 0x3c02], // tie, rounds up to even
      [1 + 2 ** -11 + 2 ** -20, 0x3c01],
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00], // tie between 65504 and 2^16: the even side is infinity
      [1e10, 0x7c00],
      [-1e10, 0xfc00],
      [2 ** -14, 0x0400],
      [1023.5 * 2 ** -24, 0x0400], // subnormal tie rounds up into the least normal
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie between 0 and the least subnormal: even is 0
      [3 * 2 ** -25, 0x0002],
      [2 ** -25 + 2 ** -35, 0x0001],
      [2 ** -26, 0x0000],
      [-(2 ** -26), 0x8000],
      [1e-45, 0x0000], // float32 subnormal
    ];
    const out = float32ToF16(Float32Array.from(cases.map((c) => c[0])));
    expect(Array.from(out)).toEqual(cases.map((c) => c[1]));
  });

  it('keeps NaN a NaN', () => {
    const out = f16ToFloat32(float32ToF16(fromBits(0x7fc00000, 0x7f800001, 0xffc00000)));
    expect(Array.from(out).every(Number.isNaN)).toBe(true);
  });

  it('decodes every pattern exactly, so encoding a decoded value gives the pattern back', () => {
    const back = float32ToF16(table);
    for (let p = 0; p < 65536; p++) {
      if (Number.isNaN(table[p])) continue;
      if (back[p] !== p) throw new Error(`pattern ${p} came back as ${back[p]}`);
    }
  });

  it('matches the nearest representable value on random floats', () => {
    // Bit-uniform floats are mostly far outside half's range; scale a second set into it.
    const wide = randomFloats(20000, 3);
    const next = rng(4);
    const narrow = Float32Array.from(
      { length: 20000 },
      () => (next() - 0.5) * 2 ** Math.floor(next() * 48 - 30),
    );
    for (const xs of [wide, narrow]) {
      const out = float32ToF16(xs);
      for (let i = 0; i < xs.length; i++) {
        const want = nearestPattern(xs[i], table, maxFinite, overflowAt);
        if (out[i] !== want) throw new Error(`${xs[i]} encoded as ${out[i]}, nearest is ${want}`);
      }
    }
  });

  it(`stays within relative error ${F16_MAX_REL_ERROR} (normal) and ${F16_SUBNORMAL_ABS_ERROR} (subnormal)`, () => {
    const next = rng(5);
    const xs = Float32Array.from(
      { length: 20000 },
      () => (next() - 0.5) * 2 ** Math.floor(next() * 48 - 30),
    );
    const ys = f16ToFloat32(float32ToF16(xs));
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i];
      const a = Math.abs(x);
      const err = Math.abs(ys[i] - x);
      if (a >= overflowAt) expect(Math.abs(ys[i])).toBe(Infinity);
      else if (a >= 2 ** -14 && err > F16_MAX_REL_ERROR * a) throw new Error(`${x} -> ${ys[i]}`);
      else if (a < 2 ** -14 && err > F16_SUBNORMAL_ABS_ERROR) throw new Error(`${x} -> ${ys[i]}`);
    }
  });
});

describe('per-row 8-bit affine', () => {
  it('stays within rows8ErrorBound on random rows of every scale', () => {
    const next = rng(6);
    const rows = 64;
    const cols = 300;
    const src = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      const magnitude = 2 ** Math.floor(next() * 200 - 100);
      const centre = (next() - 0.5) * magnitude * (r % 3); // some rows far from zero
      for (let c = 0; c < cols; c++) src[r * cols + c] = centre + (next() - 0.5) * magnitude;
    }
    const enc = quantizeRows8(src, rows, cols);
    const out = dequantizeRows8(enc, rows, cols);
    let worstShare = 0;
    for (let r = 0; r < rows; r++) {
      const row = src.subarray(r * cols, (r + 1) * cols);
      const min = Math.min(...row);
      const max = Math.max(...row);
      const bound = rows8ErrorBound(min, max);
      for (let c = 0; c < cols; c++) {
        const err = Math.abs(out[r * cols + c] - row[c]);
        if (err > bound) throw new Error(`row ${r} col ${c}: error ${err} over bound ${bound}`);
        worstShare = Math.max(worstShare, err / ((max - min) / 510));
      }
      expect(enc.offset[r]).toBe(min);
    }
    // The bound is not vacuous: some element comes close to half a step.
    expect(worstShare).toBeGreaterThan(0.9);
  });

  it('restores constant rows exactly', () => {
    const values = [0, -0, 1.1, -3.4e38, 3.4e38, 1e-45];
    const cols = 7;
    const src = new Float32Array(values.length * cols);
    values.forEach((v, r) => src.fill(v, r * cols, (r + 1) * cols));
    const enc = quantizeRows8(src, values.length, cols);
    expect(Array.from(dequantizeRows8(enc, values.length, cols))).toEqual(Array.from(src));
  });

  it('maps each row minimum to 0 and maximum to 255', () => {
    const src = Float32Array.from([-1, 0, 3, 10, 15, 30]);
    const enc = quantizeRows8(src, 2, 3);
    expect(Array.from(enc.q)).toEqual([0, 64, 255, 0, 64, 255]);
    expect(Array.from(enc.offset)).toEqual([-1, 10]);
  });

  it('refuses non-finite input and a shape that does not fit the data', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      try {
        quantizeRows8(Float32Array.from([1, bad, 2, 3]), 2, 2);
        throw new Error('accepted a non-finite value');
      } catch (e) {
        expect(isIotaError(e) && e.code === 'E_BAD_TENSOR').toBe(true);
        expect((e as Error).message).toContain('at row 0, column 1');
      }
    }
    expect(() => quantizeRows8(new Float32Array(5), 2, 3)).toThrow(
      'a [2, 3] matrix cannot have 5 elements',
    );
  });
});
