/**
 * The sample ledger: one row per (item, stage), counted in samples: open -> credited (the miner
 * holds the gradient) -> uploaded -> merged, or lost_with_miner / dropped:<reason>. Per epoch
 * and stage the rows add up to the samples allocated. Each miner's unsettled samples are also
 * kept in memory (the credit book), so no index of the ledger by miner is needed.
 */
import type { Statement } from 'better-sqlite3';
import { CreditBook, type HeldRow } from './credit-book.js';
import type { DB } from './db.js';

export class Ledger {
  private s: Record<string, Statement>;
  /** Each miner's unsettled samples, in memory (credit-book.ts): kept by every write below. */
  private book: CreditBook;

  constructor(db: DB) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      ledgerPut: p("INSERT INTO ledger (item, stage, epoch, n, state) VALUES (?, ?, ?, ?, 'open')"),
      ledgerCredit: p(
        "UPDATE ledger SET state = 'credited', miner = ? WHERE item = ? AND stage = ? RETURNING epoch, n",
      ),
      ledgerOpen: p(
        "SELECT COUNT(*) AS n FROM ledger WHERE epoch = ? AND stage = ? AND state = 'open'",
      ),
      ledgerOpenEpoch: p("SELECT COUNT(*) AS n FROM ledger WHERE epoch = ? AND state = 'open'"),
      ledgerDropOpen: p("UPDATE ledger SET state = ? WHERE epoch = ? AND state = 'open'"),
      // Unsettled samples belong to their stage's current epoch (a merge or an abandon settles the rest).
      ledgerHeld: p(
        'SELECT epoch, stage, miner, state, SUM(n) AS n FROM ledger WHERE epoch >= ' +
          "(SELECT COALESCE(MIN(epoch), 0) FROM stages) AND state IN ('credited', " +
          "'uploaded') GROUP BY epoch, stage, miner, state",
      ),
      ledgerMove: p(
        'UPDATE ledger SET state = ? WHERE epoch = ? AND stage = ? AND state = ? AND ' +
          'miner IN (SELECT value FROM json_each(?))',
      ),
      ledgerMoveStage: p('UPDATE ledger SET state = ? WHERE epoch = ? AND stage = ? AND state = ?'),
      ledgerCounts: p(
        'SELECT epoch, stage, state, SUM(n) AS samples FROM ledger WHERE epoch >= ? ' +
          'GROUP BY epoch, stage, state ORDER BY epoch, stage, state',
      ),
      ledgerSamples: p(
        'SELECT item, stage, state, miner FROM ledger WHERE epoch = ? ORDER BY item, stage',
      ),
      dropItemLedger: p("UPDATE ledger SET state = ? WHERE item = ? AND state = 'open'"),
      creditedItems: p(
        'SELECT item FROM ledger WHERE epoch = ? AND stage = ? AND miner = ? AND state ' +
          "IN ('credited', 'uploaded', 'merged') ORDER BY item",
      ),
    };
    this.book = new CreditBook(db, this.s.ledgerHeld.iterate() as Iterable<HeldRow>);
  }

  /** A new item's row at a stage, open. */
  open(item: number, stage: number, epoch: number, n: number): void {
    this.s.ledgerPut.run(item, stage, epoch, n);
  }
  /** The backward at a stage is acknowledged: the miner holds the item's gradient. */
  credit(item: number, stage: number, miner: string): void {
    const row = this.s.ledgerCredit.get(miner, item, stage) as
      { epoch: number; n: number } | undefined;
    if (row) this.book.added(row.epoch, stage, miner, 'credited', row.n);
  }
  /** Rows still open in an epoch, at one stage or all. */
  openCount(epoch: number, stage?: number): number {
    return (
      (stage === undefined
        ? this.s.ledgerOpenEpoch.get(epoch)
        : this.s.ledgerOpen.get(epoch, stage)) as { n: number }
    ).n;
  }
  /** Every row of an epoch still open goes to `state` (the drain deadline). */
  dropOpen(epoch: number, state: string): void {
    this.s.ledgerDropOpen.run(state, epoch);
  }
  /** An item's open rows go to `state` (the item was dropped). */
  drop(item: number, state: string): void {
    this.s.dropItemLedger.run(state, item);
  }
  /** Samples credited (and not yet settled) per miner at one stage and epoch. */
  credits(epoch: number, stage: number): Array<{ miner: string; n: number }> {
    return this.book.credits(epoch, stage);
  }
  minerCredit(epoch: number, stage: number, miner: string): number {
    return this.book.credited(epoch, stage, miner);
  }
  /** Whether a miner holds unsettled samples anywhere. */
  holdsAny(miner: string): boolean {
    return this.book.holdsAny(miner);
  }
  /** Samples of (epoch, stage) in state `from` go to `to`: `miners`' only (one pass), or everyone's. */
  move(epoch: number, stage: number, from: string, to: string, miners?: readonly string[]): void {
    if (miners?.length === 0) return;
    this.book.moved(epoch, stage, from, to, miners); // first: it refuses a move it cannot follow
    if (miners === undefined) this.s.ledgerMoveStage.run(to, epoch, stage, from);
    else this.s.ledgerMove.run(to, epoch, stage, from, JSON.stringify(miners));
  }
  /** Samples per epoch, stage and state, from an epoch on. */
  counts(
    fromEpoch: number,
  ): Array<{ epoch: number; stage: number; state: string; samples: number }> {
    return this.s.ledgerCounts.all(fromEpoch) as Array<{
      epoch: number;
      stage: number;
      state: string;
      samples: number;
    }>;
  }
  /** Every row of an epoch. */
  rows(epoch: number): Array<{ item: number; stage: number; state: string; miner: string | null }> {
    return this.s.ledgerSamples.all(epoch) as Array<{
      item: number;
      stage: number;
      state: string;
      miner: string | null;
    }>;
  }
  /** Items whose gradient at a stage and epoch is credited to a miner (merged or not yet). */
  creditedItems(epoch: number, stage: number, miner: string): number[] {
    return (this.s.creditedItems.all(epoch, stage, miner) as Array<{ item: number }>).map(
      (r) => r.item,
    );
  }
}
