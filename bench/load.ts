/**
 * `npm run bench -- load [--miners N] [--poll-ms P] [--work-ms W] [--seconds S] [--json]`: one
 * orchestrator (`iota orchestrator serve`, its own process, the orchestrator bench's run) under
 * N registered simulated miners in this process, open loop as a swarm's miners behave: an idle
 * miner asks for work every P ms (POST /v1/work, with jitter), one holding an item reports it W ms
 * later (POST /v1/report) and asks again at once. It prints the offered and achieved request
 * rates, the latency miners see (p50, p99: from when a request is made, queueing included),
 * the orchestrator's CPU and peak RSS and the WAL's largest size. Targets: p99 <= 100 ms, RSS
 * <= 2 GiB at 10,000 miners.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { newIdentity } from '../src/protocol/keys.js';
import type { WorkItemMessage, WorkReply } from '../src/protocol/swarm-messages.js';
import { Http1Pool } from './http1.js';
import {
  LeanClient,
  peakRssMb,
  pool,
  processCpuSeconds,
  startServer,
  writeBenchRun,
} from './orchestrator-support.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface LoadOptions {
  miners: number;
  pollMs: number;
  workMs: number;
  seconds: number;
  connections: number;
  log: (s: string) => void;
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      miners: { type: 'string', default: '10000' },
      'poll-ms': { type: 'string', default: '2000' },
      'work-ms': { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '30' },
      connections: { type: 'string', default: '64' },
      json: { type: 'boolean', default: false },
    },
  });
  const output = await runLoad({
    miners: Number(values.miners),
    pollMs: Number(values['poll-ms']),
    workMs: Number(values['work-ms']),
    seconds: Number(values.seconds),
    connections: Number(values.connections),
    log: (s: string) => process.stderr.write(`${s}\n`),
  });
  if (values.json) process.stdout.write(`${JSON.stringify(output)}\n`);
}

/** The load scenario (the bench above, and its short variant in test/chaos/load.test.ts). */
export async function runLoad(o: LoadOptions): Promise<Record<string, number | string>> {
  const { miners: n, pollMs, workMs, seconds, log } = o;
  const dir = mkdtempSync(join(tmpdir(), 'iota-bench-load-'));
  const nodeFile = join(dir, 'node.yaml');
  writeFileSync(
    nodeFile,
    `host: 127.0.0.1\nport: 0\nstate_dir: ${dir}\nrate_limits:\n  exempt_loopback: true\n`,
  );
  const runFile = writeBenchRun(dir);
  const { server, url } = await startServer([
    'bin/iota',
    'orchestrator',
    'serve',
    '--run',
    runFile,
    '--node',
    nodeFile,
    '--json',
  ]);
  try {
    const shared = new Http1Pool(url, o.connections);
    const clients = Array.from({ length: n }, () => new LeanClient(shared, newIdentity(), 'bench'));
    log(`registering ${n} simulated miners and joining the run`);
    const t0 = performance.now();
    await pool(
      clients.map(
        (c) => () =>
          c
            .post('/v1/register', { version: 'bench' })
            .then(() => c.post('/v1/join', { layer: 'auto' })),
      ),
      64,
    );
    const joinSeconds = (performance.now() - t0) / 1000;
    log(`  in ${joinSeconds.toFixed(1)} s`);

    const latencies: number[] = [];
    let errors = 0;
    let reports = 0;
    let measuring = false;
    const call = async <T>(f: () => Promise<T>): Promise<T | undefined> => {
      const t = performance.now();
      try {
        const r = await f();
        if (measuring) latencies.push(performance.now() - t);
        return r;
      } catch {
        if (measuring) errors++;
        return undefined;
      }
    };
    let stop = false;
    const miner = async (c: LeanClient) => {
      await sleep(Math.random() * pollMs); // spread the first polls
      while (!stop) {
        const w = await call(() => c.post<WorkReply>('/v1/work', { max: 1 }));
        const items: WorkItemMessage[] = w?.items ?? [];
        if (items.length === 0) {
          await sleep(pollMs * (0.9 + 0.2 * Math.random()));
          continue;
        }
        await sleep(workMs * (0.9 + 0.2 * Math.random()));
        for (const it of items)
          if (
            await call(() =>
              c.post('/v1/report', { lease: it.lease, losses: it.samples.map(() => 2.5) }),
            )
          )
            reports++;
      }
    };
    const running = clients.map((c) => miner(c));
    log(`open loop for ${seconds} s after a ${pollMs / 1000} s warm-up`);
    await sleep(pollMs);
    measuring = true;
    const cpu0 = processCpuSeconds(server.pid!);
    let walBytes = 0;
    const walTimer = setInterval(() => {
      try {
        walBytes = Math.max(walBytes, statSync(join(dir, 'state.db-wal')).size);
      } catch {
        // no WAL yet
      }
    }, 250);
    const wall0 = performance.now();
    await sleep(seconds * 1000);
    measuring = false;
    const wall = (performance.now() - wall0) / 1000;
    const cores = (processCpuSeconds(server.pid!) - cpu0) / wall;
    clearInterval(walTimer);
    stop = true;
    await Promise.all(running);
    shared.close();
    latencies.sort((a, b) => a - b);
    const q = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0;
    const offered = n / (pollMs / 1000);
    const output = {
      bench: 'load',
      miners: n,
      poll_ms: pollMs,
      work_ms: workMs,
      seconds,
      join_seconds: Number(joinSeconds.toFixed(1)),
      idle_poll_rate_per_s: offered,
      achieved_requests_per_s: Number((latencies.length / wall).toFixed(1)),
      p50_ms: Number(q(0.5).toFixed(2)),
      p99_ms: Number(q(0.99).toFixed(2)),
      errors,
      reports,
      server_cpu_cores: Number(cores.toFixed(2)),
      server_peak_rss_mb: Math.round(peakRssMb(server.pid!)),
      wal_max_mb: Number((walBytes / 2 ** 20).toFixed(1)),
    };
    log(
      `${output.achieved_requests_per_s} requests/s (idle polls alone would be ${offered}/s), ` +
        `p50 ${output.p50_ms} ms, p99 ${output.p99_ms} ms (target <= 100), ${errors} errors; ` +
        `orchestrator ${output.server_cpu_cores} cores, peak RSS ${output.server_peak_rss_mb} MB ` +
        `(target <= 2048), WAL up to ${output.wal_max_mb} MB`,
    );
    return output;
  } finally {
    server.kill('SIGTERM');
    if (server.exitCode === null) await new Promise((resolve) => server.once('exit', resolve));
    rmSync(dir, { recursive: true, force: true });
  }
}
