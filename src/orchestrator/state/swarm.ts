/**
 * The swarm's tables behind typed methods: the run, stage phases, epochs, members, work items
 * and their tasks (with leases), the sample ledger and gradient uploads. No decisions here:
 * the coordinator decides, this file reads and writes rows.
 */
import type { Statement } from 'better-sqlite3';
import { randomHex } from '../../protocol/random.js';
import { undoOnRollback, type DB } from './db.js';
import { OpenTasks, type OpenTask } from './open-tasks.js';
import { CreditBook, type HeldRow } from './credit-book.js';
import type {
  TaskKind,
  TaskState,
  ObjectRef,
  WindowRef,
  ManifestRef,
  RunRow,
  StageRow,
  EpochRow,
  MemberRow,
  TaskInput,
  TaskRow,
  ItemRow,
  GradientRow,
} from './swarm-rows.js';

export type {
  Phase,
  TaskKind,
  TaskState,
  ObjectRef,
  WindowRef,
  ManifestRef,
  RunRow,
  StageRow,
  EpochRow,
  MemberRow,
  TaskInput,
  TaskRow,
  ItemRow,
  GradientRow,
} from './swarm-rows.js';

type Raw<T> = { [K in keyof T]: T[K] extends object | null ? string | null : T[K] };

/**
 * A lease id names its task (item in base 36, stage, kind's letter) and 64 random bits, so a
 * report finds the task by its key: no index on the lease, which took pages of its own.
 */
export function leaseId(t: Pick<TaskRow, 'item' | 'stage' | 'kind'>): string {
  return `${t.item.toString(36)}_${t.stage}${t.kind[0]}_${randomHex(8)}`;
}
const LEASE = /^([0-9a-z]{1,11})_(\d{1,4})([fbt])_[0-9a-f]{16}$/;
const KIND_OF: Record<string, TaskKind> = { f: 'fwd', b: 'bwd', t: 'tail' };

function task(r: Raw<TaskRow> | undefined): TaskRow | undefined {
  return (
    r && {
      ...r,
      input: JSON.parse(r.input as string),
      output: r.output ? JSON.parse(r.output) : null,
    }
  );
}

interface Liveness {
  seen: number;
  rate?: number;
  /** samples done since the last flush */
  done: number;
}

export class SwarmState {
  private s: Record<string, Statement>;
  /**
   * When each miner was last heard from and how fast it works: measurements, not acknowledged
   * state, so they live in memory and reach the database on `flushLiveness` (every tick). A
   * crash forgets at most one tick of them, which only delays a silence verdict.
   */
  private liveness = new Map<string, Liveness>();
  /**
   * Rows every request reads, kept in memory as in the database: stages (their manifests
   * parsed), epochs, members (as stored; `overlay` adds liveness), the next item id. Every
   * write below updates or drops its copy and registers the undo for a rollback (db.ts).
   * The objects are replaced, never changed in place: callers may keep the ones they got.
   */
  private stageRows = new Map<number, StageRow>();
  private epochRows = new Map<number, EpochRow>();
  private memberRows = new Map<string, MemberRow>();
  private nextItem: number | undefined;
  /** The tasks each miner holds, in memory (open-tasks.ts): kept by every task write below. */
  private open: OpenTasks;
  /** Each miner's unsettled samples, in memory (credit-book.ts): kept by every ledger write below. */
  private book: CreditBook;

  /** Sets (or with `undefined` drops) a cached row, restoring the previous one on rollback. */
  private cache<K, V>(m: Map<K, V>, k: K, v: V | undefined): void {
    const had = m.has(k);
    const old = m.get(k);
    if (v === undefined) m.delete(k);
    else m.set(k, v);
    undoOnRollback(this.db, () => (had ? m.set(k, old as V) : m.delete(k)));
  }

