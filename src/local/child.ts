/**
 * One process of a local swarm: `iota <role> ... --json` in its own process group (a Ctrl-C
 * at the terminal reaches `iota local` only, which decides how its children stop), its output
 * appended to a log file, its JSON lines handed to the supervisor. It watches its stdin pipe
 * (IOTA_SUPERVISED, cli/supervised.ts), so it exits on its own if the supervisor dies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, createWriteStream, openSync, readFileSync, type WriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The `iota` executable this program was started from. */
export const IOTA_BIN = fileURLToPath(new URL('../../bin/iota', import.meta.url));

export interface ChildOptions {
  /** shown in the view and in messages: `orchestrator`, `miner s1.0`, `validator 0` */
  name: string;
  args: string[];
  log: string;
  env: NodeJS.ProcessEnv;
  onEvent?: (e: Record<string, unknown>) => void;
}

export class Child {
  readonly name: string;
  readonly log: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly proc: ChildProcess;
  private readonly out: WriteStream;
  /** set when the supervisor asked it to stop: its exit is then expected */
  stopping = false;

  constructor(o: ChildOptions) {
    this.name = o.name;
    this.log = o.log;
    const err = openSync(o.log, 'a');
    this.out = createWriteStream(o.log, { flags: 'a' });
    this.proc = spawn(process.execPath, [IOTA_BIN, ...o.args], {
      env: { ...o.env, IOTA_SUPERVISED: '1' },
      stdio: ['pipe', 'pipe', err],
      detached: true,
    });
    closeSync(err);
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      this.out.write(d);
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        try {
          o.onEvent?.(JSON.parse(line));
        } catch {
          // not a JSON event: it is in the log all the same
        }
      }
    });
    this.exited = new Promise((resolve) =>
      this.proc.on('exit', (code, signal) => {
        this.out.end();
        resolve({ code, signal });
      }),
    );
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.proc.kill(sig);
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** The last lines of its log (what a crash report shows). */
  tail(lines = 12): string {
    try {
      return readFileSync(this.log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}
