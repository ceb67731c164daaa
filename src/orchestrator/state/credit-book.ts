/**
 * Samples each miner holds in the ledger and has not yet settled: `credited` (it holds the
 * gradient) and `uploaded` (the merge has it), per epoch and stage, as the ledger table says.
 * What an index of the ledger by miner answered, at a random index page per credit. Loaded when
 * the state opens, kept by SwarmState's ledger writes, undone on rollback (db.ts,
 * `undoOnRollback`).
 */
import { undoOnRollback, type DB } from './db.js';

type Held = 'credited' | 'uploaded';

const isHeld = (state: string): state is Held => state === 'credited' || state === 'uploaded';

export interface HeldRow {
  epoch: number;
  stage: number;
  miner: string;
  state: string;
  n: number;
}

export class CreditBook {
  /** "epoch stage" -> miner -> samples in each held state */
  private byStage = new Map<string, Map<string, Record<Held, number>>>();
  /** miner -> credited + uploaded samples, all epochs and stages */
  private unsettled = new Map<string, number>();

  /** `rows`: the ledger's credited and uploaded samples, summed by (epoch, stage, miner, state). */
  constructor(
    private readonly db: DB,
    rows: Iterable<HeldRow>,
  ) {
    for (const r of rows) if (isHeld(r.state)) this.apply(r.epoch, r.stage, r.miner, r.state, r.n);
  }

  /** `n` samples of one ledger row entered `state` for `miner`. */
  added(epoch: number, stage: number, miner: string, state: string, n: number): void {
    if (isHeld(state)) this.adjust(epoch, stage, miner, state, n);
  }

  /**
   * Every sample of (epoch, stage) in state `from` went to `to`: `miners`' only, or everyone's.
   * Moves into a held state come only from another held state (a credit goes through `added`).
   */
  moved(epoch: number, stage: number, from: string, to: string, miners?: readonly string[]): void {
    if (!isHeld(from)) {
      if (isHeld(to))
        throw new Error(
          `the ledger moves samples into '${to}' only from a held state, not from '${from}'`,
        );
      return;
    }
    const here = this.byStage.get(`${epoch} ${stage}`);
    if (!here) return;
    for (const miner of miners ?? [...here.keys()]) {
      const n = here.get(miner)?.[from] ?? 0;
      if (n === 0) continue;
      this.adjust(epoch, stage, miner, from, -n);
      if (isHeld(to)) this.adjust(epoch, stage, miner, to, n);
    }
  }

  /** Samples credited to a miner at one stage and epoch. */
  credited(epoch: number, stage: number, miner: string): number {
    return this.byStage.get(`${epoch} ${stage}`)?.get(miner)?.credited ?? 0;
  }

  /** Miners with credited samples at one stage and epoch, by miner id. */
  credits(epoch: number, stage: number): Array<{ miner: string; n: number }> {
    const out: Array<{ miner: string; n: number }> = [];
    for (const [miner, held] of this.byStage.get(`${epoch} ${stage}`) ?? [])
      if (held.credited > 0) out.push({ miner, n: held.credited });
    return out.sort((a, b) => (a.miner < b.miner ? -1 : a.miner > b.miner ? 1 : 0));
  }

  /** Whether a miner has samples no merge has settled yet. */
  holdsAny(miner: string): boolean {
    return this.unsettled.has(miner);
  }

  private adjust(epoch: number, stage: number, miner: string, state: Held, n: number): void {
    this.apply(epoch, stage, miner, state, n);
    undoOnRollback(this.db, () => this.apply(epoch, stage, miner, state, -n));
  }

  private apply(epoch: number, stage: number, miner: string, state: Held, n: number): void {
    const key = `${epoch} ${stage}`;
    let here = this.byStage.get(key);
    if (!here) this.byStage.set(key, (here = new Map()));
    const held = here.get(miner) ?? { credited: 0, uploaded: 0 };
    held[state] += n;
    if (held.credited === 0 && held.uploaded === 0) here.delete(miner);
    else here.set(miner, held);
    if (here.size === 0) this.byStage.delete(key);
    const total = (this.unsettled.get(miner) ?? 0) + n;
    if (total === 0) this.unsettled.delete(miner);
    else this.unsettled.set(miner, total);
  }
}
