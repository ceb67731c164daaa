/** Prometheus metrics of one orchestrator (its own registry, so tests can run several). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Repository } from './state/repository.js';
import type { Coordinator } from './swarm/coordinator.js';
import type { MergeTraffic } from './swarm/merge-traffic.js';

export class Metrics {
  readonly registry = new Registry();
  readonly requestSeconds: Histogram<'method' | 'route' | 'status'>;
  readonly refused: Counter<'code'>;

  constructor(repo: Repository) {
    collectDefaultMetrics({ register: this.registry, prefix: 'iota_process_' });
    this.requestSeconds = new Histogram({
      name: 'iota_http_request_duration_seconds',
      help: 'request latency by route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [this.registry],
    });
    this.refused = new Counter({
      name: 'iota_requests_refused_total',
      help: 'requests refused, by error code',
      labelNames: ['code'],
      registers: [this.registry],
    });
    new Gauge({
      name: 'iota_participants',
      help: 'registered participants by role',
      labelNames: ['role'],
      registers: [this.registry],
      collect() {
        for (const [role, n] of Object.entries(repo.roleCounts())) this.set({ role }, n);
      },
    });
    new Gauge({
      name: 'iota_wal_restarts',
      help:
        'quiet moments the WAL checkpointer was given to restart the WAL, and those ' +
        'after which it was fully copied (complete)',
      labelNames: ['outcome'],
      registers: [this.registry],
      collect() {
        const r = repo.walRestarts;
        this.set({ outcome: 'asked' }, r.asked);
        this.set({ outcome: 'complete' }, r.complete);
      },
    });
  }
}

/** The swarm's gauges, read from the state when scraped. */
export function registerSwarmMetrics(
  registry: Registry,
  coordinator: Coordinator,
  clock: () => number,
  traffic?: MergeTraffic,
): void {
  if (traffic) {
    new Gauge({
      name: 'iota_merge_miner_bytes_over_w',
      help: 'the largest per-miner merge traffic of the newest merge of each stage, relative to the stage size W',
      labelNames: ['stage', 'direction'],
      registers: [registry],
      collect() {
        this.reset();
        for (let s = 0; s < coordinator.stages; s++) {
          const t = traffic.last(s);
          if (!t) continue;
          this.set({ stage: String(s), direction: 'down' }, t.maxDownOverW);
          this.set({ stage: String(s), direction: 'up' }, t.maxUpOverW);
        }
      },
    });
  }
  new Gauge({
    name: 'iota_miners',
    help: 'miners per stage and state (working, idle, silent)',
    labelNames: ['stage', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const st of coordinator.status(clock()).stages) {
        for (const state of ['working', 'idle', 'silent'])
          this.set(
            { stage: String(st.stage), state },
            st.miners.filter((m) => m.state === state).length,
          );
      }
    },
  });
  new Gauge({
    name: 'iota_queue_items',
    help: 'work items per stage, kind and state (ready, leased, held)',
    labelNames: ['stage', 'kind', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const q of coordinator.state.queue())
        this.set({ stage: String(q.stage), kind: q.kind, state: q.state }, q.n);
    },
  });
  new Gauge({
    name: 'iota_stage_phase',
    help: '1 for the phase each stage is in, with its epoch',
    labelNames: ['stage', 'phase'],
    registers: [registry],
    collect() {
      this.reset();
      for (const st of coordinator.state.stages())
        for (const phase of ['training', 'uploading', 'merging'])
          this.set({ stage: String(st.stage), phase }, st.phase === phase ? 1 : 0);
    },
  });
  new Gauge({
    name: 'iota_stage_epoch',
    help: 'the epoch each stage is in',
    labelNames: ['stage'],
    registers: [registry],
    collect() {
      for (const st of coordinator.state.stages()) this.set({ stage: String(st.stage) }, st.epoch);
    },
  });
  new Gauge({
    name: 'iota_ledger_samples',
    help: 'samples per ledger state in the current and previous epoch, all stages',
    labelNames: ['epoch', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      const e = coordinator.state.stage(0).epoch;
      const sums = new Map<string, number>();
      for (const r of coordinator.state.ledger.counts(Math.max(0, e - 1))) {
        const k = `${r.epoch}\u0000${r.state}`;
        sums.set(k, (sums.get(k) ?? 0) + r.samples);
      }
      for (const [k, n] of sums) {
        const [epoch, state] = k.split('\u0000');
        this.set({ epoch, state }, n);
      }
    },
  });
  new Counter({
    name: 'iota_lease_expiries_total',
    help: 'leases that expired because their miner went silent',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(coordinator.expiries);
    },
  });
}