  constructor(readonly db: DB) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      runGet: p('SELECT * FROM run WHERE id = 1'),
      runPut: p(
        'INSERT INTO run (id, name, config, config_hash, stages, created_at) VALUES (1, ?, ?, ?, ?, ?)',
      ),
      stageGet: p('SELECT * FROM stages WHERE stage = ?'),
      stageAll: p('SELECT * FROM stages ORDER BY stage'),
      stagePut: p(
        'INSERT OR REPLACE INTO stages (stage, epoch, phase, since, deadline, manifest, note) VALUES (@stage, @epoch, @phase, @since, @deadline, @manifest, @note)',
      ),
      epochGet: p('SELECT * FROM epochs WHERE epoch = ?'),
      epochPut: p('INSERT OR IGNORE INTO epochs (epoch, started_at) VALUES (?, ?)'),
      epochAllocate: p('UPDATE epochs SET allocated = allocated + ? WHERE epoch = ?'),
      epochClose: p('UPDATE epochs SET closed_at = ?, drain_deadline = ? WHERE epoch = ?'),
      epochDrained: p('UPDATE epochs SET drained_at = ? WHERE epoch = ?'),
      epochMergeMs: p('UPDATE epochs SET merge_ms = merge_ms + ? WHERE epoch = ?'),
      epochsDraining: p(
        'SELECT * FROM epochs WHERE closed_at IS NOT NULL AND drained_at IS NULL ORDER BY epoch',
      ),
      epochsRecent: p('SELECT * FROM epochs ORDER BY epoch DESC LIMIT ?'),
      memberGet: p('SELECT * FROM members WHERE miner = ?'),
      memberAll: p('SELECT * FROM members ORDER BY stage, joined_at, miner'),
      memberPut: p(
        'INSERT INTO members (miner, stage, requested, next_stage, joined_at, joined_epoch, last_seen) VALUES (?, ?, ?, NULL, ?, ?, ?)',
      ),
      memberSet: p('UPDATE members SET stage = ?, requested = ?, next_stage = ? WHERE miner = ?'),
      memberFlush: p(
        'UPDATE members SET last_seen = MAX(last_seen, ?), rate = COALESCE(?, rate), done = done + ? WHERE miner = ?',
      ),
      taskGet: p('SELECT * FROM tasks WHERE item = ? AND stage = ? AND kind = ?'),
      taskPut: p(
        "INSERT INTO tasks (item, stage, kind, epoch, first_sample, n, state, prefer, ready_at, input, gate) VALUES (?, ?, ?, ?, ?, ?, 'ready', ?, ?, ?, ?)",
      ),
      ungate: p('UPDATE tasks SET gate = NULL, ready_at = ? WHERE gate = ?'),
      manifestPut: p('INSERT OR REPLACE INTO manifests (stage, epoch, manifest) VALUES (?, ?, ?)'),
      manifestGet: p('SELECT manifest FROM manifests WHERE stage = ? AND epoch = ?'),
      taskLease: p(
        "UPDATE tasks SET state = 'leased', miner = ?, lease = ?, leased_at = ?, expires = ? WHERE item = ? AND stage = ? AND kind = ?",
      ),
      taskFinish: p(
        'UPDATE tasks SET state = ?, output = ?, loss = ?, done_at = ? WHERE item = ? AND stage = ? AND kind = ?',
      ),
      taskSetState: p('UPDATE tasks SET state = ? WHERE item = ? AND stage = ? AND kind = ?'),
      readyPreferred: p(
        "SELECT * FROM tasks WHERE stage = ? AND epoch = ? AND state = 'ready' AND kind = 'bwd' AND prefer = ? AND gate IS NULL ORDER BY ready_at, item LIMIT 1",
      ),
      readyBackward: p(
        "SELECT * FROM tasks WHERE stage = ? AND epoch = ? AND state = 'ready' AND kind = 'bwd' AND gate IS NULL ORDER BY ready_at, item LIMIT 32",
      ),
      readyForward: p(
        "SELECT * FROM tasks WHERE stage = ? AND epoch = ? AND state = 'ready' AND kind IN ('fwd', 'tail') AND gate IS NULL ORDER BY item LIMIT 1",
      ),
      openTasks: p(
        "SELECT item, stage, kind, miner, state FROM tasks WHERE state = 'leased' UNION ALL SELECT item, stage, kind, miner, state FROM tasks WHERE state = 'held'",
      ),
      renew: p(
        "UPDATE tasks SET expires = ? WHERE item = ? AND stage = ? AND kind = ? AND state = 'leased' AND expires >= ?",
      ),
      expired: p("SELECT * FROM tasks WHERE state = 'leased' AND expires < ?"),
      unlease: p(
        "UPDATE tasks SET state = 'ready', miner = NULL, lease = NULL, leased_at = NULL, expires = NULL, ready_at = ? WHERE item = ? AND stage = ? AND kind = ?",
      ),
      voidEpoch: p(
        "UPDATE tasks SET state = 'void' WHERE epoch = ? AND state IN ('ready', 'leased') RETURNING item, stage, kind",
      ),
      // A forward waiting for its backward was work done in good faith: it stays counted.
      closeEpochHeld: p(
        "UPDATE tasks SET state = 'done' WHERE epoch = ? AND state = 'held' RETURNING item, stage, kind",
      ),
      queue: p(
        "SELECT stage, kind, state, COUNT(*) AS n FROM tasks WHERE state IN ('ready', 'leased', 'held') GROUP BY stage, kind, state",
      ),
      recentLosses: p(
        "SELECT epoch, item, n, loss, done_at FROM tasks WHERE kind = 'tail' AND state IN ('done', 'held') AND done_at IS NOT NULL ORDER BY done_at DESC, item DESC LIMIT ?",
      ),
      tailSince: p(
        "SELECT COALESCE(SUM(n), 0) AS n FROM tasks WHERE kind = 'tail' AND done_at >= ?",
      ),
      itemPut: p(
        'INSERT INTO items (item, epoch, first_sample, n, windows, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      itemGet: p('SELECT * FROM items WHERE item = ?'),
      itemNext: p('SELECT COALESCE(MAX(item), -1) + 1 AS next FROM items'),
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
        "SELECT epoch, stage, miner, state, SUM(n) AS n FROM ledger WHERE epoch >= (SELECT COALESCE(MIN(epoch), 0) FROM stages) AND state IN ('credited', 'uploaded') GROUP BY epoch, stage, miner, state",
      ),
      ledgerMove: p(
        'UPDATE ledger SET state = ? WHERE epoch = ? AND stage = ? AND state = ? AND miner IN (SELECT value FROM json_each(?))',
      ),
      ledgerMoveStage: p('UPDATE ledger SET state = ? WHERE epoch = ? AND stage = ? AND state = ?'),
      ledgerCounts: p(
        'SELECT epoch, stage, state, SUM(n) AS samples FROM ledger WHERE epoch >= ? GROUP BY epoch, stage, state ORDER BY epoch, stage, state',
      ),
      ledgerSamples: p(
        'SELECT item, stage, state, miner FROM ledger WHERE epoch = ? ORDER BY item, stage',
      ),
      upstreamExpiry: p(
        "SELECT MIN(expires) AS t FROM tasks WHERE stage < ? AND epoch = ? AND state = 'leased'",
      ),
      leaseHolders: p("SELECT DISTINCT miner FROM tasks WHERE state = 'leased'"),
      dropItemLedger: p("UPDATE ledger SET state = ? WHERE item = ? AND state = 'open'"),
      voidItemTasks: p(
        "UPDATE tasks SET state = 'void' WHERE item = ? AND state IN ('ready', 'leased') RETURNING item, stage, kind",
      ),
      closeItemHeld: p(
        "UPDATE tasks SET state = 'done' WHERE item = ? AND state = 'held' RETURNING item, stage, kind",
      ),
      creditedItems: p(
        "SELECT item FROM ledger WHERE epoch = ? AND stage = ? AND miner = ? AND state IN ('credited', 'uploaded', 'merged') ORDER BY item",
      ),
      fault: p(
        'INSERT INTO faults (epoch, stage, miner, kind, detail, at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      gradGet: p('SELECT * FROM gradients WHERE epoch = ? AND stage = ? AND miner = ?'),
      gradPut: p(
        'INSERT INTO gradients (epoch, stage, miner, key, size, sha256, n, partitions, uploaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      gradAll: p('SELECT * FROM gradients WHERE epoch = ? AND stage = ? ORDER BY miner'),
    };
    this.open = new OpenTasks(
      db,
      this.s.openTasks.iterate() as Iterable<Omit<OpenTask, 'miner'> & { miner: string | null }>,
    );
    this.book = new CreditBook(db, this.s.ledgerHeld.iterate() as Iterable<HeldRow>);
  }

