/**
 * Stitching a run's epoch from its manifests: the weights and moments come out exactly as the
 * partitions hold them, and every damaged or inconsistent input is refused with its code.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stageSpecs, type ModelConfig } from '../../../src/config/model.js';
import {
  encodeManifest,
  encodePartition,
  MANIFEST_FORMAT,
  partitionBounds,
  type StageManifest,
} from '../../../src/merge/manifest.js';
import { encodeOptimState } from '../../../src/merge/update.js';
import { loadCheckpoint } from '../../../src/model/checkpoint.js';
import { initialWeights } from '../../../src/model/init.js';
import { stageLayout } from '../../../src/model/params.js';
import { selectBackend } from '../../../src/kernels/backends.js';
import { stitchEpoch, writeExport, type RunSource } from '../../../src/export/stitch.js';
import { sha256Hex } from '../../../src/tensor-io/hash.js';
import { testModel, testRun } from '../../support/model.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

const model: ModelConfig = testModel();
const run = testRun({ name: 'stitch' });

/** An in-memory run: epoch 1 of every stage, in partitions of 100 elements, with moments. */
function memoryRun(o: { step?: (stage: number) => number } = {}) {
  const objects = new Map<string, Uint8Array>();
  const manifests = new Map<string, { bytes: Uint8Array; sha256: string }>();
  const expected = stageSpecs(model).map((spec) => {
    const w = initialWeights(stageLayout(model, spec), `w${spec.index}`);
    const m = w.map((x) => x / 3);
    const v = w.map((x) => x * x);
    const manifest: StageManifest = {
      format: MANIFEST_FORMAT,
      version: 1,
      run: run.name,
      stage: spec.index,
      epoch: 1,
      step: o.step?.(spec.index) ?? 1,
      params: w.length,
      partitions: partitionBounds(w.length, 100).map(([offset, length], index) => {
        const key = `w/${spec.index}/${index}`;
        const bytes = encodePartition(w.subarray(offset, offset + length), offset);
        objects.set(key, bytes);
        const okey = `o/${spec.index}/${index}`;
        const obytes = encodeOptimState(
          m.subarray(offset, offset + length),
          v.subarray(offset, offset + length),
          offset,
        );
        objects.set(okey, obytes);
        return {
          index,
          offset,
          length,
          key,
          size: bytes.length,
          sha256: sha256Hex(bytes),
          optim: { key: okey, size: obytes.length, sha256: sha256Hex(obytes) },
        };
      }),
    };
    const bytes = encodeManifest(manifest);
    manifests.set(`${spec.index}/1`, { bytes, sha256: sha256Hex(bytes) });
    return { w, m, v };
  });
  const source: RunSource = {
    run,
    model,
    latestEpoch: async () => 1,
    manifest: async (stage, epoch) => {
      const m = manifests.get(`${stage}/${epoch}`);
      if (!m) throw new Error('no manifest');
      return m;
    },
    object: async (key) => objects.get(key)!,
    close: async () => {},
  };
  return { source, objects, expected };
}

describe('stitchEpoch', () => {
  it('returns every stage’s weights and moments exactly as the partitions hold them', async () => {
    const { source, expected } = memoryRun();
    const s = await stitchEpoch(source);
    expect(s.epoch).toBe(1);
    expect(s.step).toBe(1);
    expect(s.stages).toHaveLength(3);
    s.stages.forEach((st, i) => {
      expect(st.weights).toEqual(expected[i].w);
      expect(st.m).toEqual(expected[i].m);
      expect(st.v).toEqual(expected[i].v);
    });
  });

  it('refuses a partition whose bytes changed (E_HASH_MISMATCH)', async () => {
    const { source, objects } = memoryRun();
    const b = Uint8Array.from(objects.get('w/1/2')!);
    b[b.length - 1] ^= 1;
    objects.set('w/1/2', b);
    await expect(stitchEpoch(source)).rejects.toMatchObject({ code: 'E_HASH_MISMATCH' });
  });

  it('refuses changed moments too', async () => {
    const { source, objects } = memoryRun();
    const b = Uint8Array.from(objects.get('o/0/0')!);
    b[b.length - 5] ^= 0x40;
    objects.set('o/0/0', b);
    await expect(stitchEpoch(source)).rejects.toMatchObject({ code: 'E_HASH_MISMATCH' });
  });

  it('refuses an epoch not merged in every stage (E_NO_EPOCH)', async () => {
    const { source } = memoryRun();
    await expect(stitchEpoch(source, 2)).rejects.toMatchObject({ code: 'E_NO_EPOCH' });
    await expect(stitchEpoch(source, -1)).rejects.toMatchObject({ code: 'E_NO_EPOCH' });
  });

  it('refuses stages that took different numbers of steps (E_STEPS_DIFFER)', async () => {
    const { source } = memoryRun({ step: (s) => (s === 2 ? 0 : 1) });
    await expect(stitchEpoch(source)).rejects.toMatchObject({ code: 'E_STEPS_DIFFER' });
  });

  it('writes a checkpoint that loads with the same weights and moments, configs beside it', async () => {
    const { source, expected } = memoryRun();
    const out = mkdtempSync(join(tmpdir(), 'iota-stitch-'));
    await writeExport(out, source, await stitchEpoch(source));
    const ck = await loadCheckpoint(out);
    expect(ck.meta.epoch).toBe(1);
    ck.model.stages.forEach((st, i) => {
      expect(st.getWeights()).toEqual(expected[i].w);
      expect(ck.state.m[i]).toEqual(expected[i].m);
    });
    ck.model.dispose();
    expect(readFileSync(join(out, 'run.yaml'), 'utf8')).toContain('model: model.yaml');
    expect(readFileSync(join(out, 'model.yaml'), 'utf8')).toContain(`name: ${model.name}`);
  });
});
