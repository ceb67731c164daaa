/** Options and helpers shared by commands: backends and threads, flag parsers, public routes. */
import type { Command } from 'commander';
import { request } from 'undici';
import { loadNodeConfig } from '../config/index.js';
import { IotaError } from '../errors.js';
import {
  BACKENDS,
  describeSelection,
  selectBackend,
  type BackendChoice,
} from '../kernels/backends.js';
import { setThreads } from '../kernels/native/loader.js';
import { note } from './output.js';

export function addBackendOption(cmd: Command): Command {
  return cmd
    .option(
      '--backend <name>',
      `compute backend: auto, ${BACKENDS.join(', ')}`,
      process.env.IOTA_BACKEND ?? 'auto',
    )
    .option(
      '--threads <n>',
      'threads of the native CPU kernels (default IOTA_THREADS, else cores / IOTA_PROCESSES)',
      positiveInt('--threads'),
    )
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
    if (!Number.isSafeInteger(n) || n < 1)
      throw new IotaError('E_BAD_FLAG', `${flag} ${v}: expected a positive integer`);
    return n;
  };
}

export function nonNegativeNumber(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0)
      throw new IotaError('E_BAD_FLAG', `${flag} ${v}: expected a number >= 0`);
    return n;
  };
}

export function collect(v: string, previous: string[]): string[] {
  return [...previous, v];
}

/** GETs a public orchestrator route as JSON; refusals and an unreachable server become IotaErrors. */
export async function getPublic<T>(base: string, path: string): Promise<T> {
  let r;
  try {
    r = await request(`${base}${path}`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
  } catch (e) {
    throw new IotaError(
      'E_UNREACHABLE',
      `cannot reach the orchestrator at ${base}: ${(e as Error).message}`,
      'check --orchestrator and that the server is running',
    );
  }
  const body = (await r.body.json().catch(() => ({}))) as T & {
    error?: { code: string; message: string; hint?: string };
  };
  if (r.statusCode === 404)
    throw new IotaError(
      'E_NO_RUN',
      `${base} serves no run`,
      'start the orchestrator with --run FILE',
    );
  if (r.statusCode >= 400)
    throw new IotaError(
      body.error?.code ?? 'E_HTTP',
      body.error?.message ?? `HTTP ${r.statusCode}`,
      body.error?.hint,
    );
  return body;
}

/** The orchestrator URL from a flag, else the node config's orchestrator_url, else loopback at its port. */
export function orchestratorBase(flag: string | undefined, nodeFile: string | undefined): string {
  const node = loadNodeConfig(nodeFile, { env: process.env });
  return (flag ?? node.orchestrator_url ?? `http://127.0.0.1:${node.port}`).replace(/\/$/, '');
}
