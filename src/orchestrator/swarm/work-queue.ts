/**
 * The head's side of the work queue: a new item when the epoch has room, and, when a miner gets
 * nothing, why (in words its log can show) and until when.
 */
import type { MemberRow, StageRow, SwarmState, TaskKind, TaskRow } from '../state/swarm.js';
import type { Idle, SwarmSettings } from './contracts.js';

/** Why a miner got no item now; `room` is how many it may hold. */
export function whyIdle(
  state: SwarmState,
  cfg: SwarmSettings,
  m: MemberRow,
  st: StageRow,
  room: number,
  now: number,
): Idle {
  const held = state.heldItems(m.miner);
  if (held >= room) {
    const less =
      room < cfg.run.in_flight
        ? `; you may hold ${room} until ${m.lapses} lapsed lease(s) or false refusal(s) are worked off`
        : '';
    return {
      reason: 'in_flight_limit',
      message:
        `you hold ${held} work items (the run allows ${cfg.run.in_flight}${less}); ` +
        `report them, and the backwards of your forwards come back to you`,
    };
  }
  const ep = state.epoch(st.epoch);
  if (m.stage === 0 && ep && ep.closed_at !== null) {
    return {
      reason: 'epoch_full',
      message: `epoch ${st.epoch} has all ${cfg.run.samples_per_epoch} samples allocated; the pipeline is draining`,
      ...(ep.drain_deadline !== null ? { next_change_at: ep.drain_deadline } : {}),
    };
  }
  const nextExpiry = {
    t: state.upstreamExpiry(m.stage === 0 ? cfg.costs.length : m.stage, st.epoch),
  };
  return {
    reason: 'waiting_for_upstream',
    message:
      m.stage === 0
        ? 'no backward is ready for the head yet; items are in flight downstream'
        : `no item has reached stage ${m.stage} yet; items are in flight upstream`,
    ...(nextExpiry.t !== null && nextExpiry.t > now ? { next_change_at: nextExpiry.t } : {}),
  };
}

/**
 * A new item of `batch` samples of the epoch, with its ledger rows and its first task, or none when
 * the epoch is full.
 */
export function allocate(
  state: SwarmState,
  cfg: SwarmSettings,
  epoch: number,
  now: number,
): TaskRow | undefined {
  const ep = state.epoch(epoch);
  const target = cfg.run.samples_per_epoch;
  if (!ep || ep.allocated >= target) return undefined;
  const n = Math.min(cfg.run.batch, target - ep.allocated);
  const first = epoch * target + ep.allocated;
  const windows = Array.from({ length: n }, (_, i) => cfg.window(first + i));
  const item = state.nextItemId();
  state.addItem(item, epoch, first, n, windows, now);
  for (let s = 0; s < cfg.costs.length; s++) state.ledger.open(item, s, epoch, n);
  const kind: TaskKind = cfg.costs.length === 1 ? 'tail' : 'fwd';
  state.addTask(item, 0, kind, epoch, first, n, null, now, { windows });
  state.allocate(epoch, n);
  if (ep.allocated + n >= target)
    state.closeAllocation(epoch, now, now + cfg.run.phases.drain_s * 1000);
  // The row just inserted, as addTask wrote it (not read back).
  return {
    item,
    stage: 0,
    kind,
    epoch,
    first_sample: first,
    n,
    state: 'ready',
    miner: null,
    prefer: null,
    lease: null,
    leased_at: null,
    expires: null,
    ready_at: now,
    input: { windows },
    output: null,
    loss: null,
    done_at: null,
    gate: null,
    due: null,
    declared: null,
  };
}
