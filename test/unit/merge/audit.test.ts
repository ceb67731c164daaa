/** A validator's spot check of a merged partition: honest bytes reproduced exactly, tampering found. */
import {
  auditMerge,
  pickRuns,
  type MergeAuditSpec,
  type RangeReader,
} from '../../../src/merge/audit.js';
import { IotaError } from '../../../src/errors.js';
import { encodeGradient, sliceRange } from '../../../src/merge/gradient.js';
import { encodePartition } from '../../../src/merge/manifest.js';
import { reduceSlices } from '../../../src/merge/reduce.js';
import { encodeOptimState, updatePartition } from '../../../src/merge/update.js';
import type { ParamSpec } from '../../../src/model/params.js';
import { rng } from '../../support/rng.js';

const PARAMS = 600;
const layout: ParamSpec[] = [
  { name: 'a.weight', shape: [20, 20], offset: 0, size: 400, kind: 'matrix' },
  { name: 'a.norm', shape: [200], offset: 400, size: 200, kind: 'norm' },
];
const adamw = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

/** A stored world: three participants' gradients, w_E and moments of partition [300, 500), an honest merger's result. */
function world(tamper?: (w: Float32Array) => void) {
  const r = rng(7);
  const objects = new Map<string, Uint8Array>();
  const [offset, length] = [300, 200];
  const grads = ['b', 'a', 'c'].map((m) => ({
    miner: m,
    g: Float32Array.from({ length: PARAMS }, () => r() - 0.5),
  }));
  grads.forEach(({ miner, g }) => objects.set(`g/${miner}`, encodeGradient(g)));
  const wE = Float32Array.from({ length }, () => r() - 0.5);
  const prev = {
    m: Float32Array.from({ length }, () => (r() - 0.5) * 0.01),
    v: Float32Array.from({ length }, () => r() * 1e-4),
  };
  objects.set('w', encodePartition(wE, offset));
  objects.set('optim', encodeOptimState(prev.m, prev.v, offset));
  const N = 9;
  const { gbar } = reduceSlices(
    grads.map(({ miner, g }) => ({ miner, data: g.slice(offset, offset + length) })),
    N,
  );
  const u = updatePartition(wE, gbar, prev, offset, layout, { ...adamw, lr: 0.01 }, 4, 0.5);
  tamper?.(u.w);
  objects.set('out/w', encodePartition(u.w, offset));
  objects.set('out/optim', encodeOptimState(u.m, u.v, offset));
  const reads: Array<[string, number, number]> = [];
  const reader: RangeReader = {
    async read(key, start, end) {
      reads.push([key, start, end]);
      return objects.get(key)!.slice(start, end);
    },
    async size(key) {
      return objects.get(key)!.length;
    },
  };
  const spec: MergeAuditSpec = {
    offset,
    length,
    N,
    clip_factor: 0.5,
    lr: 0.01,
    t: 4,
    inputs: grads.map(({ miner }) => ({
      miner,
      key: `g/${miner}`,
      ...sliceRange(PARAMS, offset, length),
    })),
    w: 'w',
    optim: 'optim',
    result: { w: 'out/w', optim: 'out/optim' },
  };
  return { spec, reader, reads, objects };
}

describe('merged partition spot check', () => {
  it('reproduces an honest merger’s weights and moments bit for bit, reading only the chosen elements', async () => {
    const { spec, reader, reads, objects } = world();
    const runs = pickRuns(spec.length, 4, 16, rng(3));
    const out = await auditMerge(spec, runs, reader, layout, adamw);
    expect(out).toEqual({
      elements: runs.reduce((a, [x, y]) => a + y - x, 0),
      mismatches: 0,
      relErr: 0,
    });
    // Range reads: never a whole object.
    for (const [key, start, end] of reads)
      expect(end - start).toBeLessThan(objects.get(key)!.length);
  });

  it('finds a merger that nudged its weights, and a single element changed where it looks', async () => {
    const nudged = world((w) => w.forEach((x, i) => (w[i] = x * 1.001)));
    const out = await auditMerge(
      nudged.spec,
      pickRuns(200, 4, 16, rng(5)),
      nudged.reader,
      layout,
      adamw,
    );
    expect(out.mismatches).toBeGreaterThan(0);
    expect(out.relErr).toBeGreaterThan(5e-4);
    const one = world((w) => (w[17] += 1e-3));
    const hit = await auditMerge(one.spec, [[10, 20]], one.reader, layout, adamw);
    expect(hit.mismatches).toBe(1);
    const miss = await auditMerge(one.spec, [[40, 60]], one.reader, layout, adamw);
    expect(miss.mismatches).toBe(0);
  });

  it('blames the merger for an unreadable result, and nobody for an unreadable input', async () => {
    const w = world();
    w.objects.set('out/w', new Uint8Array([1, 2, 3]));
    await expect(auditMerge(w.spec, [[0, 8]], w.reader, layout, adamw)).rejects.toMatchObject({
      code: 'E_MERGE_RESULT_UNUSABLE',
    });
    // A result that is gone since (retention pruned its epoch before a slow validator came to
    // it) is nobody's fault either: the validator abstains on this code.
    const g = world();
    const reader: RangeReader = {
      read: async (key, start, end) => {
        if (key === 'out/optim') throw new IotaError('E_NOT_FOUND', `no object ${key}`);
        return g.reader.read(key, start, end);
      },
      size: (key) => g.reader.size(key),
    };
    await expect(auditMerge(g.spec, [[0, 8]], reader, layout, adamw)).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
    });
    const v = world();
    v.objects.set('w', new Uint8Array([1, 2, 3]));
    // An unreadable input (here w_E) is the input's fault: a bad tensor, not a bad result.
    await expect(auditMerge(v.spec, [[0, 8]], v.reader, layout, adamw)).rejects.toMatchObject({
      code: 'E_BAD_TENSOR',
    });
  });

  it('picks runs inside the partition, merged where they overlap', () => {
    const r = rng(11);
    for (const length of [1, 5, 31, 32, 200, 10_000]) {
      const runs = pickRuns(length, 4, 32, r);
      for (const [a, b] of runs) {
        expect(a).toBeGreaterThanOrEqual(0);
        expect(b).toBeLessThanOrEqual(length);
        expect(b).toBeGreaterThan(a);
      }
      for (let i = 1; i < runs.length; i++) expect(runs[i][0]).toBeGreaterThan(runs[i - 1][1]);
    }
  });
});
