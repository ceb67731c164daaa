/**
 * Pathway attribution (after CLASP, "Contribution-based Loss Attribution" in the IOTA paper):
 * every sample travels one path of miners, one per stage, and ends with a loss. A miner whose
 * samples end with losses clearly above those of the other miners of its stage is likely the
 * cause; validation looks at its work first. Kept in memory over the newest two epochs (a
 * restart starts over: attribution only orders checks, it never blames anyone).
 */

interface Tally {
  n: number;
  sum: number;
  sq: number;
}

/** One stage's tallies in one epoch: per miner, and their total (so "the rest" costs nothing). */
interface StageTallies {
  all: Tally;
  miners: Map<string, Tally>;
}

function addTo(t: Tally, n: number, sum: number, sq: number): void {
  t.n += n;
  t.sum += sum;
  t.sq += sq;
}

/** How many standard errors above the rest of its stage a miner's mean loss must be. */
export const FLAG_Z = 3;
/** Items a miner (and the rest of its stage) needs before it can be flagged. */
export const FLAG_MIN_ITEMS = 4;

export class Pathways {
  /** epoch -> stage -> miner -> tally of the losses of the items it was on the path of */
  private epochs = new Map<number, Map<number, StageTallies>>();
  private flagged = new Set<string>();

  isFlagged(miner: string): boolean {
    return this.flagged.has(miner);
  }

  flaggedMiners(): string[] {
    return [...this.flagged].sort();
  }

  /** One item's path (the miner of stage 0, 1, ...) and its loss; returns the miners newly flagged. */
  add(epoch: number, path: readonly string[], loss: number): string[] {
    if (!Number.isFinite(loss)) return [];
    let stages = this.epochs.get(epoch);
    if (!stages) {
      stages = new Map();
      this.epochs.set(epoch, stages);
      for (const e of [...this.epochs.keys()]) if (e < epoch - 1) this.epochs.delete(e);
    }
    path.forEach((miner, s) => {
      let st = stages!.get(s);
      if (!st) stages!.set(s, (st = { all: { n: 0, sum: 0, sq: 0 }, miners: new Map() }));
      let t = st.miners.get(miner);
      if (!t) st.miners.set(miner, (t = { n: 0, sum: 0, sq: 0 }));
      addTo(t, 1, loss, loss * loss);
      addTo(st.all, 1, loss, loss * loss);
    });
    const fresh: string[] = [];
    for (const miner of new Set(path)) {
      const was = this.flagged.has(miner);
      const now = path.some((m, s) => m === miner && this.zScore(s, miner) > FLAG_Z);
      if (now && !was) {
        this.flagged.add(miner);
        fresh.push(miner);
      } else if (!now && was) {
        this.flagged.delete(miner);
      }
    }
    return fresh;
  }

  /**
   * (mean of the miner's items - mean of the rest of its stage's) / standard error, over the
   * newest two epochs; -Infinity while either side has too few items or the losses do not vary.
   */
  zScore(stage: number, miner: string): number {
    const mine: Tally = { n: 0, sum: 0, sq: 0 };
    const rest: Tally = { n: 0, sum: 0, sq: 0 };
    for (const stages of this.epochs.values()) {
      const st = stages.get(stage);
      if (!st) continue;
      const t = st.miners.get(miner) ?? { n: 0, sum: 0, sq: 0 };
      addTo(mine, t.n, t.sum, t.sq);
      addTo(rest, st.all.n - t.n, st.all.sum - t.sum, st.all.sq - t.sq);
    }
    if (mine.n < FLAG_MIN_ITEMS || rest.n < FLAG_MIN_ITEMS) return -Infinity;
    const n = mine.n + rest.n;
    const mean = (mine.sum + rest.sum) / n;
    const variance = Math.max(0, (mine.sq + rest.sq) / n - mean * mean);
    if (variance === 0) return -Infinity;
    const se = Math.sqrt(variance * (1 / mine.n + 1 / rest.n));
    return (mine.sum / mine.n - rest.sum / rest.n) / se;
  }
}