  run(): RunRow | undefined {
    return this.s.runGet.get() as RunRow | undefined;
  }
  putRun(r: RunRow): void {
    this.s.runPut.run(r.name, r.config, r.config_hash, r.stages, r.created_at);
  }

  stage(s: number): StageRow {
    const cached = this.stageRows.get(s);
    if (cached) return cached;
    const r = this.s.stageGet.get(s) as Raw<StageRow> | undefined;
    if (!r) throw new Error(`no stage ${s} in the state`);
    const row = { ...r, manifest: JSON.parse(r.manifest as string) } as StageRow;
    this.stageRows.set(s, row);
    return row;
  }
  stages(): StageRow[] {
    return (this.s.stageAll.all() as Array<Raw<StageRow>>).map(
      (r) => ({ ...r, manifest: JSON.parse(r.manifest as string) }) as StageRow,
    );
  }
  putStage(r: StageRow): void {
    this.s.stagePut.run({ ...r, manifest: JSON.stringify(r.manifest) });
    this.cache(this.stageRows, r.stage, { ...r, manifest: structuredClone(r.manifest) });
  }

  epoch(e: number): EpochRow | undefined {
    const cached = this.epochRows.get(e);
    if (cached) return cached;
    const row = this.s.epochGet.get(e) as EpochRow | undefined;
    if (row) this.epochRows.set(e, row);
    return row;
  }
  /** An epoch's cached row after a write: the change applied to it, or dropped when not cached. */
  private epochChanged(
    e: number,
    change: Partial<EpochRow> | ((r: EpochRow) => Partial<EpochRow>),
  ): void {
    const old = this.epochRows.get(e);
    this.cache(
      this.epochRows,
      e,
      old && { ...old, ...(typeof change === 'function' ? change(old) : change) },
    );
  }
  startEpoch(e: number, now: number): void {
    this.s.epochPut.run(e, now);
    this.cache(this.epochRows, e, undefined);
  }
  allocate(e: number, n: number): void {
    this.s.epochAllocate.run(n, e);
    this.epochChanged(e, (r) => ({ allocated: r.allocated + n }));
  }
  closeAllocation(e: number, now: number, drainDeadline: number): void {
    this.s.epochClose.run(now, drainDeadline, e);
    this.epochChanged(e, { closed_at: now, drain_deadline: drainDeadline });
  }
  markDrained(e: number, now: number): void {
    this.s.epochDrained.run(now, e);
    this.epochChanged(e, { drained_at: now });
  }
  addMergeTime(e: number, ms: number): void {
    this.s.epochMergeMs.run(ms, e);
    this.epochChanged(e, (r) => ({ merge_ms: r.merge_ms + ms }));
  }
  drainingEpochs(): EpochRow[] {
    return this.s.epochsDraining.all() as EpochRow[];
  }
  recentEpochs(n: number): EpochRow[] {
    return this.s.epochsRecent.all(n) as EpochRow[];
  }

