/** Who works where: the live load of each stage, and a move decided at an epoch boundary. */
import type { MemberRow, SwarmState } from '../state/swarm.js';
import type { StageLoad } from './scheduler.js';

/** Stage loads from the miners heard from within two leases, for assignment and rebalancing. */
export function stageLoads(
  state: SwarmState,
  costs: readonly number[],
  leaseMs: number,
  now: number,
): StageLoad[] {
  const loads: StageLoad[] = costs.map((cost, stage) => ({ stage, cost, miners: [] }));
  for (const m of state.members()) {
    if (m.last_seen < now - 2 * leaseMs) continue;
    loads[m.stage].miners.push({
      miner: m.miner,
      rate: m.rate ?? undefined,
      auto: m.requested === 'auto',
    });
  }
  return loads;
}

/**
 * A move decided at the epoch boundary happens once the miner's own stage is training again
 * and it holds nothing.
 */
export function applyMove(state: SwarmState, m: MemberRow): MemberRow {
  if (m.next_stage === null) return m;
  if (state.stage(m.stage).phase !== 'training' || state.holdsWork(m.miner)) return m;
  state.setMember(m.miner, m.next_stage, m.requested, null);
  return { ...m, stage: m.next_stage, next_stage: null };
}
