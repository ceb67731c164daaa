/**
 * The swarm's oracle: the weights single-process training (`iota train`) computes on the same
 * samples, and the weights a swarm published, read from the local store's files.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadRunConfig, stageSpecs } from '../../src/config/index.js';
import { loadDataset, LocalWindows } from '../../src/data/index.js';
import { selectBackend } from '../../src/kernels/backends.js';
import { decodePartition, parseManifest } from '../../src/merge/manifest.js';
import { Model } from '../../src/model/model.js';
import { stageLayout } from '../../src/model/params.js';
import { learningRate } from '../../src/model/schedule.js';
import { batchTensors, optimizerStep } from '../../src/model/trainer.js';
import { keys } from '../../src/store/keys.js';
import { decodeSafetensors } from '../../src/tensor-io/safetensors.js';
import { runIota } from './cli.js';

/** Where the local store of a swarm whose state folder is `<dir>/state` keeps an object's bytes. */
export const localObjectFile = (dir: string) => (key: string) =>
  join(dir, 'state', 'store', 'objects', key);

/**
 * A stage's flat weights at an epoch as a swarm published them (state folder `<dir>/state`): the
 * epoch's manifest, or `key` (the manifest the orchestrator recorded for the epoch, an earlier
 * one where the epoch was abandoned).
 */
export function storedWeights(
  dir: string,
  epoch: number,
  stage: number,
  run = 'swarm-test',
  key = keys.manifest({ run, epoch, stage }),
  /** where an object's bytes lie: the local store's file by default */
  file = localObjectFile(dir),
): { w: Float32Array; clip?: number } {
  const manifest = parseManifest(readFileSync(file(key)));
  const w = new Float32Array(manifest.params);
  for (const p of manifest.partitions)
    w.set(decodePartition(readFileSync(file(p.key)), p.length), p.offset);
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

/**
 * The oracle when stages merged different samples (a miner's credited samples lost with it at
 * one stage only): each stage's flat weights after single-process training from the run's
 * initial weights where, at every epoch, stage s's step is the mean gradient over
 * `merged[epoch][s]` alone (sample ids), the forward and backward running through the whole
 * model as in `iota train`; a stage that merged nothing at an epoch takes no step there. With every stage merging every sample this is `iota train`.
 */
export async function subsetWeights(
  dir: string,
  runFile: string,
  merged: number[][][],
  /** called after each epoch's step with each stage's weights then (w_{epoch+1}) */
  onEpoch?: (epoch: number, weights: Float32Array[]) => void,
  /** sum each epoch's gradients in descending sample order: the same math, rounded otherwise */
  descending = false,
): Promise<Float32Array[]> {
  const { model: config, run } = loadRunConfig(runFile);
  await selectBackend('auto'); // as `iota train` picks: native where it is built
  const ds = await loadDataset(join(dir, 'data', 'byte'));
  const windows = new LocalWindows(ds, config.seq, run.seed, run.data.held_out_fraction);
  const model = Model.initial(config, run.seed);
  const sizes = model.stages.map((s) => s.layout.size);
  const m = sizes.map((n) => new Float32Array(n));
  const v = sizes.map((n) => new Float32Array(n));
  const o = run.optimizer;
  const steps = sizes.map(() => 0);
  try {
    merged.forEach((sets, epoch) => {
      const sums = sizes.map((n) => new Float32Array(n));
      const scratch = sizes.map((n) => new Float32Array(n));
      const members = sets.map((ids) => new Set(ids));
      const order = [...new Set(sets.flat())].sort((a, b) => a - b);
      if (descending) order.reverse();
      for (const id of order) {
        const [ids, targets] = batchTensors([windows.trainSample(id)], config.seq);
        model.lossAndGrads(
          ids,
          targets,
          members.map((set, s) => (set.has(id) ? sums[s] : scratch[s])),
        );
        tf.dispose([ids, targets]);
      }
      const lr = learningRate(epoch, o.lr, run.schedule);
      const adamw = { lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weight_decay };
      // A stage that merged nothing (its epoch abandoned) keeps its weights and step count.
      model.stages.forEach((stage, s) => {
        if (sets[s].length === 0) return;
        optimizerStep(stage, sums[s], sets[s].length, m[s], v[s], adamw, ++steps[s], o.clip);
      });
      onEpoch?.(
        epoch,
        model.stages.map((s) => s.getWeights()),
      );
    });
    return model.stages.map((s) => s.getWeights());
  } finally {
    windows.close();
    model.dispose();
  }
}
