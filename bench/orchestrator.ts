/**
 * `npm run bench -- orchestrator [--miners N] [--seconds S] [--concurrency C] [--json]`:
 * starts `iota orchestrator serve` as its own process and drives signed requests at it from
 * this process, on loopback, from N registered simulated miners. Until the scheduler exists
 * (Orchestrator II) the mix uses the routes there are: 45% POST /v1/heartbeat (stands in for
 * work requests), 45% POST /v1/register re-registrations (committed writes, for reports),
 * 10% GET /v1/status.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { SignedClient, newRequestId } from '../src/protocol/client.js';
import { newIdentity } from '../src/protocol/keys.js';

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      miners: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '10' },
      concurrency: { type: 'string', default: '32' },
      connections: { type: 'string', default: '32' },
      json: { type: 'boolean', default: false },
      profile: { type: 'string', description: 'write a V8 CPU profile of the orchestrator to this folder' },
    },
  });
  const nMiners = Number(values.miners);
  const seconds = Number(values.seconds);
  const concurrency = Number(values.concurrency);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'iota-bench-orch-'));
  const nodeFile = join(dir, 'node.yaml');
  writeFileSync(nodeFile, `host: 127.0.0.1\nport: 0\nstate_dir: ${dir}\nrate_limits:\n  exempt_loopback: true\n  key_per_second: 1000\n  key_burst: 1000\n`);
  const profile = values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : [];
  const server = spawn(process.execPath, [...profile, 'bin/iota', 'orchestrator', 'serve', '--node', nodeFile, '--run-id', 'bench', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
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
    server.on('exit', (c) => reject(new Error(`orchestrator exited with ${c}`)));
  });
  try {
    const identities = Array.from({ length: nMiners }, () => newIdentity());
    // Few connections, shared by all simulated miners, as a load generator on one host would.
    const shared = new Pool(url, { connections: Number(values.connections) });
    const clients = identities.map((identity) => new SignedClient({ baseUrl: url, identity, run: 'bench', retries: 0, pool: shared }));
    log(`registering ${nMiners} simulated miners at ${url}`);
    await pool(clients.map((c) => () => c.post('/v1/register', { version: 'bench' })), concurrency);

    const latencies: number[] = [];
    let errors = 0;
    let i = 0;
    const mix = (c: SignedClient, r: number) => (r < 0.45 ? c.post('/v1/heartbeat', {}) : r < 0.9 ? c.post('/v1/register', { version: 'bench' }, newRequestId()) : c.get('/v1/status'));
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
    const wall0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, worker));
    const wall = (performance.now() - wall0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const serverCores = (processCpuSeconds(server.pid!) - server0) / wall;
    const generatorCores = (cpu.user + cpu.system) / 1e6 / wall;
    latencies.sort((a, b) => a - b);
    const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
    const result = {
      bench: 'orchestrator',
      miners: nMiners,
      seconds,
      concurrency,
      requests_per_s: counted / seconds,
      p50_ms: q(0.5),
      p99_ms: q(0.99),
      errors,
      server_cpu_cores: serverCores,
      generator_cpu_cores: generatorCores,
      mix: { 'POST /v1/heartbeat': 0.45, 'POST /v1/register': 0.45, 'GET /v1/status': 0.1 },
      note: 'routes of Orchestrator I; work requests and reports arrive with Orchestrator II',
    };
    log(`${Math.round(result.requests_per_s).toLocaleString()} requests/s, p50 ${result.p50_ms.toFixed(2)} ms, p99 ${result.p99_ms.toFixed(2)} ms, ${errors} errors (target: >= 3,000 requests/s, p99 < 25 ms)`);
    log(`cpu: orchestrator ${serverCores.toFixed(2)} cores, load generator ${generatorCores.toFixed(2)} cores`);
    if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    await shared.close();
  } finally {
    server.kill('SIGTERM');
  }
}

/** user + system CPU seconds of a process so far (Linux /proc). */
function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function pool(tasks: Array<() => Promise<unknown>>, n: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < tasks.length) await tasks[next++]();
  }));
}
