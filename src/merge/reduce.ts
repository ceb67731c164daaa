/**
 * Step 1 of the merge (pure): a partition's mean gradient over all participants,
 * `Gbar_p = fround(sum over ascending ids of G_i[p] / N)`, accumulated in float64 in plain
 * JavaScript (never native code, whose fused multiply-adds differ between machines), so every
 * merger produces the same bytes whatever order the slices arrived in.
 */
import { sha256Hex } from '../tensor-io/hash.js';

export interface Slice {
  miner: string;
  data: Float32Array;
}

export interface Reduction {
  gbar: Float32Array;
  /** ||Gbar_p||^2, float64 */
  norm2: number;
  /** ||G_i[p]||^2 of each participant, float64 (the Byzantine filter's input) */
  sliceNorms2: Record<string, number>;
  /** sha256 of Gbar_p's float32 bytes */
  sha256: string;
}

export function reduceSlices(slices: readonly Slice[], N: number): Reduction {
  if (slices.length === 0) throw new Error('reduceSlices: no slices');
  const sorted = [...slices].sort((a, b) => (a.miner < b.miner ? -1 : a.miner > b.miner ? 1 : 0));
  const n = sorted[0].data.length;
  const acc = new Float64Array(n);
  const sliceNorms2: Record<string, number> = {};
  for (const s of sorted) {
    if (s.data.length !== n) throw new Error('reduceSlices: slices of different lengths');
    let sq = 0;
    const d = s.data;
    for (let j = 0; j < n; j++) {
      acc[j] += d[j];
      sq += d[j] * d[j];
    }
    sliceNorms2[s.miner] = sq;
  }
  const gbar = new Float32Array(n);
  let norm2 = 0;
  for (let j = 0; j < n; j++) {
    gbar[j] = acc[j] / N;
    norm2 += gbar[j] * gbar[j];
  }
  return { gbar, norm2, sliceNorms2, sha256: floatHash(gbar) };
}

export function floatHash(x: Float32Array): string {
  return sha256Hex(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
}
