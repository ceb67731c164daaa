/**
 * The swarm's tables behind typed methods: the run, stage phases, epochs, members, work items
 * and their tasks (with leases), the sample ledger and gradient uploads. No decisions here:
 * the coordinator decides, this file reads and writes rows.
 */
import type { Statement } from 'better-sqlite3';
import { undoOnRollback, type DB } from './db.js';
import { swarmStatements } from './swarm-sql.js';
import { LEASE, KIND_OF } from './lease-ids.js';
import { parseTaskRow as task, type Raw } from './swarm-rows.js';

export { leaseId } from './lease-ids.js';
import { OpenTasks, type OpenTask } from './open-tasks.js';
import { Ledger } from './ledger.js';
import { Liveness } from './liveness.js';
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

export class SwarmState {
  private s: Record<string, Statement>;
  /** When each miner was last heard from and how fast it works, in memory (liveness.ts). */
  private liveness = new Liveness();
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
  /** The sample ledger: one row per (item, stage), counted in samples (ledger.ts). */
  readonly ledger: Ledger;

  /** Sets (or with `undefined` drops) a cached row, restoring the previous one on rollback. */
  private cache<K, V>(m: Map<K, V>, k: K, v: V | undefined): void {
    const had = m.has(k);
    const old = m.get(k);
    if (v === undefined) m.delete(k);
    else m.set(k, v);
    undoOnRollback(this.db, () => (had ? m.set(k, old as V) : m.delete(k)));
  }

  constructor(readonly db: DB) {
    this.s = swarmStatements(db);
    this.open = new OpenTasks(
      db,
      this.s.openTasks.iterate() as Iterable<Omit<OpenTask, 'miner'> & { miner: string | null }>,
    );
    this.ledger = new Ledger(db);
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
    return this.liveness.overlay(r);
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
  /** A miner's count of lapses not yet worked off, and the epoch of its latest. */
  setLapses(miner: string, lapses: number, epoch: number | null): void {
    this.s.memberLapses.run(lapses, epoch, miner);
    const old = this.memberRows.get(miner);
    this.cache(this.memberRows, miner, old && { ...old, lapses, lapsed_epoch: epoch });
  }
  seen(miner: string, now: number): void {
    this.liveness.seen(miner, now);
  }
  recordRate(miner: string, rate: number, samples: number, now: number): void {
    this.liveness.recordRate(miner, rate, samples, now);
  }
  /** Writes the in-memory liveness and rates to the members table (inside the caller's transaction). */
  flushLiveness(): void {
    this.liveness.flush((miner, seen, rate, done) => {
      this.s.memberFlush.run(seen, rate, done, miner);
      // The cached row as the statement leaves it (every tick flushes every live miner: dropping
      // the rows instead would make the next call of each miner read its row again).
      const old = this.memberRows.get(miner);
      if (old)
        this.cache(this.memberRows, miner, {
          ...old,
          last_seen: Math.max(old.last_seen, seen),
          rate: rate ?? old.rate,
          done: old.done + done,
        });
    });
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
  leaseTask(
    t: TaskRow,
    miner: string,
    lease: string,
    now: number,
    expires: number,
    due: number | null,
  ): void {
    this.s.taskLease.run(miner, lease, now, expires, due, t.item, t.stage, t.kind);
    this.open.leased(t, miner);
  }
  /** The sha256 a lease's miner declared for its output (the first upload URL it asked for). */
  declareOutput(t: Pick<TaskRow, 'item' | 'stage' | 'kind'>, sha256: string): void {
    this.s.taskDeclare.run(sha256, t.item, t.stage, t.kind);
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
  /** Work items a miner holds: leased, or forwarded and waiting for their backward (or `only`). */
  heldItems(miner: string, only?: 'leased' | 'held'): number {
    return this.open.items(miner, only);
  }
  /** Leased or held tasks, plus credited samples not yet settled by a merge. */
  holdsWork(miner: string): boolean {
    return this.open.holdsAny(miner) || this.ledger.holdsAny(miner);
  }
  renewLeases(miner: string, now: number, expires: number): number {
    let renewed = 0;
    for (const t of this.open.of(miner)) {
      if (t.state === 'leased')
        renewed += this.s.renew.run(expires, expires, t.item, t.stage, t.kind, now).changes;
    }
    return renewed;
  }
  expiredLeases(now: number): TaskRow[] {
    return (this.s.expired.all(now) as Array<Raw<TaskRow>>).map((r) => task(r)!);
  }
  /** Every task leased now. */
  leasedTasks(): TaskRow[] {
    return (this.s.leased.all() as Array<Raw<TaskRow>>).map((r) => task(r)!);
  }
  /** After a restart: leases in flight get their budget again from `now`, at least a lease. */
  restartDues(now: number, leaseMs: number): void {
    this.s.restartDues.run({ now, lease: leaseMs });
  }
  /** Brings a lease's due time (and its expiry with it) forward. */
  tightenDue(t: Pick<TaskRow, 'item' | 'stage' | 'kind'>, due: number): void {
    this.s.tightenDue.run(due, due, t.item, t.stage, t.kind);
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
    this.ledger.drop(item, state);
    this.open.closed(this.s.closeItemHeld.all(item) as TaskRow[]);
    return this.open.closed(this.s.voidItemTasks.all(item) as TaskRow[]);
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
