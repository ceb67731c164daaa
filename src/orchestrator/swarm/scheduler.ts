/**
 * The scheduler's decisions as pure functions of plain data: which stage a miner joins, which
 * miners move at an epoch boundary (how much of a phase must be done is phases.ts's).
 * The coordinator reads the state, calls these, and writes what they decide.
 */

/** Work units of a task kind: a forward is 1, a backward (with its recompute) 2, a tail step 3. */
export const UNITS = { fwd: 1, bwd: 2, tail: 3 } as const;
/** Units one sample costs a stage: its forward and its backward. */
export const UNITS_PER_SAMPLE = 3;

export interface MinerLoad {
  miner: string;
  /** measured work units per second at its stage, or undefined before its first report */
  rate?: number;
  /** `auto` miners may be moved at epoch boundaries; explicit ones stay */
  auto: boolean;
}

export interface StageLoad {
  stage: number;
  /** relative cost of one sample at this stage (its parameter count is a good proxy) */
  cost: number;
  miners: MinerLoad[];
}

/**
 * A miner's speed in cost units per second (rate x cost of the stage it measured it at), so
 * rates measured at different stages compare. A miner without a measurement counts as the
 * median of those that have one, or as 1 when nobody has.
 */
function speeds(loads: readonly StageLoad[]): Map<string, number> {
  const known: number[] = [];
  for (const l of loads)
    for (const m of l.miners) if (m.rate !== undefined && m.rate > 0) known.push(m.rate * l.cost);
  known.sort((a, b) => a - b);
  const median = known.length === 0 ? 1 : known[Math.floor((known.length - 1) / 2)];
  const out = new Map<string, number>();
  for (const l of loads)
    for (const m of l.miners)
      out.set(m.miner, m.rate !== undefined && m.rate > 0 ? m.rate * l.cost : median);
  return out;
}

/** Samples per second each stage can process, from its miners' speeds. */
export function capacities(loads: readonly StageLoad[]): number[] {
  const speed = speeds(loads);
  return loads.map(
    (l) => l.miners.reduce((a, m) => a + speed.get(m.miner)!, 0) / l.cost / UNITS_PER_SAMPLE,
  );
}

/**
 * The stage a new `--layer auto` miner should join: the one with the least capacity for its
 * cost (the pipeline's bottleneck), from measured rates; ties go to the fewest miners, then
 * the lowest index.
 */
export function chooseStage(loads: readonly StageLoad[]): number {
  if (loads.length === 0) throw new Error('chooseStage: no stages');
  const cap = capacities(loads);
  let best = 0;
  for (let i = 1; i < loads.length; i++) {
    if (
      cap[i] < cap[best] - 1e-12 ||
      (Math.abs(cap[i] - cap[best]) <= 1e-12 && loads[i].miners.length < loads[best].miners.length)
    )
      best = i;
  }
  return loads[best].stage;
}

export interface Move {
  miner: string;
  from: number;
  to: number;
}

/**
 * Whether capacities `after` beat `before` for a pipeline: compared slowest first (the sorted
 * vectors, lexicographically), the first difference must be a gain of more than `minGain`.
 */
function better(after: number[], before: number[], minGain: number): boolean {
  const a = [...after].sort((x, y) => x - y);
  const b = [...before].sort((x, y) => x - y);
  for (let i = 0; i < a.length; i++) {
    if (Math.abs(a[i] - b[i]) <= 1e-12 * Math.max(1, b[i])) continue;
    return a[i] > b[i] * (1 + minGain);
  }
  return false;
}

/**
 * Moves at an epoch boundary that widen the pipeline's bottleneck: repeatedly take an `auto`
 * miner from a stage with at least two miners to the slowest stage when that makes the sorted
 * stage capacities better (slowest first, by more than `minGain`), at most `maxMoves` moves.
 */
export function rebalance(
  loads: readonly StageLoad[],
  maxMoves = Math.max(1, Math.ceil(loads.length / 2)),
  minGain = 0.1,
): Move[] {
  const speed = speeds(loads);
  const members = loads.map((l) => [...l.miners]);
  const cap = () =>
    loads.map((l, i) => members[i].reduce((a, m) => a + speed.get(m.miner)!, 0) / l.cost);
  const moves: Move[] = [];
  for (let k = 0; k < maxMoves; k++) {
    const c = cap();
    const low = c.indexOf(Math.min(...c));
    let best: { from: number; idx: number; after: number[] } | undefined;
    for (let i = 0; i < loads.length; i++) {
      if (i === low || members[i].length < 2) continue;
      members[i].forEach((m, idx) => {
        if (!m.auto) return;
        const s = speed.get(m.miner)!;
        const after = c.map((v, j) =>
          j === i ? v - s / loads[i].cost : j === low ? v + s / loads[low].cost : v,
        );
        if (better(after, best ? best.after : c, best ? 0 : minGain))
          best = { from: i, idx, after };
      });
    }
    if (!best) break;
    const [m] = members[best.from].splice(best.idx, 1);
    members[low].push(m);
    moves.push({ miner: m.miner, from: loads[best.from].stage, to: loads[low].stage });
  }
  return moves;
}

/** Exponentially weighted rate: `prev` moved towards `sample` by `alpha`. */
export function ewma(prev: number | null | undefined, sample: number, alpha = 0.3): number {
  return prev === null || prev === undefined ? sample : prev + alpha * (sample - prev);
}
