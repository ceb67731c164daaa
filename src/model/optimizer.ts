/**
 * The optimizer on flat float32 arrays, so that it runs the same on a whole stage
 * (single-process training) and on one partition of it (the swarm's merge).
 *
 * Semantics (DESIGN.md section 3): the step's gradient is the mean over samples,
 * g = fround(sum_i G_i / N); it is clipped by its global norm over the stage; AdamW with
 * decoupled weight decay on matrices only, bias correction with step t = epoch + 1.
 * Arithmetic is float64 with one rounding per stored output, so every machine produces the same
 * bytes: in JavaScript, or in the native addon where this process loaded it (the same operations
 * in the same order without fused multiply-adds; test/unit/kernels/native-adamw.test.ts compares them
 * bit for bit).
 */
import { loadedNative } from '../kernels/native/loader.js';
import type { ParamSpec } from './params.js';

export interface AdamWSettings {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** PyTorch's clip_grad_norm_ guard against a zero norm. */
const CLIP_EPS = 1e-6;

/** g = fround(sum / n), the step's mean gradient from a gradient sum over n samples. */
export function meanGradient(sum: Float32Array, n: number): Float32Array {
  const out = new Float32Array(sum.length);
  const addon = loadedNative();
  if (addon) addon.meanOfSum(sum, n, out);
  else for (let i = 0; i < sum.length; i++) out[i] = sum[i] / n;
  return out;
}

/** Sum of squares accumulated in float64 (one term of a global norm). */
export function sumOfSquares(x: Float32Array): number {
  const addon = loadedNative();
  if (addon) return addon.sumOfSquares(x);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}

/** The factor gradients are multiplied by so their global norm is at most `clip` (0 disables). */
export function clipFactor(norm: number, clip: number): number {
  if (clip <= 0) return 1;
  return Math.min(1, clip / (norm + CLIP_EPS));
}

export interface UpdateTarget {
  /** weights, updated in place */
  w: Float32Array;
  /** mean gradient (unclipped) */
  g: Float32Array;
  /** first and second moments, updated in place */
  m: Float32Array;
  v: Float32Array;
  /** element offset of w[0] in the stage's flat vector (0 for a whole stage) */
  offset: number;
}

/**
 * One AdamW step on a contiguous slice of a stage. `params` is the stage layout, used to tell
 * matrices (decayed) from norms (not decayed) by offset. `native` 'off' keeps it in JavaScript.
 */
export function adamwUpdate(
  t: UpdateTarget,
  params: readonly ParamSpec[],
  s: AdamWSettings,
  step: number,
  clip: number,
  native: 'auto' | 'off' = 'auto',
): void {
  const n = t.w.length;
  if (t.g.length !== n || t.m.length !== n || t.v.length !== n)
    throw new Error('adamwUpdate: w, g, m and v must have the same length');
  const bc1 = 1 - s.beta1 ** step;
  const bc2Sqrt = Math.sqrt(1 - s.beta2 ** step);
  const stepSize = s.lr / bc1;
  const end = t.offset + n;
  const addon = native === 'auto' ? loadedNative() : undefined;
  const settings = [clip, s.beta1, 1 - s.beta1, s.beta2, 1 - s.beta2, s.eps, stepSize, bc2Sqrt];
  for (const p of params) {
    const a = Math.max(p.offset, t.offset);
    const b = Math.min(p.offset + p.size, end);
    if (a >= b) continue;
    const decay = p.kind === 'matrix' ? 1 - s.lr * s.weightDecay : 1;
    if (addon) {
      const [lo, hi] = [a - t.offset, b - t.offset];
      const part = (x: Float32Array) => x.subarray(lo, hi);
      addon.adamw(part(t.w), part(t.g), part(t.m), part(t.v), [...settings, decay]);
      continue;
    }
    for (let j = a - t.offset; j < b - t.offset; j++) {
      const g = t.g[j] * clip;
      const m = s.beta1 * t.m[j] + (1 - s.beta1) * g;
      const v = s.beta2 * t.v[j] + (1 - s.beta2) * g * g;
      const w = t.w[j] * decay - (stepSize * m) / (Math.sqrt(v) / bc2Sqrt + s.eps);
      t.m[j] = m;
      t.v[j] = v;
      t.w[j] = w;
    }
  }
}
