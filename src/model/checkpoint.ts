/**
 * Checkpoints of single-process training. Each save writes a new folder `epoch-<E>/` (weights
 * and optimizer moments per stage, as safetensors, and `checkpoint.json`), then points
 * `latest.json` at it with an atomic rename, so a crash mid-save leaves the previous
 * checkpoint intact. The two newest folders are kept.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  validateConfig,
  type ModelConfig,
  type RunConfig,
  type OptimizerConfig,
  type ScheduleConfig,
} from '../config/index.js';
import { IotaError } from '../errors.js';
import { decodeSafetensors, encodeSafetensors } from '../tensor-io/index.js';
import { Model } from './model.js';
import { Stage } from './stage.js';
import type { OptimizerState } from './trainer.js';

const FORMAT = 'iota-checkpoint';
const KEEP = 2;

export interface CheckpointMeta {
  format: typeof FORMAT;
  version: 1;
  /** epochs completed: the next step is epoch `epoch` */
  epoch: number;
  model: ModelConfig;
  training: {
    run: string;
    seed: number;
    samples_per_epoch: number;
    batch: number;
    optimizer: OptimizerConfig;
    schedule: ScheduleConfig;
    data: string;
  };
  /** losses per epoch so far (mean training loss, and held-out loss where measured) */
  history: Array<{ epoch: number; loss: number; lr: number; eval_loss?: number }>;
}

/** The metadata of a checkpoint of `epoch` epochs of a run's training on the data in `data`. */
export function checkpointMeta(
  run: RunConfig,
  model: ModelConfig,
  epoch: number,
  data: string,
  history: CheckpointMeta['history'],
): CheckpointMeta {
  return {
    format: FORMAT,
    version: 1,
    epoch,
    model,
    training: {
      run: run.name,
      seed: run.seed,
      samples_per_epoch: run.samples_per_epoch,
      batch: run.batch,
      optimizer: run.optimizer,
      schedule: run.schedule,
      data,
    },
    history,
  };
}

export interface Checkpoint {
  meta: CheckpointMeta;
  model: Model;
  state: OptimizerState;
}

export async function saveCheckpoint(
  dir: string,
  model: Model,
  state: OptimizerState,
  meta: CheckpointMeta,
): Promise<string> {
  const name = `epoch-${String(meta.epoch).padStart(6, '0')}`;
  const folder = join(dir, name);
  await rm(folder, { recursive: true, force: true });
  await mkdir(folder, { recursive: true });
  for (const [i, stage] of model.stages.entries()) {
    await writeFile(join(folder, `stage-${i}.safetensors`), stage.toSafetensors());
    const n = stage.layout.size;
    await writeFile(
      join(folder, `optim-${i}.safetensors`),
      encodeSafetensors(
        {
          m: { dtype: 'F32', shape: [n], data: state.m[i] },
          v: { dtype: 'F32', shape: [n], data: state.v[i] },
        },
        { epoch: String(state.epoch) },
      ),
    );
  }
  await writeFile(join(folder, 'checkpoint.json'), `${JSON.stringify(meta, null, 1)}\n`);
  const tmp = join(dir, `latest.json.${process.pid}.tmp`);
  await writeFile(tmp, `${JSON.stringify({ folder: name, epoch: meta.epoch })}\n`);
  await rename(tmp, join(dir, 'latest.json'));
  const old = (await readdir(dir)).filter((f) => /^epoch-\d+$/.test(f) && f !== name).sort();
  for (const f of old.slice(0, Math.max(0, old.length - (KEEP - 1))))
    await rm(join(dir, f), { recursive: true, force: true });
  return folder;
}

/** Loads the newest checkpoint in `dir` (verifying every tensor's name, shape and finiteness). */
export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  let latest: { folder: string };
  try {
    latest = JSON.parse(await readFile(join(dir, 'latest.json'), 'utf8'));
  } catch {
    throw new IotaError(
      'E_NO_CHECKPOINT',
      `no checkpoint in ${dir} (latest.json missing or unreadable)`,
      'train first with `iota train`, or point --checkpoint at its --out folder',
    );
  }
  const folder = join(dir, latest.folder);
  const meta = JSON.parse(
    await readFile(join(folder, 'checkpoint.json'), 'utf8'),
  ) as CheckpointMeta;
  if (meta.format !== FORMAT)
    throw new IotaError('E_BAD_CHECKPOINT', `${folder}/checkpoint.json is not an iota checkpoint`);
  const config = validateConfig('model', meta.model, `${folder}/checkpoint.json`);
  const stages: Stage[] = [];
  const m: Float32Array[] = [];
  const v: Float32Array[] = [];
  for (let i = 0; i < config.stages.length; i++) {
    stages.push(
      Stage.fromSafetensors(config, i, await readFile(join(folder, `stage-${i}.safetensors`))),
    );
    const n = stages[i].layout.size;
    const opt = decodeSafetensors(await readFile(join(folder, `optim-${i}.safetensors`)), {
      expect: { m: { dtype: 'F32', shape: [n] }, v: { dtype: 'F32', shape: [n] } },
    });
    m.push((opt.tensors.m.data as Float32Array).slice());
    v.push((opt.tensors.v.data as Float32Array).slice());
  }
  return {
    meta: { ...meta, model: config },
    model: new Model(config, stages),
    state: { epoch: meta.epoch, m, v },
  };
}