  member(miner: string): MemberRow | undefined {
    let r = this.memberRows.get(miner);
    if (!r) {
      r = this.s.memberGet.get(miner) as MemberRow | undefined;
      if (r) this.memberRows.set(miner, r);
    }
    return r && this.overlay(r);
  }
  members(): MemberRow[] {
    return (this.s.memberAll.all() as MemberRow[]).map((r) => this.overlay(r));
  }
  private overlay(r: MemberRow): MemberRow {
    const l = this.liveness.get(r.miner);
    return l
      ? {
          ...r,
          last_seen: Math.max(r.last_seen, l.seen),
          rate: l.rate ?? r.rate,
          done: r.done + l.done,
        }
      : r;
  }
  addMember(miner: string, stage: number, requested: string, epoch: number, now: number): void {
    this.s.memberPut.run(miner, stage, requested, now, epoch, now);
    this.cache(this.memberRows, miner, undefined);
  }
  setMember(miner: string, stage: number, requested: string, nextStage: number | null): void {
    this.s.memberSet.run(stage, requested, nextStage, miner);
    const old = this.memberRows.get(miner);
    this.cache(this.memberRows, miner, old && { ...old, stage, requested, next_stage: nextStage });
  }
  seen(miner: string, now: number): void {
    const l = this.liveness.get(miner);
    if (l) l.seen = Math.max(l.seen, now);
    else this.liveness.set(miner, { seen: now, done: 0 });
  }
  recordRate(miner: string, rate: number, samples: number, now: number): void {
    this.seen(miner, now);
    const l = this.liveness.get(miner)!;
    l.rate = rate;
    l.done += samples;
  }
  /** Writes the in-memory liveness and rates to the members table (inside the caller's transaction). */
  flushLiveness(): void {
    for (const [miner, l] of this.liveness) {
      this.s.memberFlush.run(l.seen, l.rate ?? null, l.done, miner);
      // The cached row as the statement leaves it (every tick flushes every live miner: dropping
      // the rows instead would make the next call of each miner read its row again).
      const old = this.memberRows.get(miner);
      if (old)
        this.cache(this.memberRows, miner, {
          ...old,
          last_seen: Math.max(old.last_seen, l.seen),
          rate: l.rate ?? old.rate,
          done: old.done + l.done,
        });
    }
    this.liveness.clear();
  }

