/**
 * The tasks each miner holds (leased, or held: a forward waiting for its backward), as in the
 * tasks table: what an index by miner answered, at a random index page per lease and per
 * report. Loaded when the state opens, kept by SwarmState's task writes, undone on rollback
 * (db.ts, `undoOnRollback`).
 */
import { undoOnRollback, type DB } from './db.js';
import type { TaskKind, TaskState } from './swarm-rows.js';

export interface OpenTask {
  miner: string;
  item: number;
  stage: number;
  kind: TaskKind;
  state: 'leased' | 'held';
}

type TaskRef = { item: number; stage: number; kind: TaskKind };

const keyOf = (t: TaskRef) => `${t.item} ${t.stage} ${t.kind}`;

export class OpenTasks {
  private byKey = new Map<string, OpenTask>();
  private byMiner = new Map<string, Set<string>>();

  /** `rows`: the table's leased and held tasks (a task without a miner holds nobody's work). */
  constructor(
    private readonly db: DB,
    rows: Iterable<Omit<OpenTask, 'miner'> & { miner: string | null }>,
  ) {
    for (const r of rows)
      if (r.miner !== null) this.apply(keyOf(r), undefined, { ...r, miner: r.miner });
  }

  leased(t: TaskRef, miner: string): void {
    this.set(keyOf(t), { miner, item: t.item, stage: t.stage, kind: t.kind, state: 'leased' });
  }

  /** A task's new state (`miner`: the task's, when the caller has its row). */
  moved(t: TaskRef, state: TaskState, miner: string | null): void {
    const key = keyOf(t);
    const owner = this.byKey.get(key)?.miner ?? miner;
    const open = (state === 'leased' || state === 'held') && owner !== null;
    this.set(
      key,
      open ? { miner: owner, item: t.item, stage: t.stage, kind: t.kind, state } : undefined,
    );
  }

  /** Tasks that left leased and held (voided, done, unleased); returns how many. */
  closed(rows: TaskRef[]): number {
    for (const r of rows) this.set(keyOf(r), undefined);
    return rows.length;
  }

  /** Distinct work items among a miner's open tasks (only those in `state`, when given). */
  items(miner: string, state?: OpenTask['state']): number {
    const items = new Set<number>();
    for (const key of this.byMiner.get(miner) ?? []) {
      const t = this.byKey.get(key)!;
      if (state === undefined || t.state === state) items.add(t.item);
    }
    return items.size;
  }

  holdsAny(miner: string): boolean {
    return this.byMiner.has(miner);
  }

  /** A miner's open tasks. */
  of(miner: string): OpenTask[] {
    return [...(this.byMiner.get(miner) ?? [])].map((key) => this.byKey.get(key)!);
  }

  private set(key: string, v: OpenTask | undefined): void {
    const old = this.byKey.get(key);
    if (old === undefined && v === undefined) return;
    this.apply(key, old, v);
    undoOnRollback(this.db, () => this.apply(key, v, old));
  }

  private apply(key: string, from: OpenTask | undefined, to: OpenTask | undefined): void {
    if (from) {
      this.byKey.delete(key);
      const mine = this.byMiner.get(from.miner);
      mine?.delete(key);
      if (mine?.size === 0) this.byMiner.delete(from.miner);
    }
    if (to) {
      this.byKey.set(key, to);
      const mine = this.byMiner.get(to.miner);
      if (mine) mine.add(key);
      else this.byMiner.set(to.miner, new Set([key]));
    }
  }
}
