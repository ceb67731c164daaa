/**
 * A swarm run's weights as one checkpoint: every stage's manifest of one epoch, each partition
 * checked against its sha256, stitched into the stage's flat weights and AdamW moments, and
 * written as the checkpoint `iota train --resume` and `iota generate` read (model/checkpoint.ts),
 * with the run and model configs beside it. The objects come from a `RunSource`: a local run's
 * state folder (its database and object store, read only) or a remote orchestrator.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ModelConfig } from '../config/model.js';
import type { RunConfig } from '../config/run.js';
import { IotaError } from '../errors.js';
import { decodePartition, parseManifest, type StageManifest } from '../merge/manifest.js';
import { decodeOptimState } from '../merge/update.js';
import { checkpointMeta, saveCheckpoint } from '../model/checkpoint.js';
import { Model } from '../model/model.js';
import { Stage } from '../model/stage.js';
import { stageSpecs } from '../config/model.js';
import { sha256Hex } from '../tensor-io/hash.js';

/** Where a run's configs, manifests and objects are read from. */
export interface RunSource {
  readonly run: RunConfig;
  readonly model: ModelConfig;
  /** the newest epoch whose weights every stage has (all stages merged up to it) */
  latestEpoch(): Promise<number>;
  /** the manifest object of a stage's weights of an epoch, with the hash it must have */
  manifest(stage: number, epoch: number): Promise<{ bytes: Uint8Array; sha256: string }>;
  /** an object's bytes (the caller checks them against the hash it expects) */
  object(key: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

export interface StageWeights {
  manifest: StageManifest;
  weights: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

export interface Stitched {
  epoch: number;
  step: number;
  stages: StageWeights[];
}

function checked(bytes: Uint8Array, sha256: string, what: string): Uint8Array {
  const got = sha256Hex(bytes);
  if (got !== sha256)
    throw new IotaError(
      'E_HASH_MISMATCH',
      `${what}: the store holds bytes with sha256 ${got.slice(0, 16)}…, the manifest says ` +
        `${sha256.slice(0, 16)}…`,
      'the object was changed or damaged after it was written; export another epoch',
    );
  return bytes;
}

/** Every stage's weights and moments of `epoch` (default: the newest all stages have). */
export async function stitchEpoch(
  source: RunSource,
  epoch?: number,
  onProgress: (s: string) => void = () => {},
): Promise<Stitched> {
  const latest = await source.latestEpoch();
  const E = epoch ?? latest;
  if (!Number.isSafeInteger(E) || E < 0 || E > latest)
    throw new IotaError(
      'E_NO_EPOCH',
      `epoch ${E} is not merged in every stage (the newest that is: ${latest})`,
      `pass --epoch 0 to ${latest}, or leave it out for ${latest}`,
    );
  const stages: StageWeights[] = [];
  for (const spec of stageSpecs(source.model)) {
    const ref = await source.manifest(spec.index, E);
    const manifest = parseManifest(
      checked(ref.bytes, ref.sha256, `manifest of stage ${spec.index}`),
    );
    if (manifest.stage !== spec.index || manifest.epoch !== E || manifest.run !== source.run.name)
      throw new IotaError(
        'E_BAD_MANIFEST',
        `the manifest of stage ${spec.index}, epoch ${E} describes run ${manifest.run}, ` +
          `stage ${manifest.stage}, epoch ${manifest.epoch}`,
      );
    const weights = new Float32Array(manifest.params);
    const m = new Float32Array(manifest.params);
    const v = new Float32Array(manifest.params);
    for (const p of manifest.partitions) {
      const what = `stage ${spec.index} partition ${p.index}`;
      const bytes = checked(await source.object(p.key), p.sha256, what);
      weights.set(decodePartition(bytes, p.length), p.offset);
      if (p.optim) {
        const o = decodeOptimState(
          checked(await source.object(p.optim.key), p.optim.sha256, `${what} moments`),
          p.length,
        );
        m.set(o.m, p.offset);
        v.set(o.v, p.offset);
      }
    }
    onProgress(`stage ${spec.index}: ${manifest.partitions.length} partitions checked`);
    stages.push({ manifest, weights, m, v });
  }
  const steps = new Set(stages.map((s) => s.manifest.step));
  if (steps.size !== 1)
    throw new IotaError(
      'E_STEPS_DIFFER',
      `the stages of epoch ${E} took different numbers of optimizer steps ` +
        `(${stages.map((s) => s.manifest.step).join(', ')}): one checkpoint cannot hold them`,
      'export another epoch',
    );
  return { epoch: E, step: stages[0].manifest.step, stages };
}

/**
 * Writes the stitched weights as a checkpoint in `out` (needs an active tfjs backend), and the
 * run and model configs beside it (`run.yaml` names `model.yaml`). Returns the folder written.
 */
export async function writeExport(
  out: string,
  source: RunSource,
  stitched: Stitched,
): Promise<string> {
  const { run, model: config } = source;
  const stages = stitched.stages.map((s, i) => new Stage(config, stageSpecs(config)[i], s.weights));
  const model = new Model(config, stages);
  try {
    const folder = await saveCheckpoint(
      out,
      model,
      {
        epoch: stitched.step,
        m: stitched.stages.map((s) => s.m),
        v: stitched.stages.map((s) => s.v),
      },
      checkpointMeta(run, config, stitched.epoch, run.data.dir, []),
    );
    await writeFile(join(out, 'model.yaml'), stringify(config));
    await writeFile(join(out, 'run.yaml'), stringify({ ...run, model: 'model.yaml' }));
    return folder;
  } finally {
    model.dispose();
  }
}
