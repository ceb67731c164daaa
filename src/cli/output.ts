/** Terminal output shared by commands: one place decides how errors and notes look. */
import chalk from 'chalk';
import { isIotaError } from '../errors.js';

export function note(message: string): void {
  process.stderr.write(`${chalk.dim(message)}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Expected failures print a sentence and a hint; only unexpected ones show a stack (or with IOTA_DEBUG=1). */
export function reportError(e: unknown): number {
  if (isIotaError(e)) {
    process.stderr.write(`${chalk.red(`error ${e.code}`)}: ${e.message}\n`);
    if (e.hint) process.stderr.write(`${chalk.yellow('hint')}: ${e.hint}\n`);
    if (process.env.IOTA_DEBUG) process.stderr.write(`${e.stack}\n`);
    return 2;
  }
  process.stderr.write(
    `${chalk.red('internal error')}: ${e instanceof Error ? e.message : String(e)}\n`,
  );
  process.stderr.write(
    `${e instanceof Error ? e.stack : ''}\nThis is a bug in iota; please report it with the lines above.\n`,
  );
  return 1;
}
