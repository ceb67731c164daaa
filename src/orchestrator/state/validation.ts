/** Validation's tables: each miner's standing, and the replay tasks with their verdicts. */
import type { Statement } from 'better-sqlite3';
import { undoOnRollback, type DB } from './db.js';

export interface Standing {
  miner: string;
  /** 1 while on probation (new, or quarantined after a failure) */
  probation: number;
  passes: number;
  failures: number;
  quarantined_at: number | null;
}

export interface ValidationRow {
  id: number;
  epoch: number;
  stage: number;
  item: number;
  kind: string;
  miner: string;
  reason: string;
  state: 'open' | 'assigned' | 'passed' | 'failed' | 'void';
  validator: string | null;
  expires: number | null;
  rel_err: number | null;
  detail: string | null;
  created_at: number;
  done_at: number | null;
}

export class ValidationState {
  private s: Record<string, Statement>;
  /** each miner's standing as in the database: every report reads it (putStanding keeps it so, undone on rollback) */
  private standingRows = new Map<string, Standing>();

  constructor(readonly db: DB) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      standing: p('SELECT * FROM standing WHERE miner = ?'),
      standingPut: p(
        'INSERT OR REPLACE INTO standing (miner, probation, passes, failures, ' +
          'quarantined_at) VALUES (@miner, @probation, @passes, @failures, @quarantined_at)',
      ),
      standings: p('SELECT * FROM standing ORDER BY miner'),
      add: p(
        'INSERT INTO validations (epoch, stage, item, kind, miner, reason, state, ' +
          "created_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?)",
      ),
      get: p('SELECT * FROM validations WHERE id = ?'),
      open: p(
        `SELECT * FROM validations WHERE state = 'open' AND miner <> ?
         ORDER BY CASE reason WHEN 'attribution' THEN 0 WHEN 'probation' THEN 1
           WHEN 'random' THEN 3 ELSE 2 END, id LIMIT ?`,
      ),
      promote: p(
        "UPDATE validations SET reason = 'attribution' WHERE miner = ? AND state = 'open' AND reason = 'random'",
      ),
      assign: p(
        "UPDATE validations SET state = 'assigned', validator = ?, expires = ? WHERE id = ?",
      ),
      expired: p("SELECT * FROM validations WHERE state = 'assigned' AND expires < ?"),
      reopen: p(
        "UPDATE validations SET state = 'open', validator = NULL, expires = NULL WHERE id = ?",
      ),
      decide: p(
        'UPDATE validations SET state = ?, rel_err = ?, detail = ?, done_at = ? WHERE id = ?',
      ),
      staleGates: p(
        'SELECT DISTINCT t.gate AS id FROM tasks t JOIN validations v ON v.id = t.gate ' +
          'WHERE t.gate IS NOT NULL AND v.created_at < ?',
      ),
      counts: p('SELECT miner, state, COUNT(*) AS n FROM validations GROUP BY miner, state'),
      recent: p(
        "SELECT * FROM validations WHERE state IN ('passed', 'failed') ORDER BY done_at DESC LIMIT ?",
      ),
      decidedFor: p(
        "SELECT * FROM validations WHERE miner = ? AND state IN ('passed', 'failed') ORDER BY done_at, id LIMIT ?",
      ),
      work: p(
        `SELECT miner, stage, kind, SUM(n) AS samples FROM tasks
         WHERE state IN ('done', 'held') AND miner IS NOT NULL AND epoch >= ?
         GROUP BY miner, stage, kind`,
      ),
      // Failed verdicts, and the faults that cost standing as much: leases held without
      // reporting until they lapsed, and refusals of good input.
      failures: p(
        `SELECT miner, COUNT(*) AS n FROM (
           SELECT miner FROM validations WHERE state = 'failed' AND epoch >= @from
           UNION ALL
           SELECT miner FROM faults WHERE kind IN ('lease_lapsed', 'false_refusal') AND epoch >= @from
         ) GROUP BY miner`,
      ),
      evalAdd: p("INSERT OR IGNORE INTO evals (epoch, state, created_at) VALUES (?, 'open', ?)"),
      evalOpen: p(
        "SELECT epoch FROM evals WHERE state = 'open' OR (state = 'assigned' AND expires " +
          '< ?) ORDER BY epoch DESC LIMIT 1',
      ),
      evalAssign: p(
        "UPDATE evals SET state = 'assigned', validator = ?, expires = ? WHERE epoch = ?",
      ),
      evalGet: p('SELECT * FROM evals WHERE epoch = ?'),
      evalDone: p(
        "UPDATE evals SET state = 'done', loss = ?, windows = ?, done_at = ? WHERE epoch = ?",
      ),
      evalsRecent: p(
        "SELECT epoch, loss, windows, done_at FROM evals WHERE state = 'done' ORDER BY epoch DESC LIMIT ?",
      ),
    };
  }

  standing(miner: string): Standing | undefined {
    // A copy: callers change what they get before they put it back.
    const cached = this.standingRows.get(miner);
    if (cached) return { ...cached };
    const row = this.s.standing.get(miner) as Standing | undefined;
    if (row) this.standingRows.set(miner, { ...row });
    return row;
  }
  putStanding(s: Standing): void {
    this.s.standingPut.run(s);
    const had = this.standingRows.has(s.miner);
    const old = this.standingRows.get(s.miner);
    this.standingRows.set(s.miner, { ...s });
    undoOnRollback(this.db, () =>
      had ? this.standingRows.set(s.miner, old!) : this.standingRows.delete(s.miner),
    );
  }
  standings(): Standing[] {
    return this.s.standings.all() as Standing[];
  }
  add(
    epoch: number,
    stage: number,
    item: number,
    kind: string,
    miner: string,
    reason: string,
    now: number,
  ): number {
    return Number(this.s.add.run(epoch, stage, item, kind, miner, reason, now).lastInsertRowid);
  }
  get(id: number): ValidationRow | undefined {
    return this.s.get.get(id) as ValidationRow | undefined;
  }
  /**
   * Open tasks not about `notFor`'s own work: attribution's first, then probation, uploads and
   * merges, random; oldest first.
   */
  open(notFor: string, max: number): ValidationRow[] {
    return this.s.open.all(notFor, max) as ValidationRow[];
  }
  /** A miner's open random checks go to the front (pathway attribution flagged it). */
  promote(miner: string): void {
    this.s.promote.run(miner);
  }
  assign(id: number, validator: string, expires: number): void {
    this.s.assign.run(validator, expires, id);
  }
  expired(now: number): ValidationRow[] {
    return this.s.expired.all(now) as ValidationRow[];
  }
  reopen(id: number): void {
    this.s.reopen.run(id);
  }
  decide(
    id: number,
    state: 'passed' | 'failed' | 'void',
    relErr: number | null,
    detail: string,
    now: number,
  ): void {
    this.s.decide.run(state, relErr, detail, now, id);
  }
  /** Validations that have held a task back since before `before`. */
  staleGates(before: number): number[] {
    return (this.s.staleGates.all(before) as Array<{ id: number }>).map((r) => r.id);
  }
  counts(): Array<{ miner: string; state: string; n: number }> {
    return this.s.counts.all() as Array<{ miner: string; state: string; n: number }>;
  }
  /** A miner's verdicts, oldest first. */
  decidedFor(miner: string, n: number): ValidationRow[] {
    return this.s.decidedFor.all(miner, n) as ValidationRow[];
  }
  recent(n: number): ValidationRow[] {
    return this.s.recent.all(n) as ValidationRow[];
  }
  /** Samples of work per miner, stage and kind since an epoch. */
  work(fromEpoch: number): Array<{ miner: string; stage: number; kind: string; samples: number }> {
    return this.s.work.all(fromEpoch) as Array<{
      miner: string;
      stage: number;
      kind: string;
      samples: number;
    }>;
  }
  addEval(epoch: number, now: number): void {
    this.s.evalAdd.run(epoch, now);
  }
  /** The newest evaluation nobody holds (an expired assignment is free again). */
  openEval(now: number): number | undefined {
    return (this.s.evalOpen.get(now) as { epoch: number } | undefined)?.epoch;
  }
  assignEval(epoch: number, validator: string, expires: number): void {
    this.s.evalAssign.run(validator, expires, epoch);
  }
  evalRow(epoch: number): { epoch: number; state: string; validator: string | null } | undefined {
    return this.s.evalGet.get(epoch) as
      { epoch: number; state: string; validator: string | null } | undefined;
  }
  finishEval(epoch: number, loss: number, windows: number, now: number): void {
    this.s.evalDone.run(loss, windows, now, epoch);
  }
  recentEvals(n: number): Array<{ epoch: number; loss: number; windows: number; done_at: number }> {
    return this.s.evalsRecent.all(n) as Array<{
      epoch: number;
      loss: number;
      windows: number;
      done_at: number;
    }>;
  }
  failures(fromEpoch: number): Map<string, number> {
    return new Map(
      (this.s.failures.all({ from: fromEpoch }) as Array<{ miner: string; n: number }>).map((r) => [
        r.miner,
        r.n,
      ]),
    );
  }
}
