/** Runs the built `iota` executable (dist/) as a real process. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const IOTA = join(process.cwd(), 'bin/iota');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runIota(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [IOTA, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, NODE_OPTIONS: '', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
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

const live = new Set<IotaProcess>();

/** Kills every IotaProcess still running (call from afterAll, so a failed test leaves none behind). */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.kill('SIGKILL')));
}

/** A long-running `iota` process whose stdout JSON lines can be awaited. */
export class IotaProcess {
  readonly child: ReturnType<typeof spawn>;
  readonly stderr: string[] = [];
  private lines: unknown[] = [];
  /** every JSON line seen so far */
  get events(): Array<Record<string, unknown>> {
    return this.lines as Array<Record<string, unknown>>;
  }
  private waiters: Array<{
    test: (e: Record<string, unknown>) => boolean;
    resolve: (e: Record<string, unknown>) => void;
    reject: (e: Error) => void;
  }> = [];
  readonly exited: Promise<number | null>;

  /** `node`: options for node itself (e.g. --cpu-prof, which NODE_OPTIONS may not carry) */
  constructor(
    args: string[],
    opts: { cwd?: string; env?: NodeJS.ProcessEnv; node?: string[] } = {},
  ) {
    this.child = spawn(process.execPath, [...(opts.node ?? []), IOTA, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, NODE_OPTIONS: '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          this.onEvent(JSON.parse(line));
        } catch {
          // not a JSON event
        }
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => this.stderr.push(d.toString()));
    live.add(this);
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        live.delete(this);
        for (const w of this.waiters)
          w.reject(
            new Error(
              `process exited (${code}) before the awaited event; stderr: ${this.stderr.join('')}`,
            ),
          );
        this.waiters = [];
        resolve(code);
      }),
    );
  }

  /** Resolves with the first JSON line (seen already or later) that passes `test`. */
  waitFor(test: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    const seen = this.lines.find((e) => test(e as Record<string, unknown>));
    if (seen) return Promise.resolve(seen as Record<string, unknown>);
    return new Promise((resolve, reject) => this.waiters.push({ test, resolve, reject }));
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }

  private onEvent(e: Record<string, unknown>): void {
    this.lines.push(e);
    this.waiters = this.waiters.filter((w) => {
      if (!w.test(e)) return true;
      w.resolve(e);
      return false;
    });
  }
}

/**
 * `iota orchestrator serve` for a run on any free port, its state under `dir/state`, printing
 * JSON lines; `more`: further arguments (`--set` overrides).
 */
export function serveArgs(runFile: string, dir: string, ...more: string[]): string[] {
  return [
    'orchestrator',
    'serve',
    '--run',
    runFile,
    '--port',
    '0',
    '--state-dir',
    join(dir, 'state'),
    '--json',
    ...more,
  ];
}

/** The miners `iota local` starts by default (3 stages x 2), by the names it gives them. */
export const LOCAL_MINER_NAMES = [
  'miner-s0-0',
  'miner-s0-1',
  'miner-s1-0',
  'miner-s1-1',
  'miner-s2-0',
  'miner-s2-1',
];
