/**
 * A coordinator on an in-memory database with a fake clock and fake data windows, and
 * simulated miners that drive it directly (no server, no model): the scheduler and phase
 * tests' harness.
 */
import { createHash } from 'node:crypto';
import { loadModelConfig, validateConfig, type RunConfig } from '../../src/config/index.js';
import { assembleSwarm } from '../../src/orchestrator/assemble.js';
import { HttpError } from '../../src/orchestrator/errors.js';
import { Repository } from '../../src/orchestrator/state/repository.js';
import type { ManifestRef, SwarmState, WindowRef } from '../../src/orchestrator/state/swarm.js';
import type {
  MergeHooks,
  MergeOutcome,
  MergeParticipant,
  WorkItem,
} from '../../src/orchestrator/swarm/contracts.js';
import type { Coordinator } from '../../src/orchestrator/swarm/coordinator.js';
import type { ValidationCoordinator } from '../../src/orchestrator/swarm/validation.js';
import { keys } from '../../src/store/keys.js';
import { gradientSize } from '../../src/merge/gradient.js';

export const RUN = 'test-run';

export function runConfig(
  over: Record<string, unknown> = {},
  phases: Record<string, number> = {},
): RunConfig {
  return validateConfig(
    'run',
    {
      name: RUN,
      model: 'tiny.yaml',
      seed: 1,
      samples_per_epoch: 8,
      batch: 1,
      in_flight: 2,
      optimizer: { lr: 0.001 },
      schedule: { total_epochs: 10 },
      phases: { drain_s: 20, upload_s: 10, merge_s: 10, lease_s: 5, ...phases },
      ...over,
    },
    'test',
  );
}

