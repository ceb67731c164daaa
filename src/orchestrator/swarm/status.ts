/** The run at a glance, for `iota status` and dashboards: phases, miners, queues, ledger, losses, throughput. */
import type { SwarmStatus } from '../../protocol/swarm-messages.js';
import type { StageRow, SwarmState } from '../state/swarm.js';
import type { StageView } from './contracts.js';
import { capacities, type StageLoad } from './scheduler.js';

/** What the status is read from besides the state. */
export interface StatusInputs {
  name: string;
  target: number;
  leaseMs: number;
  loads: StageLoad[];
  expiries: number;
  evals: Array<{ epoch: number; loss: number; windows: number; at: number }>;
}

/** A stage as replies show it. */
export function stageView(st: StageRow): StageView {
  return {
    stage: st.stage,
    epoch: st.epoch,
    phase: st.phase,
    since: st.since,
    ...(st.deadline !== null ? { deadline: st.deadline } : {}),
    manifest: st.manifest,
    ...(st.note ? { note: st.note } : {}),
  };
}

export function buildStatus(
  state: SwarmState,
  o: StatusInputs,
  now: number,
  ledgerFrom?: number,
): SwarmStatus {
  const head = state.stage(0);
  const ep = state.epoch(head.epoch);
  const caps = capacities(o.loads);
  const queue = state.queue();
  const members = state.members();
  const working = queue.length ? state.leaseHolders() : new Set<string>();
  const recent = state.recentEpochs(6).filter((e) => e.epoch < head.epoch);
  let mergeShare: number | undefined;
  if (recent.length > 0) {
    const span = state.epoch(head.epoch)!.started_at - recent[recent.length - 1].started_at;
    if (span > 0) mergeShare = recent.reduce((a, e) => a + e.merge_ms, 0) / span;
  }
  return {
    run: o.name,
    server_time: now,
    epoch: head.epoch,
    target: o.target,
    allocation: {
      epoch: head.epoch,
      allocated: ep?.allocated ?? 0,
      ...(ep?.closed_at != null ? { closed_at: ep.closed_at } : {}),
      ...(ep?.drain_deadline != null ? { drain_deadline: ep.drain_deadline } : {}),
    },
    stages: state.stages().map((st) => {
      const q = (kind: string) =>
        queue.filter((r) => r.stage === st.stage && r.state === kind).reduce((a, r) => a + r.n, 0);
      return {
        ...stageView(st),
        capacity: caps[st.stage],
        queue: { ready: q('ready'), leased: q('leased'), held: q('held') },
        miners: members
          .filter((m) => m.stage === st.stage)
          .map((m) => ({
            id: m.miner,
            state:
              m.last_seen < now - o.leaseMs ? 'silent' : working.has(m.miner) ? 'working' : 'idle',
            ...(m.rate !== null ? { rate: m.rate } : {}),
            done: m.done,
            last_seen: m.last_seen,
            ...(m.next_stage !== null ? { next_stage: m.next_stage } : {}),
          })),
      };
    }),
    ledger: state.ledger.counts(ledgerFrom ?? Math.max(0, head.epoch - 3)),
    losses: state
      .recentLosses(20)
      .map((l) => ({ epoch: l.epoch, item: l.item, loss: l.loss, at: l.done_at })),
    throughput: state.tailSamplesSince(now - 60_000) / 60,
    evals: o.evals,
    ...(mergeShare !== undefined ? { merge_share: mergeShare } : {}),
    lease_expiries: o.expiries,
  };
}
