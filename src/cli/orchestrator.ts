/** `iota orchestrator serve`: the only holder of durable state and storage credentials. */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { createRequire } from 'node:module';
import { loadNodeConfig, loadRunConfig } from '../config/index.js';
import { Coordinator } from '../orchestrator/swarm/coordinator.js';
import { openRun } from '../orchestrator/swarm/run.js';
import { SwarmState } from '../orchestrator/state/swarm.js';
import { swarmRoutes } from '../orchestrator/routes/swarm.js';
import { MergeCoordinator } from '../orchestrator/swarm/merge.js';
import { MergeState } from '../orchestrator/state/merge.js';
import { ValidationCoordinator } from '../orchestrator/swarm/validation.js';
import { ValidationState } from '../orchestrator/state/validation.js';
import { stageSpecs } from '../config/model.js';
import { stageLayout } from '../model/params.js';
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
        json?: boolean;
      }) => {
        const set = [...o.set];
        if (o.host) set.push(`host=${o.host}`);
        if (o.port !== undefined) set.push(`port=${o.port}`);
        if (o.stateDir) set.push(`state_dir=${o.stateDir}`);
        const node = loadNodeConfig(o.node, { env: process.env, set });
        const dbPath = resolve(join(node.state_dir, 'state.db'));
        const repo = Repository.open(dbPath, {
          backgroundCheckpoints: true,
          onCheckpointError: (m) => note(`WAL checkpoint failed: ${m}`),
        });
        const r = node.rate_limits;
        const rateLimits = {
          ipPerSecond: r.ip_per_second,
          ipBurst: r.ip_burst,
          keyPerSecond: r.key_per_second,
          keyBurst: r.key_burst,
          exemptLoopback: r.exempt_loopback,
        };
        let publicUrl = node.orchestrator_url ?? '';
        const storage = node.storage ?? {
          kind: 'local' as const,
          dir: join(node.state_dir, 'store'),
        };
        const store = await openStore(storage, {
          baseUrl: () => publicUrl,
          secretFile: join(node.state_dir, 'store-secret'),
        });
        const plugins = [
          ...(store instanceof LocalStore ? [localStoreRoutes(store)] : []),
          storageRoutes(store),
        ];
        const log = (s: string) => (o.json ? printJson({ event: 'log', message: s }) : note(s));
        let coordinator: Coordinator | undefined;
        let merge: MergeCoordinator | undefined;
        let validationCoordinator: ValidationCoordinator | undefined;
        let commit: (<T>(fn: () => T) => Promise<T>) | undefined;
        let configHash: string | undefined;
        let runName = o.runId;
        if (o.run) {
          const loaded = loadRunConfig(o.run, { env: process.env, set: o.runSet });
          const state = new SwarmState(repo.db);
          const opened = await openRun({ run: loaded.run, model: loaded.model, state, store, log });
          const layouts = stageSpecs(loaded.model).map((s) => stageLayout(loaded.model, s).params);
          merge = new MergeCoordinator(
            new MergeState(repo.db),
            {
              name: loaded.run.name,
              run: loaded.run,
              model: loaded.model,
              layouts,
              params: opened.settings.params,
            },
            store,
            (fn) => commit!(fn),
            Date.now,
            log,
          );
          const validation = new ValidationCoordinator(new ValidationState(repo.db), state, {
            run: loaded.run,
            model: loaded.model,
            params: opened.settings.params,
          });
          validation.heldOut = opened.settings.heldOut;
          coordinator = new Coordinator(state, {
            ...opened.settings,
            merge,
            validation,
            evals: () => validation.evals(),
          });
          merge.coordinator = coordinator;
          validation.coordinator = coordinator;
          validation.merges = merge;
          merge.audit = validation;
          validationCoordinator = validation;
          if (opened.manifests) {
            const manifests = opened.manifests;
            repo.transaction(() =>
              coordinator!.createRun(opened.configHash, manifests, Date.now()),
            );
          }
          configHash = opened.configHash;
          runName = loaded.run.name;
          plugins.push(swarmRoutes(coordinator, store, configHash, merge, validationCoordinator));
        }
        const verifyThreads =
          process.env.IOTA_VERIFY_THREADS === undefined
            ? undefined
            : Number(process.env.IOTA_VERIFY_THREADS);
        const { app, ctx } = await buildOrchestrator({
          run: runName,
          version: pkg.version,
          repo,
          node,
          rateLimits,
          plugins,
          verifyThreads,
          configHash,
        });
        commit = ctx.commit;
        const url = await app.listen({ host: node.host, port: node.port });
        publicUrl ||= url;
        let ticker: NodeJS.Timeout | undefined;
        if (coordinator) {
          const c = coordinator;
          const tickMs = Math.max(50, Math.min(1000, (c.cfg.run.phases.lease_s * 1000) / 4));
          let ticking = false;
          ticker = setInterval(() => {
            if (ticking) return;
            ticking = true;
            ctx
              .commit(() => c.tick(Date.now()))
              .then(() => merge?.pump())
              .catch((e) => note(`tick failed: ${(e as Error).message}`))
              .finally(() => (ticking = false));
          }, tickMs);
        }
        const pruner = setInterval(() => {
          pruneState(repo, Date.now());
          if (store instanceof LocalStore)
            void store
              .sweepUploads()
              .catch((e) => note(`sweeping abandoned uploads failed: ${(e as Error).message}`));
        }, 60_000);
        pruner.unref();
        let closing = false;
        const stop = async (signal: string) => {
          if (closing) process.exit(130);
          closing = true;
          note(`${signal}: closing`);
          clearInterval(pruner);
          if (ticker) clearInterval(ticker);
          await app.close();
          repo.close();
          if (o.json) printJson({ event: 'closed' });
          process.exit(0);
        };
        process.on('SIGINT', () => void stop('SIGINT'));
        process.on('SIGTERM', () => void stop('SIGTERM'));
        // Announced only once a signal would be handled: whoever reads the line may stop us at once.
        if (o.json)
          printJson({
            event: 'listening',
            url,
            run: runName,
            state: dbPath,
            store: store.kind,
            ...(configHash ? { config_hash: configHash } : {}),
          });
        else
          console.log(
            `orchestrator for run ${runName} listening on ${url} (state ${dbPath}, ${store.kind} object store)`,
          );
      },
    );
}
