/** Prometheus metrics of one orchestrator (its own registry, so tests can run several). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Repository } from './state/repository.js';

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
    this.refused = new Counter({ name: 'iota_requests_refused_total', help: 'requests refused, by error code', labelNames: ['code'], registers: [this.registry] });
    new Gauge({
      name: 'iota_participants',
      help: 'registered participants by role',
      labelNames: ['role'],
      registers: [this.registry],
      collect() {
        for (const [role, n] of Object.entries(repo.roleCounts())) this.set({ role }, n);
      },
    });
  }
}
