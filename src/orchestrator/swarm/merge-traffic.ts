/**
 * Bytes each merger moved per merge (`epoch/stage/miner`), from the sizes of what its jobs
 * read and wrote: slices, optimizer state, outputs, and the new weights it then loads. For
 * /metrics: the busiest merger's traffic over the stage size W, which the design bounds.
 */
interface Tally {
  epoch: number;
  stage: number;
  down: number;
  up: number;
  w: number;
}

export class MergeTraffic {
  private readonly tallies = new Map<string, Tally>();

  /** Adds a job's bytes; `params` is the stage's size in elements (the new weights it loads). */
  count(
    epoch: number,
    stage: number,
    params: number,
    miner: string,
    down: number,
    up: number,
  ): void {
    const key = `${epoch}/${stage}/${miner}`;
    const t = this.tallies.get(key) ?? { epoch, stage, down: 4 * params, up: 0, w: 4 * params };
    t.down += down;
    t.up += up;
    this.tallies.set(key, t);
    if (this.tallies.size > 10_000) this.tallies.delete(this.tallies.keys().next().value!);
  }

  /** Per-miner traffic of the newest merge of a stage, relative to the stage size W. */
  last(stage: number): { epoch: number; maxDownOverW: number; maxUpOverW: number } | undefined {
    const rows = [...this.tallies.values()].filter((t) => t.stage === stage);
    if (rows.length === 0) return undefined;
    const epoch = Math.max(...rows.map((t) => t.epoch));
    const last = rows.filter((t) => t.epoch === epoch);
    return {
      epoch,
      maxDownOverW: Math.max(...last.map((t) => t.down / t.w)),
      maxUpOverW: Math.max(...last.map((t) => t.up / t.w)),
    };
  }
}
