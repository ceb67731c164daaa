/**
 * The run's history, for the dashboard: one row per epoch (its phase times, the samples merged,
 * the mean training loss of its tail items, the held-out loss of its weights) and a miner's
 * samples per epoch by ledger state. Read from the tables the swarm already keeps, through
 * their indexes (items by epoch, tasks by item, the ledger by epoch or miner), a page at a time.
 */
import type { Statement } from 'better-sqlite3';
import type { DB } from './db.js';

export interface EpochRow {
  epoch: number;
  started_at: number;
  /** when allocation stopped (the drain began) */
  closed_at: number | null;
  /** when the head's last item of the epoch was done */
  drained_at: number | null;
  /** when the next epoch started (the head's merge published): null for the current epoch */
  ended_at: number | null;
  /** the head's time uploading and merging, in ms */
  merge_ms: number;
  allocated: number;
  /** samples merged in every stage (the smallest stage count) */
  merged: number;
  /** mean training loss of the epoch's tail items, weighted by their samples */
  loss: number | null;
  /** held-out loss of the weights trained in this epoch (evaluated by a validator) */
  eval_loss: number | null;
}

export interface MinerEpochRow {
  epoch: number;
  stage: number;
  state: string;
  samples: number;
}

export interface StandingRow {
  probation: number;
  passes: number;
  failures: number;
  quarantined_at: number | null;
}

/** Rows per page at most. */
export const HISTORY_PAGE = 1000;

export class History {
  private readonly epochs: Statement;
  private readonly miner: Statement;
  private readonly standingOf: Statement;

  /** `stages`: the run's; a stage that merged nothing of an epoch makes its merged count 0 */
  constructor(
    db: DB,
    private readonly stages: number,
  ) {
    this.epochs = db.prepare(
      'SELECT e.epoch, e.started_at, e.closed_at, e.drained_at, e.merge_ms, e.allocated, ' +
        '(SELECT n.started_at FROM epochs n WHERE n.epoch = e.epoch + 1) AS ended_at, ' +
        "(SELECT SUM(t.loss * t.n) / SUM(t.n) FROM items i JOIN tasks t ON t.item = i.item AND t.kind = 'tail' " +
        'WHERE i.epoch = e.epoch AND t.loss IS NOT NULL) AS loss, ' +
        "(SELECT v.loss FROM evals v WHERE v.epoch = e.epoch AND v.state = 'done') AS eval_loss, " +
        '(SELECT CASE WHEN COUNT(*) = @stages THEN MIN(s) ELSE 0 END FROM (SELECT SUM(l.n) AS s ' +
        "FROM ledger l WHERE l.epoch = e.epoch AND l.state = 'merged' GROUP BY l.stage)) AS merged " +
        'FROM epochs e WHERE e.epoch >= @since ORDER BY e.epoch LIMIT @limit',
    );
    this.standingOf = db.prepare(
      'SELECT probation, passes, failures, quarantined_at FROM standing WHERE miner = ?',
    );
    this.miner = db.prepare(
      'SELECT epoch, stage, state, SUM(n) AS samples FROM ledger WHERE miner = ? AND epoch >= ? ' +
        'GROUP BY epoch, stage, state ORDER BY epoch, stage, state LIMIT ?',
    );
  }

  /** Epochs from `since` on, oldest first, at most `limit` (<= HISTORY_PAGE). */
  epochRows(since: number, limit = HISTORY_PAGE): EpochRow[] {
    return this.epochs.all({
      since,
      limit: Math.min(limit, HISTORY_PAGE),
      stages: this.stages,
    }) as EpochRow[];
  }

  /** A miner's samples per epoch, stage and ledger state, from `since` on. */
  minerRows(miner: string, since: number, limit = HISTORY_PAGE): MinerEpochRow[] {
    return this.miner.all(miner, since, Math.min(limit, HISTORY_PAGE)) as MinerEpochRow[];
  }

  /** A miner's standing (probation, passes since, failures), if it has one yet. */
  standing(miner: string): StandingRow | undefined {
    return this.standingOf.get(miner) as StandingRow | undefined;
  }
}
