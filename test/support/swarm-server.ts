/**
 * An orchestrator serving a real run in this process: a small text corpus tokenized with the
 * byte tokenizer, the tiny model's epoch 0 manifests in a local store, the swarm's routes, and
 * a clock the test controls (ticks are explicit). Built by assemble.ts, as the CLI builds it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRunConfig } from '../../src/config/index.js';
import { validateConfig } from '../../src/config/load.js';
import { assembleOrchestrator } from '../../src/orchestrator/assemble.js';
import type { MergeHooks } from '../../src/orchestrator/swarm/contracts.js';
import type { Coordinator } from '../../src/orchestrator/swarm/coordinator.js';
import type { MergeCoordinator } from '../../src/orchestrator/swarm/merge.js';
import { Repository } from '../../src/orchestrator/state/repository.js';
import { LocalStore } from '../../src/store/index.js';
import type { TestOrchestrator } from './orchestrator.js';

import { writeRun } from './run-files.js';

export { writeCorpus, writeRun } from './run-files.js';

export interface SwarmServer extends TestOrchestrator {
  coord: Coordinator;
  merge?: MergeCoordinator;
  store: LocalStore;
  configHash: string;
  clock: { now: number };
  /** advance the clock and run one tick through the group commit, then the orchestrator's merge work */
  advance(ms: number): Promise<void>;
  /** the orchestrator's merge work (ties, claims, publishing) without a tick */
  pump(): Promise<void>;
}

export async function startSwarmServer(
  o: {
    runOver?: Record<string, unknown>;
    merge?: MergeHooks | 'real';
    dir?: string;
    stages?: string;
    /** keys the node config lets in as validators (validation on) and as admins */
    validators?: string[];
    admins?: string[];
  } = {},
): Promise<SwarmServer> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'iota-swarm-'));
  const file = writeRun(dir, o.runOver, o.stages);
  const repo = Repository.open(join(dir, 'state.db'));
  let base = '';
  const store = await LocalStore.open({ root: join(dir, 'store'), baseUrl: () => base });
  const clock = { now: Date.now() };
  const orch = await assembleOrchestrator({
    node: validateConfig(
      'node',
      { validators: o.validators ?? [], admins: o.admins ?? [] },
      'test',
    ),
    repo,
    store,
    version: 'test',
    run: loadRunConfig(file),
    clock: () => clock.now,
    rateLimits: { keyPerSecond: 10_000, keyBurst: 10_000, exemptLoopback: true },
    merge: o.merge === 'real' ? 'sharded' : (o.merge ?? 'none'),
    validation: (o.validators ?? []).length > 0,
  });
  const swarm = orch.swarm!;
  const url = await orch.app.listen({ host: '127.0.0.1', port: 0 });
  base = url;
  return {
    url,
    app: orch.app,
    ctx: orch.ctx,
    repo,
    dir,
    async close() {
      await orch.close();
      repo.close();
    },
    coord: swarm.coordinator,
    merge: swarm.merge,
    store,
    configHash: swarm.configHash,
    clock,
    async advance(ms: number) {
      clock.now += ms;
      await orch.tick(clock.now);
    },
    pump: async () => swarm.referee?.pump(),
  };
}
