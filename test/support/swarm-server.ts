/**
 * An orchestrator serving a real run in this process: a small text corpus tokenized with the
 * byte tokenizer, the tiny model's epoch 0 manifests in a local store, the swarm's routes, and
 * a clock the test controls (ticks are explicit).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRunConfig } from '../../src/config/index.js';
import { storageRoutes } from '../../src/orchestrator/routes/storage.js';
import { swarmRoutes } from '../../src/orchestrator/routes/swarm.js';
import { SwarmState } from '../../src/orchestrator/state/swarm.js';
import type { MergeHooks } from '../../src/orchestrator/swarm/contracts.js';
import { Coordinator } from '../../src/orchestrator/swarm/coordinator.js';
import { openRun } from '../../src/orchestrator/swarm/run.js';
import { MergeCoordinator } from '../../src/orchestrator/swarm/merge.js';
import { MergeState } from '../../src/orchestrator/state/merge.js';
import { stageSpecs } from '../../src/config/model.js';
import { stageLayout } from '../../src/model/params.js';
import { Repository } from '../../src/orchestrator/state/repository.js';
import { LocalStore, localStoreRoutes } from '../../src/store/index.js';
import { startTestOrchestrator, type TestOrchestrator } from './orchestrator.js';

import { writeRun } from './run-files.js';

export { writeCorpus, writeRun } from './run-files.js';

export interface SwarmServer extends TestOrchestrator {
  coord: Coordinator;
  merge?: MergeCoordinator;
  store: LocalStore;
  configHash: string;
  clock: { now: number };
  /** advance the clock and run one tick through the group commit */
  advance(ms: number): Promise<void>;
}

export async function startSwarmServer(
  o: {
    runOver?: Record<string, unknown>;
    merge?: MergeHooks | 'real';
    dir?: string;
    stages?: string;
  } = {},
): Promise<SwarmServer> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'iota-swarm-'));
  const file = writeRun(dir, o.runOver, o.stages);
  const { run, model } = loadRunConfig(file);
  const repo = Repository.open(join(dir, 'state.db'));
  const state = new SwarmState(repo.db);
  let base = '';
  const store = await LocalStore.open({ root: join(dir, 'store'), baseUrl: () => base });
  const opened = await openRun({ run, model, state, store, log: () => {} });
  const clock = { now: Date.now() };
  let commit: (<T>(fn: () => T) => Promise<T>) | undefined;
  const merge =
    o.merge === 'real'
      ? new MergeCoordinator(
          new MergeState(repo.db),
          {
            name: run.name,
            run,
            model,
            layouts: stageSpecs(model).map((s) => stageLayout(model, s).params),
            params: opened.settings.params,
          },
          store,
          (fn) => commit!(fn),
          () => clock.now,
        )
      : o.merge;
  const coord = new Coordinator(state, { ...opened.settings, merge });
  if (merge instanceof MergeCoordinator) merge.coordinator = coord;
  if (opened.manifests) {
    const manifests = opened.manifests;
    repo.transaction(() => coord.createRun(opened.configHash, manifests, clock.now));
  }
  const t = await startTestOrchestrator({
    dir,
    repo,
    run: run.name,
    clock: () => clock.now,
    configHash: opened.configHash,
    rateLimits: { keyPerSecond: 10_000, keyBurst: 10_000, exemptLoopback: true },
    plugins: [
      localStoreRoutes(store),
      storageRoutes(store),
      swarmRoutes(
        coord,
        store,
        opened.configHash,
        merge instanceof MergeCoordinator ? merge : undefined,
      ),
    ],
  });
  commit = t.ctx.commit;
  base = t.url;
  return {
    ...t,
    coord,
    merge: merge instanceof MergeCoordinator ? merge : undefined,
    store,
    configHash: opened.configHash,
    clock,
    async advance(ms: number) {
      clock.now += ms;
      await t.ctx.commit(() => coord.tick(clock.now));
      if (merge instanceof MergeCoordinator) await merge.pump();
    },
  };
}
