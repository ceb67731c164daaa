/** `iota orchestrator serve`: the only holder of durable state and storage credentials. */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { createRequire } from 'node:module';
import { loadNodeConfig } from '../config/index.js';
import { buildOrchestrator, pruneState } from '../orchestrator/server.js';
import { Repository } from '../orchestrator/state/repository.js';
import { storageRoutes } from '../orchestrator/routes/storage.js';
import { LocalStore, localStoreRoutes, openStore } from '../store/index.js';
import { collect, positiveInt } from './common.js';
import { note, printJson } from './output.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

export function registerOrchestrator(program: Command): void {
  const orch = program.command('orchestrator').description('run the orchestrator of a swarm');
  orch
    .command('serve')
    .description('serve the orchestrator API: registration, signed requests, state in SQLite')
    .option('--node <file>', 'node config (ports, state folder, storage, allow-list, validators, admins)')
    .option('--host <host>', 'address to listen on (overrides the node config)')
    .option('--port <port>', 'port to listen on; 0 picks a free one', (v) => (v === '0' ? 0 : positiveInt('--port')(v)))
    .option('--state-dir <dir>', 'folder of the database (overrides the node config)')
    .option('--run-id <name>', 'name of the run this orchestrator serves (signed into every request)', 'local')
    .option('--set <field=value>', 'override a node config field (repeatable)', collect, [])
    .option('--json', 'print events as JSON lines')
    .action(async (o: { node?: string; host?: string; port?: number; stateDir?: string; runId: string; set: string[]; json?: boolean }) => {
      const set = [...o.set];
      if (o.host) set.push(`host=${o.host}`);
      if (o.port !== undefined) set.push(`port=${o.port}`);
      if (o.stateDir) set.push(`state_dir=${o.stateDir}`);
      const node = loadNodeConfig(o.node, { env: process.env, set });
      const dbPath = resolve(join(node.state_dir, 'state.db'));
      const repo = Repository.open(dbPath);
      const r = node.rate_limits;
      const rateLimits = { ipPerSecond: r.ip_per_second, ipBurst: r.ip_burst, keyPerSecond: r.key_per_second, keyBurst: r.key_burst, exemptLoopback: r.exempt_loopback };
      let publicUrl = node.orchestrator_url ?? '';
      const storage = node.storage ?? { kind: 'local' as const, dir: join(node.state_dir, 'store') };
      const store = await openStore(storage, { baseUrl: () => publicUrl, secretFile: join(node.state_dir, 'store-secret') });
      const plugins = [...(store instanceof LocalStore ? [localStoreRoutes(store)] : []), storageRoutes(store)];
      const verifyThreads = process.env.IOTA_VERIFY_THREADS === undefined ? undefined : Number(process.env.IOTA_VERIFY_THREADS);
      const { app } = await buildOrchestrator({ run: o.runId, version: pkg.version, repo, node, rateLimits, plugins, verifyThreads });
      const url = await app.listen({ host: node.host, port: node.port });
      publicUrl ||= url;
      const pruner = setInterval(() => {
        pruneState(repo, Date.now());
        if (store instanceof LocalStore) void store.sweepUploads().catch((e) => note(`sweeping abandoned uploads failed: ${(e as Error).message}`));
      }, 60_000);
      pruner.unref();
      if (o.json) printJson({ event: 'listening', url, run: o.runId, state: dbPath, store: store.kind });
      else console.log(`orchestrator for run ${o.runId} listening on ${url} (state ${dbPath}, ${store.kind} object store)`);

      let closing = false;
      const stop = async (signal: string) => {
        if (closing) process.exit(130);
        closing = true;
        note(`${signal}: closing`);
        clearInterval(pruner);
        await app.close();
        repo.close();
        if (o.json) printJson({ event: 'closed' });
        process.exit(0);
      };
      process.on('SIGINT', () => void stop('SIGINT'));
      process.on('SIGTERM', () => void stop('SIGTERM'));
    });
}
