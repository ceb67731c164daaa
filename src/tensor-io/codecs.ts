/**
 * Lossy wire codecs for float32 tensors: bf16 (the default for activations), IEEE half (so F16
 * safetensors can be read and written), and per-row 8-bit affine. Each states its error bound
 * as a constant or function, and the tests hold the codecs to it.
 *
 * The float conversions work on bit patterns through a Uint32Array view of the input, which is
 * exact and avoids a DataView call per element.
 */
import { IotaError } from '../errors.js';

/**
 * bf16 keeps float32's 8-bit exponent and 8 significant bits. Rounding to nearest even loses at
 * most half a unit in the last place, 2^-8 of the value, for every finite value whose
 * magnitude is at least 2^-126 (float32's normal range) and does not round past the largest
 * bf16 (about 3.39e38), above which it becomes infinity.
 */
export const BF16_MAX_REL_ERROR = 2 ** -8;
/** Below 2^-126 bf16 is subnormal with a fixed step of 2^-133, so the error is absolute. */
export const BF16_SUBNORMAL_ABS_ERROR = 2 ** -134;

/**
 * IEEE half keeps 11 significant bits: relative error at most 2^-11 for magnitudes in
 * [2^-14, 65504]. Larger magnitudes that round past 65504 (from 65520 up) become infinity.
 */
export const F16_MAX_REL_ERROR = 2 ** -11;
/** Below 2^-14 half is subnormal with a fixed step of 2^-24, so the error is absolute. */
export const F16_SUBNORMAL_ABS_ERROR = 2 ** -25;

function bitsOf(src: Float32Array): Uint32Array {
  return new Uint32Array(src.buffer, src.byteOffset, src.length);
}

export function float32ToBf16(src: Float32Array): Uint16Array {
  const bits = bitsOf(src);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    if ((x & 0x7fffffff) > 0x7f800000) {
      // Plain truncation could clear every mantissa bit and turn a NaN into infinity; setting
      // the quiet bit keeps it a NaN (its sign survives, its payload need not).
      out[i] = (x >>> 16) | 0x0040;
    } else {
      // Round to nearest, ties to even: add just under half an ulp, plus one when the kept
      // part is odd. A carry out of the mantissa bumps the exponent, which is also correct.
      out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}

export function bf16ToFloat32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = bitsOf(out);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}

export function float32ToF16(src: Float32Array): Uint16Array {
  const bits = bitsOf(src);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfFromBits(bits[i]);
  return out;
}

function halfFromBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x0200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15; // exponent in half's bias
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: the value in units of 2^-24 is the 24-bit significand shifted right by
    // 14 - e. From a shift of 25 on, the value is under half a unit and rounds to zero.
    const shift = 14 - e;
    if (shift > 24) return sign;
    const sig = mant | 0x800000;
    return sign | roundShift(sig, shift); // rounding up from 0x3ff gives 0x400, the least normal
  }
  // Normal: drop 13 mantissa bits. A carry into the exponent is right, and from 0x7bff it
  // yields 0x7c00, infinity, exactly when the value rounds past 65504.
  return sign | roundShift((e << 23) | mant, 13);
}

/** `v >> shift`, rounded to nearest with ties to even. */
function roundShift(v: number, shift: number): number {
  const kept = v >>> shift;
  const rest = v & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
}

export function f16ToFloat32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = bitsOf(out);
  for (let i = 0; i < src.length; i++) {
    const h = src[i];
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0)
      out[i] = (sign !== 0 ? -mant : mant) * 2 ** -24; // zero or subnormal: exact
    else if (exp === 0x1f) bits[i] = sign | 0x7f800000 | (mant << 13);
    else bits[i] = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  return out;
}

/**
 * Per-row 8-bit affine quantisation of a row-major [rows, cols] matrix: each row's [min, max]
 * maps linearly onto 0..255 and is restored as `offset + q * scale`.
 */
export interface Rows8 {
  q: Uint8Array; // [rows, cols]
  scale: Float32Array; // [rows]
  offset: Float32Array; // [rows], the row minimum
}

function checkShape(length: number, rows: number, cols: number): void {
  if (
    !Number.isSafeInteger(rows) ||
    !Number.isSafeInteger(cols) ||
    rows < 0 ||
    cols < 0 ||
    rows * cols !== length
  ) {
    throw new IotaError(
      'E_BAD_TENSOR',
      `a [${rows}, ${cols}] matrix cannot have ${length} elements`,
    );
  }
}

export function quantizeRows8(src: Float32Array, rows: number, cols: number): Rows8 {
  checkShape(src.length, rows, cols);
  const q = new Uint8Array(src.length);
  const scale = new Float32Array(rows);
  const offset = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let lo = Infinity;
    let hi = -Infinity;
    for (let c = 0; c < cols; c++) {
      const v = src[base + c];
      if (!Number.isFinite(v)) {
        throw new IotaError(
          'E_BAD_TENSOR',
          `cannot quantise a non-finite value (${v}) at row ${r}, column ${c}`,
        );
      }
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (cols === 0) continue;
    // Quantise against the scale as stored (float32), so dequantisation sees the same grid.
    const s = Math.fround((hi - lo) / 255);
    offset[r] = lo;
    scale[r] = s;
    if (s === 0) continue; // constant row (or a range below float32's resolution): q = 0
    for (let c = 0; c < cols; c++) {
      const k = Math.round((src[base + c] - lo) / s);
      q[base + c] = k < 0 ? 0 : k > 255 ? 255 : k;
    }
  }
  return { q, scale, offset };
}

export function dequantizeRows8(enc: Rows8, rows: number, cols: number): Float32Array {
  checkShape(enc.q.length, rows, cols);
  if (enc.scale.length !== rows || enc.offset.length !== rows) {
    throw new IotaError(
      'E_BAD_TENSOR',
      `8-bit scale and offset must have ${rows} entries, one per row`,
    );
  }
  const out = new Float32Array(enc.q.length);
  for (let r = 0; r < rows; r++) {
    const s = enc.scale[r];
    const o = enc.offset[r];
    const base = r * cols;
    // A zero scale returns the offset itself, so constant rows (even of -0) come back exactly.
    if (s === 0) out.fill(o, base, base + cols);
    else for (let c = 0; c < cols; c++) out[base + c] = o + enc.q[base + c] * s;
  }
  return out;
}

/**
 * Largest |x - x'| for a row whose values lie in [min, max]. Rounding to the nearest of 256
 * levels costs at most half a step, (max - min) / 510. On top of that: the step stored as
 * float32 is off by up to 2^-24 relative (counted 255 times over, covered by the 2^-20 factor),
 * the result is rounded to float32 (half an ulp, at most 2^-24 of max(|min|, |max|); doubled
 * for slack), and when the step itself is subnormal it is off by up to 2^-150 absolute, 255
 * times over, under 2^-140.
 */
export function rows8ErrorBound(min: number, max: number): number {
  return (
    ((max - min) / 510) * (1 + 2 ** -20) +
    2 ** -23 * Math.max(Math.abs(min), Math.abs(max)) +
    2 ** -140
  );
}
