/** The merge's pure parts: plan, gradient layout, reduction, partition update. */
import {
  encodeGradient,
  gradientPrefix,
  partitionHashes,
  sliceRange,
} from '../../../src/merge/gradient.js';
import { partitionBounds } from '../../../src/merge/manifest.js';
import { loads, makePlan, type PlanParticipant } from '../../../src/merge/plan.js';
import { reduceSlices } from '../../../src/merge/reduce.js';
import { updatePartition } from '../../../src/merge/update.js';
import { adamwUpdate } from '../../../src/model/optimizer.js';
import type { ParamSpec } from '../../../src/model/params.js';
import { encodeSafetensors } from '../../../src/tensor-io/safetensors.js';
import { sha256Hex } from '../../../src/tensor-io/hash.js';
import { rng } from '../../support/rng.js';

const hex = (s: string) => sha256Hex(s);
const participants = (k: number): PlanParticipant[] =>
  Array.from({ length: k }, (_, i) => ({
    miner: `miner-${String.fromCharCode(97 + ((i * 7) % 26))}${i}`,
    key: `k${i}`,
    size: 1,
    sha256: hex(`upload ${i}`),
    n: i + 1,
    partitions: [],
  }));

describe('merge plan', () => {
  it('gives every partition r distinct participants with loads within one of each other', () => {
    for (const k of [1, 2, 3, 4, 5, 8, 16]) {
      for (const P of [1, 3, 7, 16, 33]) {
        const plan = makePlan({
          runSeed: 1,
          epoch: 2,
          stage: 1,
          params: P * 10,
          partitionElements: 10,
          replicas: 2,
          participants: participants(k),
        });
        expect(plan.partitions).toHaveLength(P);
        expect(plan.replicas).toBe(Math.min(2, k));
        for (const p of plan.partitions) expect(new Set(p.mergers).size).toBe(Math.min(2, k));
        const l = [...loads(plan).values()];
        expect(Math.max(...l) - Math.min(...l)).toBeLessThanOrEqual(1);
        expect(plan.N).toBe((k * (k + 1)) / 2);
      }
    }
  });

  it('is the same for the same inputs, in any order, and changes when an upload hash changes', () => {
    const ps = participants(5);
    const a = makePlan({
      runSeed: 1,
      epoch: 0,
      stage: 0,
      params: 100,
      partitionElements: 10,
      replicas: 2,
      participants: ps,
    });
    const b = makePlan({
      runSeed: 1,
      epoch: 0,
      stage: 0,
      params: 100,
      partitionElements: 10,
      replicas: 2,
      participants: [...ps].reverse(),
    });
    expect(b).toEqual(a);
    const changed = ps.map((p, i) => (i === 3 ? { ...p, sha256: hex('another upload') } : p));
    const c = makePlan({
      runSeed: 1,
      epoch: 0,
      stage: 0,
      params: 100,
      partitionElements: 10,
      replicas: 2,
      participants: changed,
    });
    expect(c.seed).not.toBe(a.seed);
    expect(c.partitions.map((p) => p.mergers)).not.toEqual(a.partitions.map((p) => p.mergers));
  });
});

describe('gradient layout', () => {
  it('has the header of a plain safetensors encoding, so a partition is a known byte range', () => {
    const g = new Float32Array(1234).map((_, i) => i / 7);
    const enc = encodeGradient(g);
    expect(enc).toEqual(encodeSafetensors({ g: { dtype: 'F32', shape: [g.length], data: g } }));
    expect(enc.subarray(0, gradientPrefix(g.length).length)).toEqual(gradientPrefix(g.length));
    const bounds = partitionBounds(g.length, 500);
    const hashes = partitionHashes(enc, g.length, 500);
    bounds.forEach(([o, n], i) => {
      const r = sliceRange(g.length, o, n);
      expect(sha256Hex(enc.subarray(r.start, r.end))).toBe(hashes[i]);
      expect(new Float32Array(enc.slice(r.start, r.end).buffer)).toEqual(g.subarray(o, o + n));
    });
  });
});

describe('reduction', () => {
  const k = 5;
  const n = 777;
  const r = rng(42);
  const slices = Array.from({ length: k }, (_, i) => ({
    miner: `m${i}`,
    data: new Float32Array(n).map(() => (r() - 0.5) * 10 ** ((i % 3) - 1)),
  }));
  const N = 17;

  it('is bit-identical to a plain float64 reference of fround(sum over ascending ids / N)', () => {
    const red = reduceSlices(slices, N);
    const ref = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (const sl of [...slices].sort((a, b) => (a.miner < b.miner ? -1 : 1))) s += sl.data[j];
      ref[j] = Math.fround(s / N);
    }
    expect(Buffer.from(red.gbar.buffer)).toEqual(Buffer.from(ref.buffer));
    let norm2 = 0;
    for (let j = 0; j < n; j++) norm2 += ref[j] * ref[j];
    expect(red.norm2).toBe(norm2);
    expect(red.sliceNorms2.m2).toBe(slices[2].data.reduce((a, v) => a + v * v, 0));
  });

  it('gives identical bytes whatever order the slices arrive in', () => {
    const a = reduceSlices(slices, N);
    const b = reduceSlices([slices[3], slices[0], slices[4], slices[2], slices[1]], N);
    expect(b.sha256).toBe(a.sha256);
    expect(Buffer.from(b.gbar.buffer)).toEqual(Buffer.from(a.gbar.buffer));
  });
});

describe('partition update', () => {
  it('is the whole-vector AdamW step restricted to the partition', () => {
    const params: ParamSpec[] = [
      { name: 'a', shape: [4, 5], size: 20, offset: 0, kind: 'matrix' },
      { name: 'b', shape: [10], size: 10, offset: 20, kind: 'norm' },
      { name: 'c', shape: [5, 4], size: 20, offset: 30, kind: 'matrix' },
    ] as unknown as ParamSpec[];
    const r = rng(7);
    const w = new Float32Array(50).map(() => r() - 0.5);
    const g = new Float32Array(50).map(() => r() - 0.5);
    const m = new Float32Array(50).map(() => (r() - 0.5) / 10);
    const v = new Float32Array(50).map(() => r() / 100);
    const s = { lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
    const whole = {
      w: Float32Array.from(w),
      g,
      m: Float32Array.from(m),
      v: Float32Array.from(v),
      offset: 0,
    };
    adamwUpdate(whole, params, s, 3, 0.5);
    for (const [o, len] of [
      [0, 16],
      [16, 16],
      [32, 18],
    ]) {
      const u = updatePartition(
        w.slice(o, o + len),
        g.slice(o, o + len),
        { m: m.slice(o, o + len), v: v.slice(o, o + len) },
        o,
        params,
        s,
        3,
        0.5,
      );
      expect(u.w).toEqual(whole.w.slice(o, o + len));
      expect(u.m).toEqual(whole.m.slice(o, o + len));
      expect(u.v).toEqual(whole.v.slice(o, o + len));
    }
  });
});
