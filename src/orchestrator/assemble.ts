/**
 * The one place the orchestrator is put together: from configs and a database to a running
 * server. Dependencies go to constructors in an order with no circles:
 *
 *   state (SwarmState, MergeState, ValidationState)
 *     -> ValidationCoordinator (reads the merge's state for its spot checks)
 *     -> MergeCoordinator (reports to validation what it merged and who lost a dispute)
 *     -> Coordinator (drives both through their hooks)
 *     -> GroupCommitter (after every group of changes, the coordinator moves the phases on)
 *     -> MergeReferee (the orchestrator's own merger, committing through the group commit),
 *        MergeDesk (what mergers call)
 *     -> the server with its routes, and the timers.
 *
 * `assembleSwarm` builds the swarm's part alone (the coordinator tests drive it without a
 * server); `assembleOrchestrator` builds all of it. The CLI, the test support and the benches
 * use these and nothing else.
 */
import type { FastifyInstance } from 'fastify';
import type { ModelConfig } from '../config/model.js';
import { stageSpecs } from '../config/model.js';
import type { NodeConfig } from '../config/node.js';
import type { RunConfig } from '../config/run.js';
import { stageLayout } from '../model/params.js';
import { LocalStore, localStoreRoutes, type ObjectStore } from '../store/index.js';
import { GroupCommitter } from './commit.js';
import type { RateLimits, ServerContext } from './context.js';
import { storageRoutes } from './routes/storage.js';
import { swarmRoutes, type SwarmServices } from './routes/swarm.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { buildOrchestrator, pruneState } from './server.js';
import { MergeState } from './state/merge.js';
import type { Repository } from './state/repository.js';
import { SwarmState } from './state/swarm.js';
import { ValidationState } from './state/validation.js';
import type { MergeHooks, SwarmSettings } from './swarm/contracts.js';
import { Coordinator } from './swarm/coordinator.js';
import { Retention } from './swarm/retention.js';
import { MergeCoordinator } from './swarm/merge.js';
import { MergeDesk } from './swarm/merge-desk.js';
import { MergeReferee } from './swarm/merge-referee.js';
import { openRun } from './swarm/run.js';
import { ValidationCoordinator } from './swarm/validation.js';

/** The swarm's part of the orchestrator, on one database. */
export interface Swarm {
  state: SwarmState;
  coordinator: Coordinator;
  /** the sharded merge, when it is the swarm's merge */
  merge?: MergeCoordinator;
  validation?: ValidationCoordinator;
}

export interface SwarmOptions {
  repo: Repository;
  /** the swarm's state on `repo`, when the caller already opened it (one per database) */
  state?: SwarmState;
  settings: SwarmSettings;
  /** 'sharded' (the default) is DESIGN.md's merge; tests may plug in other hooks, or none */
  merge?: 'sharded' | MergeHooks | 'none';
  /** the store the sharded merge reads manifests from */
  store?: ObjectStore;
  /** validation on (the default), with the random draws of its checks */
  validation?: boolean | { random: () => number };
  log?: (s: string) => void;
}

/** Builds the swarm's object graph on a database (no server, no timers). */
export function assembleSwarm(o: SwarmOptions): Swarm {
  const { repo, settings } = o;
  const state = o.state ?? new SwarmState(repo.db);
  const sharded = (o.merge ?? 'sharded') === 'sharded';
  if (sharded && !o.store) throw new Error('assembleSwarm: the sharded merge needs a store');
  const mergeState = sharded ? new MergeState(repo.db) : undefined;
  const validation =
    o.validation === false
      ? undefined
      : new ValidationCoordinator(
          new ValidationState(repo.db),
          state,
          mergeState,
          settings,
          typeof o.validation === 'object' ? o.validation.random : Math.random,
        );
  const merge = mergeState
    ? new MergeCoordinator(
        mergeState,
        state,
        {
          name: settings.name,
          run: settings.run,
          model: settings.model,
          layouts: stageSpecs(settings.model).map((s) => stageLayout(settings.model, s).params),
          params: settings.params,
        },
        o.store!,
        validation,
        o.log,
      )
    : undefined;
  const hooks = merge ?? (typeof o.merge === 'object' ? o.merge : undefined);
  const coordinator = new Coordinator(state, settings, { merge: hooks, validation });
  if (merge) repo.transaction(() => merge.fillSteps());
  return { state, coordinator, merge, validation };
}

export interface OrchestratorAssembly {
  node: NodeConfig;
  repo: Repository;
  store: ObjectStore;
  version: string;
  /** the run to serve; without it, registration and storage only, under `runId` */
  run?: { run: RunConfig; model: ModelConfig };
  runId?: string;
  clock?: () => number;
  log?: (s: string) => void;
  rateLimits?: Partial<RateLimits>;
  verifyThreads?: number;
  merge?: SwarmOptions['merge'];
  validation?: SwarmOptions['validation'];
}

/** A running orchestrator's parts, and what to do with them. */
export interface Orchestrator {
  app: FastifyInstance;
  ctx: ServerContext;
  repo: Repository;
  store: ObjectStore;
  /** the run's name, signed into every request */
  run: string;
  swarm?: Swarm & { configHash: string; referee?: MergeReferee };
  /** Time passes: one tick through the group commit, then the orchestrator's merge work. */
  tick(now?: number): Promise<void>;
  /**
   * Ticks on a timer (a few times per lease), deletes old epochs' activations (retention.ts),
   * and prunes old state every minute.
   */
  startTimers(onError: (what: string, e: Error) => void): void;
  close(): Promise<void>;
}

