/** `iota export`: a swarm run's weights of one epoch as a checkpoint of single-process training. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import type { Command } from 'commander';
import { IotaError } from '../errors.js';
import { localRunSource, remoteRunSource } from '../export/sources.js';
import { stitchEpoch, writeExport, type RunSource } from '../export/stitch.js';
import { readKeyFile } from '../protocol/keys.js';
import { addBackendOption, useBackend } from './common.js';
import { note, printJson } from './output.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

interface ExportFlags {
  stateDir?: string;
  store?: string;
  orchestrator?: string;
  key?: string;
  epoch?: string;
  out: string;
  backend: string;
  json?: boolean;
}

export function registerExport(program: Command): void {
  const cmd = program
    .command('export')
    .description(
      'stitch the stages’ merged weights of a swarm run into one checkpoint ' +
        '(for iota generate and iota train --resume), every hash checked',
    )
    .option('--state-dir <dir>', 'a local run’s state folder (of iota local or orchestrator serve)')
    .option('--store <dir>', 'its local object store, when not <state-dir>/store')
    .option('--orchestrator <url>', 'a remote run instead: its orchestrator URL (needs --key)')
    .option('--key <file>', 'your key file, for --orchestrator (it registers if new)')
    .option('--epoch <n>', 'the weights of this epoch (default: the newest every stage merged)')
    .requiredOption('--out <dir>', 'checkpoint folder to write (must not hold a checkpoint)')
    .option('--json', 'print the result as one JSON object');
  addBackendOption(cmd).action(async (o: ExportFlags) => {
    if (!o.stateDir === !o.orchestrator)
      throw new IotaError(
        'E_BAD_FLAG',
        'say where the run is: --state-dir DIR (a local run) or --orchestrator URL --key FILE',
      );
    if (o.orchestrator && !o.key)
      throw new IotaError(
        'E_NO_KEY',
        '--orchestrator needs --key FILE',
        'create one with: iota keys new --out export.key',
      );
    const epoch = o.epoch === undefined ? undefined : Number(o.epoch);
    if (epoch !== undefined && (!Number.isSafeInteger(epoch) || epoch < 0))
      throw new IotaError('E_BAD_FLAG', `--epoch ${o.epoch}: expected an epoch number >= 0`);
    const out = resolve(o.out);
    if (existsSync(join(out, 'latest.json')))
      throw new IotaError(
        'E_CHECKPOINT_EXISTS',
        `${out} already holds a checkpoint`,
        'choose another --out, or remove that folder first',
      );
    const source: RunSource = o.stateDir
      ? await localRunSource(o.stateDir, o.store)
      : await remoteRunSource(o.orchestrator!.replace(/\/$/, ''), readKeyFile(o.key!), pkg.version);
    try {
      await useBackend(o.backend, o.json);
      const stitched = await stitchEpoch(source, epoch, o.json ? undefined : note);
      const folder = await writeExport(out, source, stitched);
      const result = {
        run: source.run.name,
        model: source.model.name,
        epoch: stitched.epoch,
        step: stitched.step,
        stages: stitched.stages.length,
        params: stitched.stages.reduce((a, s) => a + s.weights.length, 0),
        checkpoint: out,
        folder,
      };
      if (o.json) printJson(result);
      else
        console.log(
          `exported run ${result.run} (${result.model}), the weights of epoch ${result.epoch} ` +
            `(${result.step} steps, ${result.params.toLocaleString()} parameters in ` +
            `${result.stages} stages) to ${out}\n` +
            `  sample: iota generate --checkpoint ${o.out}\n` +
            `  train on: iota train --run ${join(o.out, 'run.yaml')} --out ${o.out} --resume`,
        );
    } finally {
      await source.close();
    }
  });
}