  /** The task a lease id names, while the lease is its current one. */
  taskByLease(lease: string): TaskRow | undefined {
    const m = LEASE.exec(lease);
    if (!m) return undefined;
    const t = this.task(parseInt(m[1], 36), Number(m[2]), KIND_OF[m[3]]);
    return t?.lease === lease ? t : undefined;
  }
  task(item: number, stage: number, kind: TaskKind): TaskRow | undefined {
    return task(this.s.taskGet.get(item, stage, kind) as Raw<TaskRow> | undefined);
  }
  addTask(
    item: number,
    stage: number,
    kind: TaskKind,
    epoch: number,
    firstSample: number,
    n: number,
    prefer: string | null,
    now: number,
    input: TaskInput,
    gate: number | null = null,
  ): void {
    this.s.taskPut.run(
      item,
      stage,
      kind,
      epoch,
      firstSample,
      n,
      prefer,
      now,
      JSON.stringify(input),
      gate,
    );
  }
  /** Releases the tasks a validation held back. */
  ungate(validation: number, now: number): void {
    this.s.ungate.run(now, validation);
  }
  /** The weights a stage trained epoch E with (every epoch's manifest is kept). */
  putManifest(stage: number, epoch: number, m: ManifestRef): void {
    this.s.manifestPut.run(stage, epoch, JSON.stringify(m));
  }
  manifest(stage: number, epoch: number): ManifestRef | undefined {
    const r = this.s.manifestGet.get(stage, epoch) as { manifest: string } | undefined;
    return r && (JSON.parse(r.manifest) as ManifestRef);
  }
  leaseTask(t: TaskRow, miner: string, lease: string, now: number, expires: number): void {
    this.s.taskLease.run(miner, lease, now, expires, t.item, t.stage, t.kind);
    this.open.leased(t, miner);
  }
  finishTask(
    t: TaskRow,
    state: TaskState,
    output: ObjectRef | null,
    loss: number | null,
    now: number,
  ): void {
    this.s.taskFinish.run(
      state,
      output && JSON.stringify(output),
      loss,
      now,
      t.item,
      t.stage,
      t.kind,
    );
    this.open.moved(t, state, t.miner);
  }
  setTaskState(t: Pick<TaskRow, 'item' | 'stage' | 'kind'>, state: TaskState): void {
    this.s.taskSetState.run(state, t.item, t.stage, t.kind);
    this.open.moved(t, state, null);
  }
  readyPreferred(stage: number, epoch: number, miner: string): TaskRow | undefined {
    return task(this.s.readyPreferred.get(stage, epoch, miner) as Raw<TaskRow> | undefined);
  }
  /** A backward nobody is waiting for: its forward miner is gone, silent, moved, or slower than `staleBefore`. */
  readyBackward(
    stage: number,
    epoch: number,
    silentBefore: number,
    staleBefore: number,
  ): TaskRow | undefined {
    for (const r of this.s.readyBackward.all(stage, epoch) as Array<Raw<TaskRow>>) {
      const m = r.prefer === null ? undefined : this.member(r.prefer);
      if (!m || m.last_seen < silentBefore || m.stage !== r.stage || r.ready_at < staleBefore)
        return task(r);
    }
    return undefined;
  }
  readyForward(stage: number, epoch: number): TaskRow | undefined {
    return task(this.s.readyForward.get(stage, epoch) as Raw<TaskRow> | undefined);
  }
  /** Work items a miner holds: leased, or forwarded and waiting for their backward. */
  heldItems(miner: string): number {
    return this.open.items(miner);
  }
  /** Leased or held tasks, plus credited samples not yet settled by a merge. */
  holdsWork(miner: string): boolean {
    return this.open.holdsAny(miner) || this.book.holdsAny(miner);
  }
  renewLeases(miner: string, now: number, expires: number): number {
    let renewed = 0;
    for (const t of this.open.of(miner)) {
      if (t.state === 'leased')
        renewed += this.s.renew.run(expires, t.item, t.stage, t.kind, now).changes;
    }
    return renewed;
  }
  expiredLeases(now: number): TaskRow[] {
    return (this.s.expired.all(now) as Array<Raw<TaskRow>>).map((r) => task(r)!);
  }
  unlease(t: TaskRow, now: number): void {
    this.s.unlease.run(now, t.item, t.stage, t.kind);
    this.open.closed([t]);
  }
  voidEpochTasks(epoch: number): void {
    this.open.closed(this.s.voidEpoch.all(epoch) as TaskRow[]);
    this.open.closed(this.s.closeEpochHeld.all(epoch) as TaskRow[]);
  }
  queue(): Array<{ stage: number; kind: TaskKind; state: TaskState; n: number }> {
    return this.s.queue.all() as Array<{
      stage: number;
      kind: TaskKind;
      state: TaskState;
      n: number;
    }>;
  }
  recentLosses(
    n: number,
  ): Array<{ epoch: number; item: number; n: number; loss: number; done_at: number }> {
    return this.s.recentLosses.all(n) as Array<{
      epoch: number;
      item: number;
      n: number;
      loss: number;
      done_at: number;
    }>;
  }
  tailSamplesSince(t: number): number {
    return (this.s.tailSince.get(t) as { n: number }).n;
  }

