/** `iota orchestrator serve`: the only holder of durable state and storage credentials. */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { createRequire } from 'node:module';
import { loadNodeConfig, loadRunConfig } from '../config/index.js';
import { assembleOrchestrator } from '../orchestrator/assemble.js';
import { Repository } from '../orchestrator/state/repository.js';
import { lockStateDir } from '../orchestrator/state/lock.js';
import { openStore } from '../store/index.js';
import { collect, positiveInt } from './common.js';
import { note, printJson } from './output.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

export function registerOrchestrator(program: Command): void {
  const orch = program.command('orchestrator').description('run the orchestrator of a swarm');
  orch
    .command('serve')
    .description(
      'serve the orchestrator of a run: creates it on first start (data, epoch 0 weights), resumes it after',
    )
    .option(
      '--run <file>',
      'run config (it names the model config); without it only registration and storage are served',
    )
    .option(
      '--node <file>',
      'node config (ports, state folder, storage, allow-list, validators, admins)',
    )
    .option('--host <host>', 'address to listen on (overrides the node config)')
    .option('--port <port>', 'port to listen on; 0 picks a free one', (v) =>
      v === '0' ? 0 : positiveInt('--port')(v),
    )
    .option('--state-dir <dir>', 'folder of the database (overrides the node config)')
    .option(
      '--run-id <name>',
      'name of the run when serving without --run (signed into every request)',
      'local',
    )
    .option('--set <field=value>', 'override a node config field (repeatable)', collect, [])
    .option(
      '--validator <key-id>',
      'allow this key to validate, besides the node config’s validators (repeatable; ' +
        'the id `iota keys show FILE` prints)',
      collect,
      [],
    )
    .option('--json', 'print events as JSON lines')
    .option(
      '--run-set <field=value>',
      'override a run config field (repeatable; a created run refuses changes)',
      collect,
      [],
    )
    .action(
      async (o: {
        run?: string;
        runSet: string[];
        node?: string;
        host?: string;
        port?: number;
        stateDir?: string;
        runId: string;
        set: string[];
        validator: string[];
        json?: boolean;
      }) => {
        const set = [...o.set];
        if (o.host) set.push(`host=${o.host}`);
        if (o.port !== undefined) set.push(`port=${o.port}`);
        if (o.stateDir) set.push(`state_dir=${o.stateDir}`);
        if (o.validator.length) {
          const listed = loadNodeConfig(o.node, { env: process.env, set }).validators;
          set.push(`validators=${JSON.stringify([...new Set([...listed, ...o.validator])])}`);
        }
        const node = loadNodeConfig(o.node, { env: process.env, set });
        const dbPath = resolve(join(node.state_dir, 'state.db'));
        const unlock = lockStateDir(node.state_dir);
        process.on('exit', unlock);
        const repo = Repository.open(dbPath, {
          backgroundCheckpoints: true,
          onCheckpointError: (m) => note(`WAL checkpoint failed: ${m}`),
        });
        let publicUrl = node.orchestrator_url ?? '';
        // A local store belongs to its state folder unless the node config names another.
        const storage =
          node.storage?.kind === 's3'
            ? node.storage
            : { kind: 'local' as const, dir: node.storage?.dir ?? join(node.state_dir, 'store') };
        const store = await openStore(storage, {
          baseUrl: () => publicUrl,
          secretFile: join(node.state_dir, 'store-secret'),
        });
        const log = (s: string) => (o.json ? printJson({ event: 'log', message: s }) : note(s));
        const verifyThreads =
          process.env.IOTA_VERIFY_THREADS === undefined
            ? undefined
            : Number(process.env.IOTA_VERIFY_THREADS);
        const orch = await assembleOrchestrator({
          node,
          repo,
          store,
          version: pkg.version,
          run: o.run ? loadRunConfig(o.run, { env: process.env, set: o.runSet }) : undefined,
          runId: o.runId,
          log,
          verifyThreads,
        });
        const url = await orch.app.listen({ host: node.host, port: node.port });
        publicUrl ||= url;
        orch.startTimers((what, e) => note(`${what} failed: ${e.message}`));
        let closing = false;
        const stop = async (signal: string) => {
          if (closing) process.exit(130);
          closing = true;
          note(`${signal}: closing`);
          await orch.close();
          repo.close();
          if (o.json) printJson({ event: 'closed' });
          process.exit(0);
        };
        process.on('SIGINT', () => void stop('SIGINT'));
        process.on('SIGTERM', () => void stop('SIGTERM'));
        // Announced only once a signal would be handled: whoever reads the line may stop us at once.
        const hash = orch.swarm?.configHash;
        if (o.json)
          printJson({
            event: 'listening',
            url,
            run: orch.run,
            state: dbPath,
            store: store.kind,
            ...(hash ? { config_hash: hash, dashboard: `${url}/dashboard` } : {}),
          });
        else
          console.log(
            `orchestrator for run ${orch.run} listening on ${url} (state ${dbPath}, ${store.kind} object store)` +
              (hash ? `\ndashboard: ${url}/dashboard` : ''),
          );
      },
    );
}