export function sha(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

export function fakeWindow(id: number): WindowRef {
  return {
    key: keys.data({ run: RUN, shard: 's0' }),
    start: 64 + id * 65,
    end: 64 + (id + 1) * 65,
    sha256: sha(`window ${id}`),
  };
}

export function fakeManifest(stage: number, epoch: number, step = epoch): ManifestRef {
  return {
    key: keys.manifest({ run: RUN, epoch, stage }),
    size: 100,
    sha256: sha(`manifest ${stage} ${epoch}`),
    epoch,
    step,
  };
}

/** A merge that publishes the next epoch's manifest as soon as it begins, recording what it got. */
export class InstantMerge implements MergeHooks {
  readonly began: Array<{ stage: number; epoch: number; participants: MergeParticipant[] }> = [];
  begin(stage: number, epoch: number, participants: MergeParticipant[]): void {
    this.began.push({ stage, epoch, participants });
  }
  outcome(stage: number, epoch: number): MergeOutcome | undefined {
    if (!this.began.some((b) => b.stage === stage && b.epoch === epoch)) return undefined;
    return { manifest: fakeManifest(stage, epoch + 1, epoch + 1), excluded: {} };
  }
}

export interface TestSwarm {
  coord: Coordinator;
  state: SwarmState;
  repo: Repository;
  clock: { now: number };
  /** advance the fake clock and tick */
  advance(ms: number): void;
  /** run fn in a transaction, then let the phases move on, as the server's group commit does */
  tx<T>(fn: () => T): T;
  dump(): string;
  /** present when made with `validate` */
  validation?: ValidationCoordinator;
  /** the merge hooks plugged in, if any */
  merge?: MergeHooks;
}

/** `validate`: a ValidationCoordinator plugged in, drawing its random checks from `random`. */
export function makeSwarm(
  o: {
    costs?: number[];
    run?: RunConfig;
    merge?: MergeHooks | 'instant';
    validate?: { random: () => number };
  } = {},
): TestSwarm {
  const repo = Repository.open(':memory:');
  const clock = { now: 1_000_000 };
  const costs = o.costs ?? [1, 1, 1];
  const run = o.run ?? runConfig();
  const model = loadModelConfig('configs/tiny.yaml');
  const merge = o.merge === 'instant' ? new InstantMerge() : o.merge;
  const {
    state,
    coordinator: coord,
    validation,
  } = assembleSwarm({
    repo,
    settings: {
      name: RUN,
      run,
      model,
      costs,
      params: costs.map(() => 1000),
      window: fakeWindow,
    },
    merge: merge ?? 'none',
    validation: o.validate ?? false,
  });
  const tx = <T>(fn: () => T) =>
    repo.transaction(() => {
      const r = fn();
      coord.advance(clock.now);
      return r;
    });
  tx(() =>
    coord.createRun(
      'hash',
      costs.map((_, s) => fakeManifest(s, 0)),
      clock.now,
    ),
  );
  return {
    coord,
    state,
    repo,
    clock,
    tx,
    advance(ms: number) {
      clock.now += ms;
      tx(() => coord.tick(clock.now));
    },
    dump: () => repo.dump(),
    validation,
    merge,
  };
}

/** The output a miner "uploaded" for an item, as the store's head would report it. */
export function outputOf(it: WorkItem): { size: number; sha256: string } | undefined {
  return it.output_key ? { size: 1000 + it.item, sha256: sha(it.output_key) } : undefined;
}

/** A simulated miner that does every item it gets at once. */
export class CoordMiner {
  readonly held: WorkItem[] = [];
  credited = 0;
  constructor(
    readonly swarm: TestSwarm,
    readonly id: string,
  ) {}

  join(layer: 'auto' | number = 'auto') {
    return this.swarm.tx(() => this.swarm.coord.join(this.id, layer, this.swarm.clock.now));
  }

  work(max = 4) {
    const r = this.swarm.tx(() => this.swarm.coord.work(this.id, max, this.swarm.clock.now));
    this.held.push(...r.items);
    return r;
  }

  report(it: WorkItem) {
    const out = outputOf(it);
    const losses = it.kind === 'tail' ? it.samples.map((s) => 5 - s / 1000) : undefined;
    const r = this.swarm.tx(() =>
      this.swarm.coord.report(
        this.id,
        { lease: it.lease, output: out, losses },
        out,
        this.swarm.clock.now,
      ),
    );
    this.credited += r.credited;
    this.held.splice(this.held.indexOf(it), 1);
    return r;
  }

  /** Takes work and reports all of it; returns how many items it did. */
  round(max = 4): number {
    this.work(max);
    const items = [...this.held];
    for (const it of items) this.report(it);
    return items.length;
  }

  heartbeat() {
    return this.swarm.tx(() => this.swarm.coord.heartbeat(this.id, this.swarm.clock.now));
  }

  uploadGradient(epoch: number, stage: number) {
    const d = {
      size: gradientSize(1000),
      sha256: sha(`grad ${this.id} ${epoch} ${stage}`),
      partitions: [sha(`part ${this.id} ${epoch} ${stage}`)],
    };
    return this.swarm.tx(() =>
      this.swarm.coord.uploads.accept(this.id, epoch, stage, d, d, this.swarm.clock.now),
    );
  }
}

/** Sum of ledger samples by state for one epoch (all stages). */
export function ledgerTotals(s: TestSwarm, epoch: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of s.state.ledger.counts(epoch))
    if (r.epoch === epoch) out[r.state] = (out[r.state] ?? 0) + r.samples;
  return out;
}

/** The refusal a call must end in (a test fails when the call succeeds). */
export function refused(fn: () => unknown): HttpError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(HttpError);
    return e as HttpError;
  }
  throw new Error('expected a refusal');
}

/** `n` miners, joined round-robin to the stages (one per stage by default). */
export function crew(s: TestSwarm, n = s.coord.stages, prefix = 'm'): CoordMiner[] {
  return Array.from({ length: n }, (_, i) => {
    const m = new CoordMiner(s, `${prefix}${i}`);
    m.join(i % s.coord.stages);
    return m;
  });
}
