/** The merge's tables: one row per stage merge, its jobs, agreed results and faults. */
import type { Statement } from 'better-sqlite3';
import type { MergePlan } from '../../merge/plan.js';
import type { DB } from './db.js';
import type { ManifestRef } from './swarm-rows.js';

/** How a stage's merge of an epoch ended: published (some participants left out), or failed. */
export type MergeOutcome =
  { manifest: ManifestRef; excluded: Record<string, string> } | { failed: string };

export type JobState = 'assigned' | 'done' | 'unavailable' | 'reassigned';

export interface MergeRow {
  epoch: number;
  stage: number;
  round: number;
  /** 1 reducing, 2 updating, 3 agreed (manifest to publish), 4 finished (see `outcome`) */
  step: 1 | 2 | 3 | 4;
  plan: MergePlan;
  /** participants left out of the merge, with the ledger reason */
  excluded: Record<string, string>;
  norm2: number | null;
  clip_factor: number | null;
  started_at: number;
  /** the learning rate of the epoch's step and the step count t, computed when it begins */
  lr: number | null;
  t: number | null;
  /** how it ended, once step is 4 */
  outcome: MergeOutcome | null;
}

/** Which merge (a stage's epoch, and its round) a job or result belongs to. */
export type MergeKey = Pick<MergeRow, 'epoch' | 'stage' | 'round'>;

export interface JobRow {
  epoch: number;
  stage: number;
  round: number;
  step: number;
  partition: number;
  merger: string;
  state: JobState;
  result: Record<string, unknown> | null;
  assigned_at: number;
  done_at: number | null;
  /** 1: this merger uploads its step-2 result; 0: it witnesses (reports the hashes only) */
  writes: number;
}

export class MergeState {
  private s: Record<string, Statement>;
  /**
   * Each merge's plan as last parsed, by (epoch, stage), with the text it came from: a plan
   * (every partition's offsets and mergers) is read on every merge call and changes only with a
   * new round, so it is parsed once per text. Frozen: callers share it.
   */
  private plans = new Map<string, { text: string; plan: MergePlan }>();

