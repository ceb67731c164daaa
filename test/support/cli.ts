/** Runs the built `iota` executable (dist/) as a real process. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const IOTA = join(process.cwd(), 'bin/iota');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runIota(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [IOTA, ...args], { cwd: opts.cwd, env: { ...process.env, NODE_OPTIONS: '', ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

/** Command names listed under "Commands:" in a help text. */
export function listedCommands(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1] ?? '';
  return [...section.matchAll(/^ {2}([a-z][\w-]*)/gm)].map((m) => m[1]).filter((c) => c !== 'help');
}
