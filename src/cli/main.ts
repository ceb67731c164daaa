/** The `iota` program: one executable, one subcommand per role or tool. */
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { registerDoctor } from './doctor.js';
import { registerData } from './data.js';
import { registerGenerate } from './generate.js';
import { registerKeys } from './keys.js';
import { registerOrchestrator } from './orchestrator.js';
import { registerStatus } from './status.js';
import { registerMiner } from './miner.js';
import { registerValidator } from './validator.js';
import { registerTrain } from './train.js';
import { reportError } from './output.js';
import { exitWithSupervisor } from './supervised.js';
import { registerExport } from './export.js';
import { registerLocal } from './local.js';
import { registerSetup } from './setup.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

export function buildProgram(): Command {
  const program = new Command('iota')
    .description('IOTA in TypeScript: train Llama-style models across many unreliable machines')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerDoctor(program);
  registerData(program);
  registerTrain(program);
  registerGenerate(program);
  registerKeys(program);
  registerOrchestrator(program);
  registerStatus(program);
  registerMiner(program);
  registerValidator(program);
  registerExport(program);
  registerLocal(program);
  registerSetup(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  exitWithSupervisor();
  try {
    await buildProgram().parseAsync(argv);
    // A command that finished but failed its purpose (interrupted) set the code itself.
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    return reportError(e);
  }
}