  nextItemId(): number {
    this.nextItem ??= (this.s.itemNext.get() as { next: number }).next;
    return this.nextItem;
  }
  addItem(
    item: number,
    epoch: number,
    firstSample: number,
    n: number,
    windows: WindowRef[],
    now: number,
  ): void {
    this.s.itemPut.run(item, epoch, firstSample, n, JSON.stringify(windows), now);
    const old = this.nextItem;
    if (old !== undefined) this.nextItem = Math.max(old, item + 1);
    undoOnRollback(this.db, () => (this.nextItem = old));
  }
  item(item: number): ItemRow {
    const r = this.s.itemGet.get(item) as Raw<ItemRow>;
    return { ...r, windows: JSON.parse(r.windows as string) } as ItemRow;
  }

  openLedger(item: number, stage: number, epoch: number, n: number): void {
    this.s.ledgerPut.run(item, stage, epoch, n);
  }
  credit(item: number, stage: number, miner: string): void {
    const row = this.s.ledgerCredit.get(miner, item, stage) as
      { epoch: number; n: number } | undefined;
    if (row) this.book.added(row.epoch, stage, miner, 'credited', row.n);
  }
  openCount(epoch: number, stage?: number): number {
    return (
      (stage === undefined
        ? this.s.ledgerOpenEpoch.get(epoch)
        : this.s.ledgerOpen.get(epoch, stage)) as { n: number }
    ).n;
  }
  dropOpen(epoch: number, state: string): void {
    this.s.ledgerDropOpen.run(state, epoch);
  }
  /** Samples credited (and not yet settled) per miner at one stage and epoch. */
  credits(epoch: number, stage: number): Array<{ miner: string; n: number }> {
    return this.book.credits(epoch, stage);
  }
  minerCredit(epoch: number, stage: number, miner: string): number {
    return this.book.credited(epoch, stage, miner);
  }
  /** Samples of (epoch, stage) in state `from` go to `to`: `miners`' only (one pass), or everyone's. */
  moveLedger(
    epoch: number,
    stage: number,
    from: string,
    to: string,
    miners?: readonly string[],
  ): void {
    if (miners?.length === 0) return;
    this.book.moved(epoch, stage, from, to, miners); // first: it refuses a move it cannot follow
    if (miners === undefined) this.s.ledgerMoveStage.run(to, epoch, stage, from);
    else this.s.ledgerMove.run(to, epoch, stage, from, JSON.stringify(miners));
  }
  ledgerCounts(
    fromEpoch: number,
  ): Array<{ epoch: number; stage: number; state: string; samples: number }> {
    return this.s.ledgerCounts.all(fromEpoch) as Array<{
      epoch: number;
      stage: number;
      state: string;
      samples: number;
    }>;
  }
  ledgerRows(
    epoch: number,
  ): Array<{ item: number; stage: number; state: string; miner: string | null }> {
    return this.s.ledgerSamples.all(epoch) as Array<{
      item: number;
      stage: number;
      state: string;
      miner: string | null;
    }>;
  }

