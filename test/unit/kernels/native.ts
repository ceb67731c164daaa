/** Shared by the native kernel tests: is the backend here, random data, and running one graph on two backends. */
import * as tf from '@tensorflow/tfjs';
import { probeBackend, selectBackend } from '../../../src/kernels/backends.js';

/**
 * Backend `native` ready to use, or a failure saying why: the native kernel suites never skip
 * (`./setup.sh --dev` installs what the addon needs; a missing addon is a broken build).
 */
export async function requireNative(): Promise<void> {
  const p = await probeBackend('native');
  if (!p.available)
    throw new Error(
      `backend native does not work here: ${p.reason} (run ./setup.sh --dev to build it)`,
    );
}

/** Deterministic floats in [lo, hi). */
export function randomFloats(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (((t ^ (t >>> 14)) >>> 0) / 4294967296) * (hi - lo);
  }
  return out;
}

export function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Runs `build` on a backend in a tidy scope and returns copies of its outputs as plain numbers. */
export async function runOn(
  backend: 'cpu' | 'native',
  build: () => tf.Tensor | tf.Tensor[],
): Promise<number[][]> {
  await selectBackend(backend);
  const outs = tf.tidy(() => {
    const r = build();
    return Array.isArray(r) ? r : [r];
  });
  const arrays = outs.map((t) => Array.from(t.dataSync() as ArrayLike<number>));
  tf.dispose(outs);
  return arrays;
}

/** sqrt(sum (a-b)^2) / max(sqrt(sum b^2), tiny); both sides NaN at a position counts as equal. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
    if (a[i] === b[i]) {
      den += b[i] * b[i];
      continue;
    }
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}
