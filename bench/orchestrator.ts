/**
 * `npm run bench -- orchestrator [--miners N] [--seconds S] [--concurrency C] [--json]`:
 * starts `iota orchestrator serve --run` as its own process (a one-stage tiny model over a
 * small generated corpus, an epoch target it never reaches) and drives signed requests at it
 * from this process, on loopback, from N registered simulated miners that joined the run.
 * Mix: 10% GET /v1/status; otherwise a miner holding an item reports it (POST /v1/report, a
 * committed change: task done, ledger credit, rate) and one holding none asks for work
 * (POST /v1/work, a committed change: allocation and a lease), about 45% each. The items are
 * tail items (one stage), so reports carry losses and no output object.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { SignedClient } from '../src/protocol/client.js';
import { Http1Pool } from './http1.js';
import type { WorkItemMessage, WorkReply } from '../src/protocol/swarm-messages.js';
import {
  LeanClient,
  machineBusySeconds,
  pool,
  processCpuSeconds,
  processWrites,
  startServer,
  threadCpuSeconds,
  writeBenchRun,
  type BenchClient,
} from './orchestrator-support.js';
import { newIdentity } from '../src/protocol/keys.js';

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      miners: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '10' },
      concurrency: { type: 'string', default: '32' },
      connections: { type: 'string', default: '32' },
      client: {
        type: 'string',
        default: 'lean',
        description: "'lean' (bench/http1.ts) or 'undici' (the SignedClient the miners use)",
      },
      json: { type: 'boolean', default: false },
      profile: {
        type: 'string',
        description: 'write a V8 CPU profile of the orchestrator to this folder',
      },
      floor: {
        type: 'boolean',
        default: false,
        description: 'drive bench/floor-server.ts instead: the same server setup, no database work',
      },
      'compare-floor': {
        type: 'boolean',
        default: false,
        description:
          'drive the floor server, then the orchestrator, and report their ratio (the figure that holds across hosts)',
      },
    },
  });
  const log = (s: string) => process.stderr.write(`${s}\n`);
  let output: Record<string, unknown>;
  if (values['compare-floor']) {
    log('the floor server first:');
    const floor = await measure(values, true);
    log('then the orchestrator:');
    const orch = await measure(values, false);
    const ratio = (orch.requests_per_s as number) / (floor.requests_per_s as number);
    log(`orchestrator / floor: ${ratio.toFixed(2)} (target >= 0.8)`);
    output = { ...orch, floor_requests_per_s: floor.requests_per_s, ratio_to_floor: ratio };
  } else output = await measure(values, values.floor!);
  // after the server's own last words, so the object is the last line of the output
  if (values.json) process.stdout.write(`${JSON.stringify(output)}\n`);
}

type Values = {
  miners?: string;
  seconds?: string;
  concurrency?: string;
  connections?: string;
  client?: string;
  profile?: string;
};

/** One server (the orchestrator or the floor) driven for the given time: its figures. */
async function measure(values: Values, floor: boolean): Promise<Record<string, unknown>> {
  const nMiners = Number(values.miners);
  const seconds = Number(values.seconds);
  const concurrency = Number(values.concurrency);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'iota-bench-orch-'));
  const nodeFile = join(dir, 'node.yaml');
  writeFileSync(
    nodeFile,
    `host: 127.0.0.1\nport: 0\nstate_dir: ${dir}\nrate_limits:\n  exempt_loopback: true\n  key_per_second: 1000\n  key_burst: 1000\n`,
  );
  const runFile = writeBenchRun(dir);
  const profile = values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : [];
  const floorServer = fileURLToPath(new URL('./floor-server.js', import.meta.url));
  const serverArgs = floor
    ? [floorServer, dir]
    : ['bin/iota', 'orchestrator', 'serve', '--run', runFile, '--node', nodeFile, '--json'];
  const { server, url } = await startServer([...profile, ...serverArgs]);
  let output: Record<string, unknown> | undefined;
  try {
    const identities = Array.from({ length: nMiners }, () => newIdentity());
    // Few connections, shared by all simulated miners, as a load generator on one host would.
    let clients: BenchClient[];
    let closePool: () => Promise<void>;
    if (values.client === 'undici') {
      const shared = new Pool(url, { connections: Number(values.connections) });
      clients = identities.map(
        (identity) =>
          new SignedClient({ baseUrl: url, identity, run: 'bench', retries: 0, pool: shared }),
      );
      closePool = () => shared.close();
    } else {
      const shared = new Http1Pool(url, Number(values.connections));
      clients = identities.map((identity) => new LeanClient(shared, identity, 'bench'));
      closePool = async () => shared.close();
    }
    log(`registering ${nMiners} simulated miners at ${url} and joining the run`);
    await pool(
      clients.map(
        (c) => () =>
          c
            .post('/v1/register', { version: 'bench' })
            .then(() => c.post('/v1/join', { layer: 'auto' })),
      ),
      concurrency,
    );

    const latencies: number[] = [];
    let errors = 0;
    let i = 0;
    const held = new Map<BenchClient, WorkItemMessage[]>();
    const counts = { work: 0, report: 0, status: 0 };
    const mix = async (c: BenchClient, r: number) => {
      if (r < 0.1) {
        counts.status++;
        return c.get('/v1/status');
      }
      const mine = held.get(c) ?? [];
      const it = mine.shift();
      if (it) {
        counts.report++;
        return c.post('/v1/report', { lease: it.lease, losses: it.samples.map(() => 2.5) });
      }
      counts.work++;
      const w = await c.post<WorkReply>('/v1/work', { max: 1 });
      held.set(c, [...mine, ...w.items]);
      return w;
    };
    const warmupEnd = performance.now() + 2000;
    const end = warmupEnd + seconds * 1000;
    let counted = 0;
    const worker = async () => {
      while (performance.now() < end) {
        const c = clients[i++ % clients.length];
        const t0 = performance.now();
        try {
          await mix(c, Math.random());
          if (t0 >= warmupEnd) {
            latencies.push(performance.now() - t0);
            counted++;
          }
        } catch {
          if (t0 >= warmupEnd) errors++;
        }
      }
    };
    log(`driving ${concurrency} concurrent requests for ${seconds} s after a 2 s warm-up`);
    const cpu0 = process.cpuUsage();
    const server0 = processCpuSeconds(server.pid!);
    const main0 = threadCpuSeconds(server.pid!, server.pid!);
    const io0 = processWrites(server.pid!);
    const machine0 = machineBusySeconds();
    const wall0 = performance.now();
    // The WAL's size, sampled: the checkpointer must keep it bounded under this steady load.
    let walBytes = 0;
    const walFile = join(dir, 'state.db-wal');
    const sampleWal = () => {
      try {
        walBytes = Math.max(walBytes, statSync(walFile).size);
      } catch {
        // no WAL yet
      }
    };
    const walTimer = setInterval(sampleWal, 250);
    await Promise.all(Array.from({ length: concurrency }, worker));
    clearInterval(walTimer);
    sampleWal();
    const wall = (performance.now() - wall0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const serverCores = (processCpuSeconds(server.pid!) - server0) / wall;
    // The event loop's own thread (the process's first): the number that saturates first.
    const mainCores = (threadCpuSeconds(server.pid!, server.pid!) - main0) / wall;
    const io = processWrites(server.pid!);
    // Everything on the host, ours or not: another busy process makes the other figures noisy.
    const machineCores = (machineBusySeconds() - machine0) / wall;
    const generatorCores = (cpu.user + cpu.system) / 1e6 / wall;
    latencies.sort((a, b) => a - b);
    const q = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
    const result = {
      bench: floor ? 'orchestrator-floor' : 'orchestrator',
      miners: nMiners,
      seconds,
      concurrency,
      requests_per_s: counted / seconds,
      p50_ms: q(0.5),
      p99_ms: q(0.99),
      errors,
      server_cpu_cores: serverCores,
      server_event_loop_cores: mainCores,
      server_cpu_us_per_request: (serverCores / (counted / seconds)) * 1e6,
      generator_cpu_cores: generatorCores,
      generator_cpu_us_per_request: (generatorCores / (counted / seconds)) * 1e6,
      machine_busy_cores: machineCores,
      wal_max_mb: walBytes / 2 ** 20,
      // what the orchestrator wrote (database, WAL, sockets), per request: not noisy, unlike time
      server_write_kb_per_request: (io.bytes - io0.bytes) / 1024 / wall / (counted / seconds),
      server_write_calls_per_request: (io.calls - io0.calls) / wall / (counted / seconds),
      mix: Object.fromEntries(
        Object.entries({
          'POST /v1/work': counts.work,
          'POST /v1/report': counts.report,
          'GET /v1/status': counts.status,
        }).map(([k, v]) => [k, +(v / (counts.work + counts.report + counts.status)).toFixed(3)]),
      ),
    };
    log(
      `${Math.round(result.requests_per_s).toLocaleString()} requests/s, p50 ${result.p50_ms.toFixed(2)} ms, p99 ${result.p99_ms.toFixed(2)} ms, ${errors} errors (target: >= 3,000 requests/s, p99 < 25 ms)`,
    );
    log(
      `cpu: orchestrator ${serverCores.toFixed(2)} cores (event loop ${mainCores.toFixed(2)}; ${Math.round(result.server_cpu_us_per_request)} µs/request), load generator ${generatorCores.toFixed(2)} cores (${Math.round(result.generator_cpu_us_per_request)} µs/request); the host was busy ${machineCores.toFixed(2)} cores in all; the WAL reached ${result.wal_max_mb.toFixed(0)} MB`,
    );
    await closePool();
    output = result;
  } finally {
    server.kill('SIGTERM');
    if (server.exitCode === null) await new Promise((resolve) => server.once('exit', resolve));
    rmSync(dir, { recursive: true, force: true });
  }
  return output!;
}
