/** Who works where: the live load of each stage, and a move decided at an epoch boundary. */
import type { MemberRow, SwarmState } from '../state/swarm.js';
import { chooseStage, type StageLoad } from './scheduler.js';

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

/**
 * The stage loads a crowd of `--layer auto` joins choose from: read from every member once and
 * kept for a second, each join adding itself, so n joins read the members O(n) times rather
 * than O(n^2) (10,000 miners took 181 s to join when each join read them all).
 */
export class JoinLoads {
  private cached?: { at: number; loads: StageLoad[] };

  constructor(
    private readonly read: (now: number) => StageLoad[],
    private readonly ttlMs = 1000,
  ) {}

  /** The stage a new auto miner joins; it counts in the loads the next joins see. */
  choose(miner: string, now: number): number {
    const c = this.cached;
    if (!c || now < c.at || now - c.at >= this.ttlMs)
      this.cached = { at: now, loads: this.read(now) };
    const stage = chooseStage(this.cached!.loads);
    this.cached!.loads.find((l) => l.stage === stage)!.miners.push({ miner, auto: true });
    return stage;
  }
}
