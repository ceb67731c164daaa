/** `iota train`: every stage in one process; the swarm's oracle and the quick way to train. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import ora from 'ora';
import {
  loadModelConfig,
  loadRunConfig,
  validateConfig,
  type ModelConfig,
  type RunConfig,
} from '../config/index.js';
import { datasetDir, expandCorpus, loadDataset, LocalWindows, prepareData } from '../data/index.js';
import { IotaError } from '../errors.js';
import {
  checkpointMeta,
  loadCheckpoint,
  saveCheckpoint,
  type CheckpointMeta,
} from '../model/checkpoint.js';
import { Model } from '../model/model.js';
import { Trainer } from '../model/trainer.js';
import { addBackendOption, collect, nonNegativeNumber, positiveInt, useBackend } from './common.js';
import { note, printJson } from './output.js';

interface TrainOptions {
  run?: string;
  model?: string;
  samplesPerStep?: number;
  batch?: number;
  steps?: number;
  lr?: number;
  seed?: number;
  data?: string;
  out?: string;
  resume?: boolean;
  checkpointEvery: number;
  evalEvery: number;
  evalWindows: number;
  backend: string;
  set: string[];
  json?: boolean;
}

export function registerTrain(program: Command): void {
  const cmd = program
    .command('train')
    .description(
      'train all stages of a model in one process (bottlenecks in place), with checkpoints',
    )
    .option('--run <file>', 'run config (names its model config); hyperparameters come from it')
    .option(
      '--model <file>',
      'model config, with default hyperparameters (without --run: configs/tiny.yaml)',
    )
    .option(
      '--samples-per-step <n>',
      'samples per optimizer step (the swarm’s epoch target)',
      positiveInt('--samples-per-step'),
    )
    .option(
      '--batch <n>',
      'samples per micro-batch (memory only; results do not depend on it)',
      positiveInt('--batch'),
    )
    .option(
      '--steps <n>',
      'optimizer steps to run now (default: to the end of the schedule)',
      positiveInt('--steps'),
    )
    .option('--lr <rate>', 'peak learning rate', nonNegativeNumber('--lr'))
    .option('--seed <n>', 'run seed: initial weights and sample order', positiveInt('--seed'))
    .option(
      '--data <dir>',
      'prepared dataset (default data/<tokenizer>, prepared from the demo corpus if missing)',
    )
    .option('--out <dir>', 'checkpoint folder (default checkpoints/<run name>)')
    .option('--resume', 'continue from the newest checkpoint in --out')
    .option(
      '--checkpoint-every <n>',
      'save every n steps (and at the end)',
      positiveInt('--checkpoint-every'),
      25,
    )
    .option('--eval-every <n>', 'held-out loss every n steps', positiveInt('--eval-every'), 10)
    .option(
      '--eval-windows <n>',
      'held-out windows per evaluation',
      positiveInt('--eval-windows'),
      8,
    )
    .option('--set <field=value>', 'override a run config field (repeatable)', collect, [])
    .option('--json', 'print one JSON line per step and a summary object last');
  addBackendOption(cmd).action(train);
}

async function train(o: TrainOptions): Promise<void> {
  const { run, model: config } = loadConfigs(o);
  const out = resolve(o.out ?? join('checkpoints', run.name));
  const hasCheckpoint = existsSync(join(out, 'latest.json'));
  if (hasCheckpoint && !o.resume) {
    throw new IotaError(
      'E_CHECKPOINT_EXISTS',
      `${out} already holds a checkpoint`,
      'add --resume to continue it, or choose another --out',
    );
  }
  const backend = await useBackend(o.backend, false);
  const windows = await openData(o.data, config, run);

  let model: Model;
  let trainer: Trainer;
  let history: CheckpointMeta['history'] = [];
  if (o.resume && hasCheckpoint) {
    const ck = await loadCheckpoint(out);
    if (JSON.stringify(ck.meta.model) !== JSON.stringify(config)) {
      throw new IotaError(
        'E_CHECKPOINT_MISMATCH',
        `the checkpoint in ${out} is of a different model config`,
        'resume with the same --model/--run, or choose another --out',
      );
    }
    model = ck.model;
    history = ck.meta.history;
    trainer = new Trainer(
      model,
      { optimizer: run.optimizer, schedule: run.schedule, batch: run.batch },
      ck.state,
    );
    note(`resuming ${out} at step ${ck.state.epoch}`);
  } else {
    model = Model.initial(config, run.seed);
    trainer = new Trainer(model, {
      optimizer: run.optimizer,
      schedule: run.schedule,
      batch: run.batch,
    });
  }

  const target = o.steps !== undefined ? trainer.epoch + o.steps : run.schedule.total_epochs;
  const meta = () => checkpointMeta(run, config, trainer.epoch, windows.dataset.dir, history);

  let stop = false;
  const onSignal = () => {
    if (stop) process.exit(130);
    stop = true;
    note('\nstopping after this step (press Ctrl-C again to quit at once)');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const spinner = o.json || !process.stderr.isTTY ? null : ora({ stream: process.stderr }).start();
  const started = performance.now();
  let tokens = 0;
  let lastEval: number | undefined;
  const S = run.samples_per_epoch;
  try {
    while (trainer.epoch < target && !stop) {
      const E = trainer.epoch;
      const samples = Array.from({ length: S }, (_, k) => windows.trainSample(E * S + k));
      const t0 = performance.now();
      const r = trainer.step(samples);
      tokens += r.tokens;
      const tps = r.tokens / ((performance.now() - t0) / 1000);
      const record: CheckpointMeta['history'][number] = { epoch: E, loss: r.loss, lr: r.lr };
      if ((E + 1) % o.evalEvery === 0 || trainer.epoch === target) {
        const n = Math.min(o.evalWindows, windows.index.numHeldOut);
        lastEval = trainer.evaluate(Array.from({ length: n }, (_, j) => windows.heldOutSample(j)));
        record.eval_loss = lastEval;
      }
      history.push(record);
      const line =
        `step ${E + 1}/${target}  loss ` +
        `${r.loss.toFixed(4)}${lastEval !== undefined ? `  eval ${lastEval.toFixed(4)}` : ''} ` +
        ` lr ${r.lr.toExponential(2)}  ${Math.round(tps).toLocaleString()} tokens/s`;
      if (o.json)
        printJson({
          event: 'step',
          step: E + 1,
          loss: r.loss,
          eval_loss: record.eval_loss,
          lr: r.lr,
          grad_norms: r.gradNorms,
          clip_factors: r.clipFactors,
          tokens_per_s: tps,
        });
      else if (spinner) spinner.text = line;
      else process.stderr.write(`${line}\n`);
      if (trainer.epoch % o.checkpointEvery === 0)
        await saveCheckpoint(out, model, trainer.state, meta());
    }
    await saveCheckpoint(out, model, trainer.state, meta());
  } finally {
    windows.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const seconds = (performance.now() - started) / 1000;
  const last = history[history.length - 1];
  const summary = {
    event: 'done',
    backend,
    steps: trainer.epoch,
    loss: last?.loss,
    eval_loss: lastEval,
    first_loss: history[0]?.loss,
    tokens_per_s: tokens / seconds,
    seconds,
    checkpoint: out,
    stopped: stop,
  };
  if (o.json) printJson(summary);
  else {
    const msg =
      `${stop ? 'stopped' : 'trained'} to step ${trainer.epoch}: loss ` +
      `${last?.loss.toFixed(4)}${lastEval !== undefined ? `, held-out ${lastEval.toFixed(4)}` : ''}, ` +
      `${Math.round(summary.tokens_per_s).toLocaleString()} tokens/s on ${backend}; ` +
      `checkpoint in ${out}`;
    if (spinner) spinner.succeed(msg);
    else process.stderr.write(`${msg}\n`);
  }
  model.dispose();
}

function loadConfigs(o: TrainOptions): { run: RunConfig; model: ModelConfig } {
  let run: RunConfig;
  let model: ModelConfig;
  if (o.run) {
    if (o.model)
      throw new IotaError(
        'E_BAD_FLAG',
        'give either --run or --model, not both',
        'a run config names its model config',
      );
    ({ run, model } = loadRunConfig(o.run, { env: process.env, set: o.set }, { env: process.env }));
  } else {
    const file = o.model ?? 'configs/tiny.yaml';
    model = loadModelConfig(file, { env: process.env });
    run = validateConfig(
      'run',
      {
        name: model.name,
        model: file,
        samples_per_epoch: 16,
        batch: 4,
        optimizer: { lr: 1e-3 },
        schedule: { kind: 'cosine', warmup_epochs: 10, total_epochs: 200 },
      },
      `default run for ${file}`,
    );
    if (o.set.length)
      throw new IotaError(
        'E_BAD_FLAG',
        '--set needs --run',
        'use --lr, --samples-per-step, --batch and --seed with --model',
      );
  }
  const patch: Record<string, unknown> = {};
  if (o.samplesPerStep !== undefined) patch.samples_per_epoch = o.samplesPerStep;
  if (o.batch !== undefined) patch.batch = o.batch;
  if (o.seed !== undefined) patch.seed = o.seed;
  if (o.lr !== undefined) patch.optimizer = { ...run.optimizer, lr: o.lr };
  if (Object.keys(patch).length)
    run = validateConfig('run', { ...structuredClone(run), ...patch }, 'flags');
  return { run, model };
}

async function openData(
  dir: string | undefined,
  config: ModelConfig,
  run: RunConfig,
): Promise<LocalWindows> {
  const path = dir ?? datasetDir(run.data.dir, config.tokenizer);
  if (!dir && !existsSync(join(path, 'manifest.json'))) {
    const corpus = run.data.corpus;
    note(
      `no dataset at ${path}: preparing the ${corpus} corpus with the ${config.tokenizer} tokenizer`,
    );
    await prepareData({
      out: run.data.dir,
      tokenizer: config.tokenizer,
      corpus: corpus === 'demo' ? 'demo' : { files: expandCorpus([corpus]) },
    });
  }
  const ds = await loadDataset(path);
  if (ds.manifest.tokenizer !== config.tokenizer || ds.manifest.vocabSize > config.vocab_size) {
    throw new IotaError(
      'E_DATA_MISMATCH',
      `${path} holds ${ds.manifest.tokenizer} tokens (vocab ${ds.manifest.vocabSize}); ` +
        `model ${config.name} uses ${config.tokenizer} (vocab ${config.vocab_size})`,
      `prepare data with: iota data prepare --tokenizer ${config.tokenizer}`,
    );
  }
  return new LocalWindows(ds, config.seq, run.seed, run.data.held_out_fraction);
}