  constructor(readonly db: DB) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      get: p('SELECT * FROM merges WHERE epoch = ? AND stage = ?'),
      active: p('SELECT * FROM merges WHERE step < 4 ORDER BY epoch, stage'),
      put: p(
        'INSERT OR REPLACE INTO merges (epoch, stage, round, step, plan, excluded, ' +
          'norm2, clip_factor, started_at, lr, t, outcome) VALUES (@epoch, @stage, @round, ' +
          '@step, @plan, @excluded, @norm2, @clip_factor, @started_at, @lr, @t, @outcome)',
      ),
      jobPut: p(
        'INSERT OR REPLACE INTO merge_jobs (epoch, stage, round, step, partition, ' +
          'merger, state, result, assigned_at, done_at, writes) VALUES (?, ?, ?, ?, ?, ?, ' +
          "'assigned', NULL, ?, NULL, ?)",
      ),
      jobGet: p(
        'SELECT * FROM merge_jobs WHERE epoch = ? AND stage = ? AND round = ? AND step = ' +
          '? AND partition = ? AND merger = ?',
      ),
      jobSet: p(
        'UPDATE merge_jobs SET state = ?, result = ?, done_at = ? WHERE epoch = ? AND ' +
          'stage = ? AND round = ? AND step = ? AND partition = ? AND merger = ?',
      ),
      jobsOf: p(
        'SELECT * FROM merge_jobs WHERE epoch = ? AND stage = ? AND round = ? AND step = ? ORDER BY partition, merger',
      ),
      jobsPending: p(
        'SELECT * FROM merge_jobs WHERE epoch = ? AND stage = ? AND round = ? AND step = ? AND ' +
          "(state = 'unavailable' OR (merger = ? AND state = 'assigned')) ORDER BY partition, merger",
      ),
      jobsAt: p(
        'SELECT * FROM merge_jobs WHERE epoch = ? AND stage = ? AND round = ? AND step = ? AND ' +
          'partition = ? ORDER BY merger',
      ),
      jobsFor: p(
        "SELECT * FROM merge_jobs WHERE merger = ? AND state = 'assigned' ORDER BY epoch, stage, step, partition",
      ),
      resultGet: p(
        'SELECT result FROM merge_results WHERE epoch = ? AND stage = ? AND round = ? AND step = ? AND partition = ?',
      ),
      resultPut: p(
        'INSERT OR REPLACE INTO merge_results (epoch, stage, round, step, partition, result) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      results: p(
        'SELECT partition, result FROM merge_results WHERE epoch = ? AND stage = ? AND ' +
          'round = ? AND step = ? ORDER BY partition',
      ),
      fault: p(
        'INSERT INTO faults (epoch, stage, miner, kind, detail, at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      faults: p(
        'SELECT epoch, stage, miner, kind, detail, at FROM faults WHERE epoch = ? AND stage = ? ORDER BY id',
      ),
    };
  }

  private row(r: Record<string, unknown> | undefined): MergeRow | undefined {
    return (
      r &&
      ({
        ...r,
        plan: this.plan(r.epoch as number, r.stage as number, r.plan as string),
        excluded: JSON.parse(r.excluded as string),
        outcome: r.outcome ? JSON.parse(r.outcome as string) : null,
      } as MergeRow)
    );
  }

  private plan(epoch: number, stage: number, text: string): MergePlan {
    const key = `${epoch}/${stage}`;
    const hit = this.plans.get(key);
    if (hit && hit.text === text) return hit.plan;
    const plan = deepFreeze(JSON.parse(text) as MergePlan);
    this.plans.delete(key);
    this.plans.set(key, { text, plan });
    // the merges in progress (one per stage) and a few finished ones
    if (this.plans.size > 64) this.plans.delete(this.plans.keys().next().value!);
    return plan;
  }

  merge(epoch: number, stage: number): MergeRow | undefined {
    return this.row(this.s.get.get(epoch, stage) as Record<string, unknown> | undefined);
  }
  active(): MergeRow[] {
    return (this.s.active.all() as Array<Record<string, unknown>>).map((r) => this.row(r)!);
  }
  put(m: MergeRow): void {
    this.s.put.run({
      ...m,
      plan: JSON.stringify(m.plan),
      excluded: JSON.stringify(m.excluded),
      outcome: m.outcome === null ? null : JSON.stringify(m.outcome),
    });
  }
  assign(
    m: MergeKey,
    step: number,
    partition: number,
    merger: string,
    now: number,
    writes = true,
  ): void {
    this.s.jobPut.run(m.epoch, m.stage, m.round, step, partition, merger, now, writes ? 1 : 0);
  }
  job(m: MergeKey, step: number, partition: number, merger: string): JobRow | undefined {
    const r = this.s.jobGet.get(m.epoch, m.stage, m.round, step, partition, merger) as
      Record<string, unknown> | undefined;
    return r && ({ ...r, result: r.result ? JSON.parse(r.result as string) : null } as JobRow);
  }
  setJob(j: JobRow, state: JobState, result: unknown, now: number | null): void {
    this.s.jobSet.run(
      state,
      result === null ? null : JSON.stringify(result),
      now,
      j.epoch,
      j.stage,
      j.round,
      j.step,
      j.partition,
      j.merger,
    );
  }
  /** Every job of a step (every partition's). */
  jobs(m: MergeKey, step: number): JobRow[] {
    return jobRows(this.s.jobsOf.all(m.epoch, m.stage, m.round, step));
  }
  /**
   * The jobs of one partition's step: what a report or a settlement needs (reading every
   * partition's instead made each of a merge's P reports read all P partitions' jobs).
   */
  jobsAt(m: MergeKey, step: number, partition: number): JobRow[] {
    return jobRows(this.s.jobsAt.all(m.epoch, m.stage, m.round, step, partition));
  }
  /**
   * The jobs of a step that wait on `referee` (the orchestrator): claims of an unreadable input
   * to check, and partitions assigned to it. The rest stay in SQLite (a pump after each report
   * read and parsed every job of the step).
   */
  jobsPending(m: MergeKey, step: number, referee: string): JobRow[] {
    return jobRows(this.s.jobsPending.all(m.epoch, m.stage, m.round, step, referee));
  }
  jobsFor(merger: string): JobRow[] {
    return jobRows(this.s.jobsFor.all(merger));
  }
  result<T>(m: MergeKey, step: number, partition: number): T | undefined {
    const r = this.s.resultGet.get(m.epoch, m.stage, m.round, step, partition) as
      { result: string } | undefined;
    return r && (JSON.parse(r.result) as T);
  }
  putResult(m: MergeKey, step: number, partition: number, result: unknown): void {
    this.s.resultPut.run(m.epoch, m.stage, m.round, step, partition, JSON.stringify(result));
  }
  results<T>(m: MergeKey, step: number): Map<number, T> {
    return new Map(
      (
        this.s.results.all(m.epoch, m.stage, m.round, step) as Array<{
          partition: number;
          result: string;
        }>
      ).map((r) => [r.partition, JSON.parse(r.result) as T]),
    );
  }
  fault(
    epoch: number,
    stage: number,
    miner: string,
    kind: string,
    detail: string,
    now: number,
  ): void {
    this.s.fault.run(epoch, stage, miner, kind, detail, now);
  }
  faults(
    epoch: number,
    stage: number,
  ): Array<{ miner: string; kind: string; detail: string; at: number }> {
    return this.s.faults.all(epoch, stage) as Array<{
      miner: string;
      kind: string;
      detail: string;
      at: number;
    }>;
  }
}

function jobRows(rows: unknown[]): JobRow[] {
  return (rows as Array<Record<string, unknown>>).map(
    (r) => ({ ...r, result: r.result ? JSON.parse(r.result as string) : null }) as JobRow,
  );
}

function deepFreeze<T>(x: T): T {
  if (x !== null && typeof x === 'object' && !Object.isFrozen(x)) {
    Object.freeze(x);
    for (const v of Object.values(x)) deepFreeze(v);
  }
  return x;
}
