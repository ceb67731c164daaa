/** Options and helpers shared by commands that compute. */
import type { Command } from 'commander';
import { IotaError } from '../errors.js';
import { BACKENDS, describeSelection, selectBackend, type BackendChoice } from '../kernels/backends.js';
import { setThreads } from '../kernels/native/loader.js';
import { note } from './output.js';

export function addBackendOption(cmd: Command): Command {
  return cmd
    .option('--backend <name>', `compute backend: auto, ${BACKENDS.join(', ')}`, process.env.IOTA_BACKEND ?? 'auto')
    .option('--threads <n>', 'threads of the native CPU kernels (default IOTA_THREADS, else cores / IOTA_PROCESSES)', positiveInt('--threads'))
    .hook('preAction', (_, action) => {
      const threads = action.opts().threads as number | undefined;
      if (threads !== undefined) setThreads(threads);
    });
}

/** Activates the backend and logs the choice to stderr. */
export async function useBackend(choice: string, quiet = false): Promise<string> {
  const s = await selectBackend(choice as BackendChoice);
  if (!quiet) note(describeSelection(s));
  return s.backend;
}

export function positiveInt(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1) throw new IotaError('E_BAD_FLAG', `${flag} ${v}: expected a positive integer`);
    return n;
  };
}

export function nonNegativeNumber(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new IotaError('E_BAD_FLAG', `${flag} ${v}: expected a number >= 0`);
    return n;
  };
}

export function collect(v: string, previous: string[]): string[] {
  return [...previous, v];
}
