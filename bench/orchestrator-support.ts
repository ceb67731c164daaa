/**
 * What the orchestrator benchmarks share: a lean signed client, the bench run (a one-stage tiny
 * model whose epoch never ends), and Linux /proc readings of a process's CPU, writes and memory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { newRequestId } from '../src/protocol/client.js';
import type { Identity } from '../src/protocol/keys.js';
import { HEADERS, signRequest } from '../src/protocol/signing.js';
import type { Http1Pool } from './http1.js';

export interface BenchClient {
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body: unknown): Promise<T>;
}

/** Signs each request as SignedClient does (same headers, fresh nonce, a request id per change); no retries. */
export class LeanClient implements BenchClient {
  constructor(
    private readonly pool: Http1Pool,
    private readonly identity: Identity,
    private readonly run: string,
  ) {}

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path, undefined, {});
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('POST', path, JSON.stringify(body), {
      'content-type': 'application/json',
      [HEADERS.requestId]: newRequestId(),
    });
  }

  private async call<T>(
    method: string,
    path: string,
    body: string | undefined,
    extra: Record<string, string>,
  ): Promise<T> {
    const headers = {
      ...signRequest(this.identity, method, path, this.run, body, Date.now()),
      ...extra,
    };
    const r = await this.pool.request(method, path, headers, body);
    const parsed = r.body ? JSON.parse(r.body) : undefined;
    if (r.status >= 400)
      throw new Error(`${method} ${path}: HTTP ${r.status} ${r.body.slice(0, 200)}`);
    return parsed as T;
  }
}

/** A one-stage tiny model over ~300 KB of generated text; an epoch target the bench never reaches. */
export function writeBenchRun(dir: string): string {
  const words = [
    'the',
    'swarm',
    'trains',
    'a',
    'model',
    'and',
    'every',
    'miner',
    'reports',
    'its',
    'work',
  ];
  let x = 7;
  const parts: string[] = [];
  for (let n = 0; n < 300_000;) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const w = words[x % words.length];
    parts.push(w);
    n += w.length + 1;
  }
  mkdirSync(join(dir, 'corpus'), { recursive: true });
  writeFileSync(join(dir, 'corpus', 'bench.txt'), parts.join(' '));
  const model = readFileSync('configs/tiny.yaml', 'utf8').replace(
    /^stages:.*$/m,
    'stages: [[-1, -1]]',
  );
  writeFileSync(join(dir, 'model.yaml'), model);
  const run = {
    name: 'bench',
    model: 'model.yaml',
    seed: 1,
    samples_per_epoch: 1_000_000_000,
    batch: 1,
    in_flight: 2,
    data: { corpus: join(dir, 'corpus'), dir: join(dir, 'data') },
    optimizer: { lr: 0.001 },
    schedule: { total_epochs: 10 },
    phases: { lease_s: 300 },
  };
  const file = join(dir, 'run.yaml');
  writeFileSync(file, JSON.stringify(run));
  return file;
}

/** CPU seconds the whole host has been busy so far (Linux /proc/stat: user, nice, system, irq, softirq, steal). */
export function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100;
}

/** user + system CPU seconds of one thread of a process so far (Linux /proc). */
export function threadCpuSeconds(pid: number, tid: number): number {
  const fields = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Bytes and write calls of a process so far, to files and sockets alike (Linux /proc). */
export function processWrites(pid: number): { bytes: number; calls: number } {
  const f = Object.fromEntries(
    readFileSync(`/proc/${pid}/io`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(': ')),
  );
  return { bytes: Number(f.wchar), calls: Number(f.syscw) };
}

/** user + system CPU seconds of a process so far (Linux /proc). */
export function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export async function pool(tasks: Array<() => Promise<unknown>>, n: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < tasks.length) await tasks[next++]();
    }),
  );
}

/** The peak resident memory of a process so far, in MB (Linux /proc: VmHWM). */
export function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** Starts a server process (node with `args`) and resolves once it prints its `listening` event. */
export async function startServer(args: string[]): Promise<{ server: ChildProcess; url: string }> {
  const server = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: server.stdout! });
    lines.on('line', (l) => {
      try {
        const e = JSON.parse(l);
        if (e.event === 'listening') resolve(e.url);
      } catch {
        // not an event
      }
    });
    server.on('exit', (c) => reject(new Error(`the server exited with ${c}`)));
  });
  return { server, url };
}