  /** The earliest lease expiry of an epoch's items before stage `below`. */
  upstreamExpiry(below: number, epoch: number): number | null {
    return (this.s.upstreamExpiry.get(below, epoch) as { t: number | null }).t;
  }
  leaseHolders(): Set<string> {
    return new Set((this.s.leaseHolders.all() as Array<{ miner: string }>).map((r) => r.miner));
  }
  /**
   * Drops an item wherever it is still open and voids the tasks nobody has done; forwards done
   * and waiting for their backward count as done (their miners did the work). Returns the tasks voided.
   */
  dropItem(item: number, state: string): number {
    this.s.dropItemLedger.run(state, item);
    this.open.closed(this.s.closeItemHeld.all(item) as TaskRow[]);
    return this.open.closed(this.s.voidItemTasks.all(item) as TaskRow[]);
  }
  /** Items whose gradient at a stage and epoch is credited to a miner (merged or not yet). */
  creditedItems(epoch: number, stage: number, miner: string): number[] {
    return (this.s.creditedItems.all(epoch, stage, miner) as Array<{ item: number }>).map(
      (r) => r.item,
    );
  }
  /** A fault for scoring (the validator's input): who, what, where. */
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

  gradient(epoch: number, stage: number, miner: string): GradientRow | undefined {
    const r = this.s.gradGet.get(epoch, stage, miner) as Raw<GradientRow> | undefined;
    return r && ({ ...r, partitions: JSON.parse(r.partitions as string) } as GradientRow);
  }
  addGradient(g: GradientRow): void {
    this.s.gradPut.run(
      g.epoch,
      g.stage,
      g.miner,
      g.key,
      g.size,
      g.sha256,
      g.n,
      JSON.stringify(g.partitions),
      g.uploaded_at,
    );
  }
  gradients(epoch: number, stage: number): GradientRow[] {
    return (this.s.gradAll.all(epoch, stage) as Array<Raw<GradientRow>>).map(
      (r) => ({ ...r, partitions: JSON.parse(r.partitions as string) }) as GradientRow,
    );
  }
}