/** How often old epochs' activations and gradients are looked for (swarm/retention.ts). */
const RETENTION_EVERY_MS = 5000;

export async function assembleOrchestrator(o: OrchestratorAssembly): Promise<Orchestrator> {
  const clock = o.clock ?? Date.now;
  const log = o.log ?? (() => {});
  const { repo, store } = o;
  let swarm: Orchestrator['swarm'];
  if (o.run) {
    const { run, model } = o.run;
    const state = new SwarmState(repo.db);
    const opened = await openRun({ run, model, state, store, log });
    const parts = assembleSwarm({
      repo,
      state,
      settings: opened.settings,
      merge: o.merge,
      store,
      validation: o.validation,
      log,
    });
    const manifests = opened.manifests;
    if (manifests)
      repo.transaction(() => parts.coordinator.createRun(opened.configHash, manifests, clock()));
    else repo.transaction(() => parts.coordinator.resume(clock()));
    swarm = { ...parts, configHash: opened.configHash };
  }
  const committer = new GroupCommitter(repo, {
    after: swarm ? () => swarm.coordinator.advance(clock()) : undefined,
    committed: swarm ? () => swarm.coordinator.waits.changed() : undefined,
    onError: (e) => log(`moving the phases on failed: ${(e as Error).message}`),
  });
  const referee =
    swarm?.merge && new MergeReferee(swarm.merge, swarm.state, (fn) => committer.run(fn), clock);
  if (swarm && referee) swarm.referee = referee;
  const services: SwarmServices | undefined = swarm && {
    coordinator: swarm.coordinator,
    configHash: swarm.configHash,
    merge:
      swarm.merge && referee
        ? {
            coordinator: swarm.merge,
            desk: new MergeDesk(swarm.merge, swarm.state, swarm.validation),
            referee,
          }
        : undefined,
    validation: swarm.validation,
  };
  const plugins = [
    ...(store instanceof LocalStore ? [localStoreRoutes(store)] : []),
    storageRoutes(store),
    ...(services ? [swarmRoutes(services, store)] : []),
    ...(swarm && o.run
      ? [
          dashboardRoutes(swarm.state.db, {
            run: o.run.run,
            model: o.run.model,
            params: swarm.coordinator.cfg.params,
          }),
        ]
      : []),
  ];
  const { app, ctx } = await buildOrchestrator({
    run: o.run?.run.name ?? o.runId ?? 'local',
    version: o.version,
    repo,
    node: o.node,
    clock,
    rateLimits: o.rateLimits ?? nodeRateLimits(o.node),
    verifyThreads: o.verifyThreads,
    configHash: swarm?.configHash,
    committer,
    plugins,
  });

  const timers: NodeJS.Timeout[] = [];
  const tick = async (now = clock()) => {
    if (!swarm) return;
    await committer.run(() => swarm.coordinator.tick(now));
    await referee?.pump();
  };
  return {
    app,
    ctx,
    repo,
    store,
    run: ctx.run,
    swarm,
    tick,
    startTimers(onError) {
      if (swarm) {
        const leaseMs = swarm.coordinator.leaseMs;
        let ticking = false;
        const ticker = setInterval(
          () => {
            if (ticking) return;
            ticking = true;
            tick()
              .catch((e: Error) => onError('tick', e))
              .finally(() => (ticking = false));
          },
          Math.max(50, Math.min(1000, leaseMs / 4)),
        );
        timers.push(ticker);
      }
      if (swarm && o.run) {
        const retention = new Retention(
          repo.db,
          store,
          o.run.run.name,
          { ...o.run.run, window_epochs: o.run.run.validation.window_epochs },
          (fn) => committer.run(fn),
        );
        const retainer = setInterval(() => {
          retention
            .prune()
            .then((p) => {
              if (p.epochs.length)
                log(
                  `retention: deleted what epochs ${p.epochs.join(', ')} left in the store ` +
                    `(${p.objects} objects)`,
                );
            })
            .catch((e: Error) => onError('deleting old epochs', e));
        }, RETENTION_EVERY_MS);
        retainer.unref();
        timers.push(retainer);
      }
      const pruner = setInterval(() => {
        pruneState(repo, clock());
        if (store instanceof LocalStore)
          store.sweepUploads().catch((e: Error) => onError('sweeping abandoned uploads', e));
      }, 60_000);
      pruner.unref();
      timers.push(pruner);
    },
    async close() {
      for (const t of timers) clearInterval(t);
      swarm?.coordinator.waits.close();
      await app.close();
    },
  };
}

/** The node config's rate limits, in the server's terms. */
function nodeRateLimits(node: NodeConfig): Partial<RateLimits> {
  const r = node.rate_limits;
  return {
    ipPerSecond: r.ip_per_second,
    ipBurst: r.ip_burst,
    keyPerSecond: r.key_per_second,
    keyBurst: r.key_burst,
    newKeysPerMinute: r.new_keys_per_minute,
    newKeysBurst: r.new_keys_burst,
    exemptLoopback: r.exempt_loopback,
  };
}
