/**
 * The swarm's oracle: the weights single-process training (`iota train`) computes on the same
 * samples, and the weights a swarm published, read from the local store's files.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadRunConfig, stageSpecs } from '../../src/config/index.js';
import { decodePartition, parseManifest } from '../../src/merge/manifest.js';
import { stageLayout } from '../../src/model/params.js';
import { keys } from '../../src/store/keys.js';
import { decodeSafetensors } from '../../src/tensor-io/safetensors.js';
import { runIota } from './cli.js';

/** A stage's flat weights at an epoch as a swarm published them (state folder `<dir>/state`). */
export function storedWeights(
  dir: string,
  epoch: number,
  stage: number,
  run = 'swarm-test',
): { w: Float32Array; clip?: number } {
  const objects = join(dir, 'state', 'store', 'objects');
  const manifest = parseManifest(readFileSync(join(objects, keys.manifest({ run, epoch, stage }))));
  const w = new Float32Array(manifest.params);
  for (const p of manifest.partitions)
    w.set(decodePartition(readFileSync(join(objects, p.key)), p.length), p.offset);
  return { w, clip: manifest.clip_factor };
}

/**
 * Each stage's flat weights after `steps` optimizer steps of `iota train` on the run's samples
 * (the data prepared under `<dir>/data/byte`), checkpointed under `<dir>/ck`.
 */
export async function singleProcessWeights(
  dir: string,
  runFile: string,
  steps: number,
): Promise<Float32Array[]> {
  const out = join(dir, 'ck');
  const train = await runIota([
    'train',
    '--run',
    runFile,
    '--steps',
    String(steps),
    '--out',
    out,
    '--data',
    join(dir, 'data', 'byte'),
    '--json',
  ]);
  if (train.code !== 0) throw new Error(`iota train exited ${train.code}: ${train.stderr}`);
  const { model } = loadRunConfig(runFile);
  const latest = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as { folder: string };
  return stageSpecs(model).map((spec) => {
    const layout = stageLayout(model, spec);
    const { tensors } = decodeSafetensors(
      readFileSync(join(out, latest.folder, `stage-${spec.index}.safetensors`)),
    );
    const w = new Float32Array(layout.size);
    for (const p of layout.params) w.set(tensors[p.name].data as Float32Array, p.offset);
    return w;
  });
}
