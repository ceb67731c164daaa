/** The run at a glance, for `iota status` and dashboards: phases, miners, queues, ledger, losses, throughput. */
import type { SwarmStatus } from '../../protocol/swarm-messages.js';
import type { Coordinator } from './coordinator.js';
import { capacities } from './scheduler.js';

export function buildStatus(c: Coordinator, now: number, ledgerFrom?: number): SwarmStatus {
  const head = c.state.stage(0);
  const ep = c.state.epoch(head.epoch);
  const caps = capacities(c.loads(now));
  const queue = c.state.queue();
  const members = c.state.members();
  const working = queue.length ? c.state.leaseHolders() : new Set<string>();
  const recent = c.state.recentEpochs(6).filter((e) => e.epoch < head.epoch);
  let mergeShare: number | undefined;
  if (recent.length > 0) {
    const span = c.state.epoch(head.epoch)!.started_at - recent[recent.length - 1].started_at;
    if (span > 0) mergeShare = recent.reduce((a, e) => a + e.merge_ms, 0) / span;
  }
  return {
    run: c.cfg.name,
    server_time: now,
    epoch: head.epoch,
    target: c.cfg.run.samples_per_epoch,
    allocation: {
      epoch: head.epoch,
      allocated: ep?.allocated ?? 0,
      ...(ep?.closed_at != null ? { closed_at: ep.closed_at } : {}),
      ...(ep?.drain_deadline != null ? { drain_deadline: ep.drain_deadline } : {}),
    },
    stages: c.state.stages().map((st) => {
      const q = (state: string) =>
        queue.filter((r) => r.stage === st.stage && r.state === state).reduce((a, r) => a + r.n, 0);
      return {
        ...c.view(st.stage),
        capacity: caps[st.stage],
        queue: { ready: q('ready'), leased: q('leased'), held: q('held') },
        miners: members
          .filter((m) => m.stage === st.stage)
          .map((m) => ({
            id: m.miner,
            state:
              m.last_seen < now - c.leaseMs ? 'silent' : working.has(m.miner) ? 'working' : 'idle',
            ...(m.rate !== null ? { rate: m.rate } : {}),
            done: m.done,
            last_seen: m.last_seen,
            ...(m.next_stage !== null ? { next_stage: m.next_stage } : {}),
          })),
      };
    }),
    ledger: c.state.ledgerCounts(ledgerFrom ?? Math.max(0, head.epoch - 3)),
    losses: c.state
      .recentLosses(20)
      .map((l) => ({ epoch: l.epoch, item: l.item, loss: l.loss, at: l.done_at })),
    throughput: c.state.tailSamplesSince(now - 60_000) / 60,
    evals: c.cfg.evals?.() ?? [],
    ...(mergeShare !== undefined ? { merge_share: mergeShare } : {}),
    lease_expiries: c.expiries,
  };
}
