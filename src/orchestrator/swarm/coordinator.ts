/**
 * The swarm's brain: stage membership, sample allocation, work items and their leases, the
 * sample ledger, and each stage's phases (DESIGN.md section 3). Every method is synchronous
 * and runs inside the caller's transaction; time comes in as `now`, so tests drive it with a
 * fake clock and no server.
 *
 * A work item is `batch` consecutive samples of one epoch. It flows forward through the stages
 * (`fwd` tasks, then one `tail` task that computes the loss and its backward at once) and back
 * (`bwd` tasks, tail -> head). The ledger has one row per (item, stage), counted in samples:
 * open -> credited (the miner holds the gradient) -> uploaded -> merged, or
 * lost_with_miner / dropped:<reason>.
 */
import { keys } from '../../store/keys.js';
import { HttpError } from '../errors.js';
import {
  leaseId,
  type GradientRow,
  type ManifestRef,
  type MemberRow,
  type ObjectRef,
  type StageRow,
  type SwarmState,
  type TaskKind,
  type TaskRow,
} from '../state/swarm.js';
import type { SwarmStatus } from '../../protocol/swarm-messages.js';
import { UNITS, chooseStage, ewma, rebalance, type StageLoad } from './scheduler.js';
import { buildStatus } from './status.js';
import { gradientKey, uploadDuty, uploadsNext } from './uploads.js';
import {
  PHASE_CALLS,
  type Idle,
  type ReportBody,
  type StageView,
  type SwarmSettings,
  type WorkItem,
  type WorkReply,
} from './contracts.js';

export class Coordinator {
  readonly stages: number;
  readonly leaseMs: number;
  /** lease expiries since start, for metrics */
  expiries = 0;

  constructor(
    readonly state: SwarmState,
    readonly cfg: SwarmSettings,
  ) {
    this.stages = cfg.costs.length;
    this.leaseMs = cfg.run.phases.lease_s * 1000;
  }

  /** Creates the stages (epoch 0, TRAINING, the given manifests) of a new run. */
  createRun(configHash: string, manifests: ManifestRef[], now: number): void {
    this.state.putRun({
      name: this.cfg.name,
      config: JSON.stringify({ run: this.cfg.run, model: this.cfg.model }),
      config_hash: configHash,
      stages: this.stages,
      created_at: now,
    });
    manifests.forEach((manifest, stage) => {
      this.state.putStage({
        stage,
        epoch: 0,
        phase: 'training',
        since: now,
        deadline: null,
        manifest,
        note: '',
      });
      this.state.putManifest(stage, 0, manifest);
    });
    this.state.startEpoch(0, now);
  }

  // ---- membership ----------------------------------------------------------------------

  join(
    miner: string,
    requested: 'auto' | number,
    now: number,
  ): StageView & { next_stage?: number } {
    if (
      requested !== 'auto' &&
      (!Number.isInteger(requested) || requested < 0 || requested >= this.stages)
    ) {
      throw new HttpError(
        'E_BAD_STAGE',
        `stage ${requested} does not exist; this run has stages 0..${this.stages - 1}`,
        "use --layer auto, or a stage from 'iota status'",
      );
    }
    const req = String(requested);
    const m = this.state.member(miner);
    if (!m) {
      const stage = requested === 'auto' ? chooseStage(this.loads(now)) : requested;
      this.state.addMember(miner, stage, req, this.state.stage(0).epoch, now);
      this.cfg.validation?.joined?.(miner, now);
      return this.view(stage);
    }
    this.state.seen(miner, now);
    if (requested === 'auto' || requested === m.stage) {
      this.state.setMember(miner, m.stage, req, null);
      return this.view(m.stage);
    }
    // An explicit other stage: now if the miner holds nothing, else after its merge duties.
    if (this.state.holdsWork(miner)) {
      this.state.setMember(miner, m.stage, req, requested);
      return { ...this.view(m.stage), next_stage: requested };
    }
    this.state.setMember(miner, requested, req, null);
    return this.view(requested);
  }

  /** Stage loads from live members, for assignment and rebalancing. */
  loads(now: number): StageLoad[] {
    const loads: StageLoad[] = this.cfg.costs.map((cost, stage) => ({ stage, cost, miners: [] }));
    for (const m of this.state.members()) {
      if (m.last_seen < now - 2 * this.leaseMs) continue;
      loads[m.stage].miners.push({
        miner: m.miner,
        rate: m.rate ?? undefined,
        auto: m.requested === 'auto',
      });
    }
    return loads;
  }

  // ---- work ----------------------------------------------------------------------------

  work(miner: string, max: number, now: number): WorkReply {
    let m = this.member(miner);
    this.state.seen(miner, now);
    m = this.applyMove(m);
    const st = this.state.stage(m.stage);
    const base: WorkReply = { ...this.view(m.stage), server_time: now, items: [] };
    if (st.phase !== 'training') {
      const duty = st.phase === 'uploading' ? uploadDuty(this, st, miner) : undefined;
      const what =
        st.phase === 'uploading'
          ? 'collecting gradient uploads'
          : 'merging gradients into the next weights';
      return {
        ...base,
        ...(duty ? { duty } : {}),
        idle: {
          reason: st.phase,
          message: `stage ${st.stage} is ${what} for epoch ${st.epoch}`,
          ...(st.deadline !== null ? { next_change_at: st.deadline } : {}),
        },
      };
    }
    const inFlight = this.cfg.run.in_flight;
    const items: WorkItem[] = [];
    // Backwards of items this miner forwarded come first and need no new room.
    for (
      let t = this.state.readyPreferred(m.stage, st.epoch, miner);
      t && items.length < max;
      t = this.state.readyPreferred(m.stage, st.epoch, miner)
    ) {
      items.push(this.lease(t, miner, now));
    }
    while (items.length < max && this.state.heldItems(miner) < inFlight) {
      const t =
        this.state.readyBackward(m.stage, st.epoch, now - this.leaseMs, now - this.leaseMs) ??
        this.state.readyForward(m.stage, st.epoch) ??
        (m.stage === 0 ? this.allocate(st.epoch, now) : undefined);
      if (!t) break;
      items.push(this.lease(t, miner, now));
    }
    if (items.length > 0) return { ...base, items };
    return { ...base, idle: this.whyIdle(m, st, now) };
  }

  private whyIdle(m: MemberRow, st: StageRow, now: number): Idle {
    const held = this.state.heldItems(m.miner);
    if (held >= this.cfg.run.in_flight) {
      return {
        reason: 'in_flight_limit',
        message: `you hold ${held} work items (the run allows ${this.cfg.run.in_flight}); report them, and the backwards of your forwards come back to you`,
      };
    }
    const ep = this.state.epoch(st.epoch);
    if (m.stage === 0 && ep && ep.closed_at !== null) {
      return {
        reason: 'epoch_full',
        message: `epoch ${st.epoch} has all ${this.cfg.run.samples_per_epoch} samples allocated; the pipeline is draining`,
        ...(ep.drain_deadline !== null ? { next_change_at: ep.drain_deadline } : {}),
      };
    }
    const nextExpiry = {
      t: this.state.upstreamExpiry(m.stage === 0 ? this.stages : m.stage, st.epoch),
    };
    return {
      reason: 'waiting_for_upstream',
      message:
        m.stage === 0
          ? 'no backward is ready for the head yet; items are in flight downstream'
          : `no item has reached stage ${m.stage} yet; items are in flight upstream`,
      ...(nextExpiry.t !== null && nextExpiry.t > now ? { next_change_at: nextExpiry.t } : {}),
    };
  }

  private allocate(epoch: number, now: number): TaskRow | undefined {
    const ep = this.state.epoch(epoch);
    const target = this.cfg.run.samples_per_epoch;
    if (!ep || ep.allocated >= target) return undefined;
    const n = Math.min(this.cfg.run.batch, target - ep.allocated);
    const first = epoch * target + ep.allocated;
    const windows = Array.from({ length: n }, (_, i) => this.cfg.window(first + i));
    const item = this.state.nextItemId();
    this.state.addItem(item, epoch, first, n, windows, now);
    for (let s = 0; s < this.stages; s++) this.state.openLedger(item, s, epoch, n);
    const kind: TaskKind = this.stages === 1 ? 'tail' : 'fwd';
    this.state.addTask(item, 0, kind, epoch, first, n, null, now, { windows });
    this.state.allocate(epoch, n);
    if (ep.allocated + n >= target)
      this.state.closeAllocation(epoch, now, now + this.cfg.run.phases.drain_s * 1000);
    // The row just inserted, as addTask wrote it (not read back).
    return {
      item,
      stage: 0,
      kind,
      epoch,
      first_sample: first,
      n,
      state: 'ready',
      miner: null,
      prefer: null,
      lease: null,
      leased_at: null,
      expires: null,
      ready_at: now,
      input: { windows },
      output: null,
      loss: null,
      done_at: null,
      gate: null,
    };
  }

  private lease(t: TaskRow, miner: string, now: number): WorkItem {
    const lease = leaseId(t);
    const expires = now + this.leaseMs;
    this.state.leaseTask(t, miner, lease, now, expires);
    const out: WorkItem = {
      lease,
      item: t.item,
      epoch: t.epoch,
      stage: t.stage,
      kind: t.kind,
      samples: Array.from({ length: t.n }, (_, i) => t.first_sample + i),
      expires_at: expires,
      ...t.input,
    };
    const key = this.outputKey(t, t.first_sample, miner, lease);
    if (key) out.output_key = key;
    return out;
  }

  /** Where a task's output goes: forward activations, or the gradient of the stage's input. */
  private outputKey(
    t: Pick<TaskRow, 'kind' | 'stage' | 'epoch'>,
    firstSample: number,
    miner: string,
    lease: string,
  ): string | undefined {
    if (t.kind !== 'fwd' && t.stage === 0) return undefined; // the head's backward has no input gradient to pass on
    return keys.activation({
      run: this.cfg.name,
      epoch: t.epoch,
      sample: firstSample,
      stage: t.stage,
      direction: t.kind === 'fwd' ? 'fwd' : 'bwd',
      owner: miner,
      lease,
    });
  }

  /** The output key a lease must upload to (for the server to check the object before reporting). */
  expectedOutput(lease: string): string | undefined {
    const t = this.state.taskByLease(lease);
    if (!t || !t.miner) return undefined;
    return this.outputKey(t, t.first_sample, t.miner, lease);
  }

  /** Upload URLs for a lease's output expire with the lease; refused when it is not held. */
  leaseExpiry(miner: string, lease: string, now: number): number {
    const t = this.state.taskByLease(lease);
    if (!t || t.miner !== miner || t.state !== 'leased' || (t.expires ?? 0) < now)
      throw this.leaseLost(lease, t, miner, now);
    return t.expires!;
  }

  /** Why a lease is not the caller's to use any more, in words a miner's log can show. */
  private leaseLost(lease: string, t: TaskRow | undefined, miner: string, now: number): HttpError {
    const hint = 'the item is gone from you; ask for new work (POST /v1/work)';
    if (!t || t.miner !== miner)
      return new HttpError('E_LEASE_LOST', `lease ${lease} is not held by you`, hint);
    if (t.state === 'void')
      return new HttpError(
        'E_LEASE_LOST',
        `item ${t.item} was dropped while you held lease ${lease} (another miner refused its input, or a check failed it)`,
        hint,
      );
    if (t.state !== 'leased')
      return new HttpError('E_LEASE_LOST', `lease ${lease} was already reported`, hint);
    return new HttpError(
      'E_LEASE_LOST',
      `lease ${lease} expired ${now - (t.expires ?? now)} ms ago and its item went back to the queue`,
      'send heartbeats while computing (a miner does, every lease_s / 3)',
    );
  }

  report(
    miner: string,
    body: ReportBody,
    output: { size: number; sha256?: string } | undefined,
    now: number,
  ): { item: number; stage: number; kind: TaskKind; credited: number } {
    const m = this.member(miner);
    const t = this.state.taskByLease(body.lease);
    if (!t || t.miner !== miner) throw this.leaseLost(body.lease, t, miner, now);
    const st = this.state.stage(t.stage);
    if (st.epoch !== t.epoch || st.phase !== 'training')
      throw this.phaseClosed(
        st,
        `epoch ${t.epoch} closed for stage ${t.stage} before this report`,
        now,
      );
    if (t.state !== 'leased' || (t.expires ?? 0) < now)
      throw this.leaseLost(body.lease, t, miner, now);

    const key = this.outputKey(t, t.first_sample, miner, body.lease);
    let out: ObjectRef | null = null;
    if (key) {
      if (!body.output)
        throw new HttpError(
          'E_NO_OUTPUT',
          `a ${t.kind} item at stage ${t.stage} reports its output`,
          `upload it to ${key} first, then report its size and sha256`,
        );
      if (!output)
        throw new HttpError(
          'E_OUTPUT_MISSING',
          `no object at ${key}`,
          'upload the output before reporting it',
        );
      if (output.size !== body.output.size || output.sha256 !== body.output.sha256)
        throw new HttpError(
          'E_OUTPUT_MISMATCH',
          `the object at ${key} is not the one reported (size or sha256 differ)`,
        );
      out = { key, size: body.output.size, sha256: body.output.sha256 };
    } else if (body.output) {
      throw new HttpError('E_BAD_REQUEST', `a ${t.kind} item at stage ${t.stage} has no output`);
    }
    let loss: number | null = null;
    if (t.kind === 'tail') {
      const l = body.losses;
      if (!l || l.length !== t.n || !l.every((v) => Number.isFinite(v) && v >= 0)) {
        throw new HttpError(
          'E_BAD_LOSS',
          `a tail item reports ${t.n} finite, non-negative per-sample losses`,
        );
      }
      loss = l.reduce((a, b) => a + b, 0) / l.length;
    } else if (body.losses) {
      throw new HttpError('E_BAD_REQUEST', 'only tail items report losses');
    }

    const dt = Math.max(1, now - (t.leased_at ?? now)) / 1000;
    this.state.recordRate(
      miner,
      ewma(m.rate, (UNITS[t.kind] * t.n) / dt),
      t.kind === 'fwd' ? 0 : t.n,
      now,
    );

    let credited = 0;
    const done = { ...t, output: out, loss };
    if (t.kind === 'fwd') {
      // The miner keeps the input for the backward that comes back to it.
      this.state.finishTask(t, 'held', out, null, now);
      const gate = this.cfg.validation?.afterReport(done, miner, now) ?? null;
      const next = t.stage + 1;
      const kind: TaskKind = next === this.stages - 1 ? 'tail' : 'fwd';
      this.state.addTask(
        t.item,
        next,
        kind,
        t.epoch,
        t.first_sample,
        t.n,
        null,
        now,
        kind === 'tail' ? { x: out!, windows: this.state.item(t.item).windows } : { x: out! },
        gate,
      );
    } else {
      this.state.finishTask(t, 'done', out, loss, now);
      this.state.credit(t.item, t.stage, miner);
      credited = t.n;
      const gate = this.cfg.validation?.afterReport(done, miner, now) ?? null;
      if (t.kind === 'bwd') {
        const fwd = this.state.task(t.item, t.stage, 'fwd');
        if (fwd && fwd.state === 'held') this.state.setTaskState(fwd, 'done');
      }
      if (t.stage > 0) {
        const prev = this.state.task(t.item, t.stage - 1, 'fwd')!;
        this.state.addTask(
          t.item,
          t.stage - 1,
          'bwd',
          t.epoch,
          t.first_sample,
          t.n,
          prev.miner,
          now,
          { ...prev.input, dy: out! },
          gate,
        );
      }
      this.advanceStage(t.stage, now);
    }
    return { item: t.item, stage: t.stage, kind: t.kind, credited };
  }

  /**
   * A miner refuses an item whose input is bad (wrong hash, shape, size, or not finite): the
   * item is dropped at every stage where it is still open (`dropped:bad_input`), its tasks are
   * void, and the producer of that input is recorded for scoring.
   */
  refuse(
    miner: string,
    lease: string,
    code: string,
    message: string,
    now: number,
  ): { dropped: number } {
    this.member(miner);
    const t = this.state.taskByLease(lease);
    if (!t || t.miner !== miner || t.state !== 'leased') throw this.leaseLost(lease, t, miner, now);
    const producer =
      t.kind === 'bwd'
        ? this.state.task(t.item, t.stage + 1, t.stage + 1 === this.stages - 1 ? 'tail' : 'bwd')
        : t.stage > 0
          ? this.state.task(t.item, t.stage - 1, 'fwd')
          : undefined;
    const dropped = this.state.dropItem(t.item, 'dropped:bad_input');
    this.state.fault(
      t.epoch,
      producer?.stage ?? t.stage,
      producer?.miner ?? '(data)',
      'bad_output',
      `${code} from ${miner.slice(0, 8)} on item ${t.item}: ${message.slice(0, 200)}`,
      now,
    );
    for (let s = 0; s < this.stages; s++) this.advanceStage(s, now);
    return { dropped };
  }

  heartbeat(miner: string, now: number): { leases_renewed: number; lease_expires_at: number } {
    if (!this.state.member(miner)) return { leases_renewed: 0, lease_expires_at: now };
    this.state.seen(miner, now);
    const expires = now + this.leaseMs;
    return {
      leases_renewed: this.state.renewLeases(miner, now, expires),
      lease_expires_at: expires,
    };
  }

  // ---- gradient uploads (accepted in uploads.ts) ----------------------------------------

  gradientKey(epoch: number, stage: number, miner: string): string {
    return gradientKey(this.cfg.name, epoch, stage, miner);
  }

  // ---- time passes ---------------------------------------------------------------------

  /** Expires silent miners' leases, closes drained epochs and moves phases whose time has come. */
  tick(now: number): void {
    this.state.flushLiveness();
    this.cfg.validation?.tick?.(now);
    for (const t of this.state.expiredLeases(now)) {
      this.state.unlease(t, now);
      this.expiries++;
    }
    for (const ep of this.state.drainingEpochs()) {
      if (this.state.openCount(ep.epoch) === 0) {
        this.state.markDrained(ep.epoch, now);
      } else if (now >= ep.drain_deadline!) {
        this.state.dropOpen(ep.epoch, 'dropped:epoch_closed');
        this.state.voidEpochTasks(ep.epoch);
        this.state.markDrained(ep.epoch, now);
      }
    }
    for (let s = 0; s < this.stages; s++) this.advanceStage(s, now);
  }

  /** Moves one stage on as far as its state allows: TRAINING -> UPLOADING -> MERGING -> TRAINING. */
  advanceStage(stage: number, now: number): void {
    const st = this.state.stage(stage);
    const E = st.epoch;
    if (st.phase === 'training') {
      const ep = this.state.epoch(E);
      if (!ep || ep.closed_at === null || this.state.openCount(E, stage) > 0) return;
      if (this.state.credits(E, stage).length === 0)
        return this.abandon(st, 'no sample reached this stage in time', now);
      // The head's time from here to TRAINING(E+1) is the epoch's sync time (merge_ms sums end - start).
      if (stage === 0) this.state.addMergeTime(E, -now);
      this.state.putStage({
        ...st,
        phase: 'uploading',
        since: now,
        deadline: now + this.cfg.run.phases.upload_s * 1000,
        note: '',
      });
      return;
    }
    if (st.phase === 'uploading') {
      const credits = this.state.credits(E, stage);
      const uploads = this.state.gradients(E, stage);
      const next = uploadsNext(this, st, credits, uploads, now);
      if (next === 'close') return this.closeUploads(st, credits, uploads, now);
      if (next !== 'wait') return this.abandon(st, next.abandon, now, 'dropped:upload_failed');
      return;
    }
    // MERGING: the merge module calls finishMerge; at the deadline it may still deliver.
    if (now < st.deadline!) {
      this.cfg.merge?.tick?.(stage, E, now);
    } else {
      const manifest = this.cfg.merge?.atDeadline?.(stage, E, now);
      if (manifest) this.finishMerge(stage, E, manifest, now);
      else
        this.abandon(st, 'the merge did not finish by its deadline', now, 'dropped:merge_failed');
    }
  }

  private closeUploads(
    st: StageRow,
    credits: Array<{ miner: string; n: number }>,
    uploads: GradientRow[],
    now: number,
  ): void {
    const E = st.epoch;
    const uploaded = new Set(uploads.map((g) => g.miner));
    const late = credits.filter((c) => !uploaded.has(c.miner));
    this.state.moveLedger(E, st.stage, 'credited', 'uploaded', [...uploaded]);
    this.settleCredits(E, st.stage, late, 'dropped:upload_late', now);
    this.state.putStage({
      ...st,
      phase: 'merging',
      since: now,
      deadline: now + this.cfg.run.phases.merge_s * 1000,
      note: '',
    });
    this.cfg.validation?.uploadsClosed?.(st.stage, E, uploads, now);
    this.cfg.merge?.begin(
      st.stage,
      E,
      uploads.map((g) => ({
        miner: g.miner,
        key: g.key,
        size: g.size,
        sha256: g.sha256,
        n: g.n,
        partitions: g.partitions,
      })),
      now,
    );
  }

  /**
   * The merge published epoch E+1's weights for a stage: its samples are merged (those of
   * participants the merge excluded are dropped with the reason given), training goes on.
   */
  finishMerge(
    stage: number,
    epoch: number,
    manifest: ManifestRef,
    now: number,
    excluded: Record<string, string> = {},
  ): void {
    const st = this.state.stage(stage);
    if (st.phase !== 'merging' || st.epoch !== epoch)
      throw this.phaseClosed(st, `stage ${stage} is not merging epoch ${epoch}`, now);
    for (const [miner, reason] of Object.entries(excluded))
      this.state.moveLedger(epoch, stage, 'uploaded', `dropped:${reason}`, [miner]);
    this.state.moveLedger(epoch, stage, 'uploaded', 'merged');
    this.enterTraining(st, manifest, '', now);
  }

  /** The merge gave up (every participant excluded): the epoch is abandoned at that stage. */
  abandonMerge(stage: number, epoch: number, why: string, now: number): void {
    const st = this.state.stage(stage);
    if (st.phase !== 'merging' || st.epoch !== epoch) return;
    this.abandon(st, why, now, 'dropped:merge_failed');
  }

  /** Gives up epoch E at a stage, visibly: its replicas keep w_E and its samples are dropped. */
  private abandon(st: StageRow, why: string, now: number, dropAs = 'dropped:upload_failed'): void {
    const E = st.epoch;
    this.settleCredits(E, st.stage, this.state.credits(E, st.stage), dropAs, now);
    this.state.moveLedger(E, st.stage, 'uploaded', dropAs);
    this.enterTraining(
      st,
      st.manifest,
      `epoch ${E} abandoned: ${why}; weights stay at epoch ${st.manifest.epoch}`,
      now,
    );
  }

  /** Credited samples that will not be merged: lost with a silent miner, or dropped as `dropAs`. */
  private settleCredits(
    E: number,
    stage: number,
    credits: Array<{ miner: string }>,
    dropAs: string,
    now: number,
  ): void {
    const silent = credits.filter((c) => this.isSilent(c.miner, now)).map((c) => c.miner);
    const gone = new Set(silent);
    this.state.moveLedger(E, stage, 'credited', 'lost_with_miner', silent);
    this.state.moveLedger(
      E,
      stage,
      'credited',
      dropAs,
      credits.filter((c) => !gone.has(c.miner)).map((c) => c.miner),
    );
  }

  private enterTraining(st: StageRow, manifest: ManifestRef, note: string, now: number): void {
    const next = st.epoch + 1;
    if (st.stage === 0 && st.phase !== 'training') this.state.addMergeTime(st.epoch, now);
    this.state.putStage({
      stage: st.stage,
      epoch: next,
      phase: 'training',
      since: now,
      deadline: null,
      manifest,
      note,
    });
    this.state.putManifest(st.stage, next, manifest);
    this.cfg.validation?.stageAdvanced?.(st.stage, next, now);
    if (st.stage === 0) {
      this.state.startEpoch(next, now);
      for (const move of rebalance(this.loads(now))) {
        const m = this.state.member(move.miner)!;
        this.state.setMember(m.miner, m.stage, m.requested, move.to);
      }
    }
  }

  // ---- helpers -------------------------------------------------------------------------

  member(miner: string): MemberRow {
    const m = this.state.member(miner);
    if (!m)
      throw new HttpError(
        'E_NOT_JOINED',
        'you have not joined a stage of this run',
        'join first: POST /v1/join with {"layer": "auto"}',
      );
    return m;
  }

  /** A move decided at the epoch boundary happens once the miner's own stage is training again and it holds nothing. */
  private applyMove(m: MemberRow): MemberRow {
    if (m.next_stage === null) return m;
    if (this.state.stage(m.stage).phase !== 'training' || this.state.holdsWork(m.miner)) return m;
    this.state.setMember(m.miner, m.next_stage, m.requested, null);
    return { ...m, stage: m.next_stage, next_stage: null };
  }

  isSilent(miner: string, now: number): boolean {
    const m = this.state.member(miner);
    return !m || m.last_seen < now - this.leaseMs;
  }

  stageOrThrow(stage: number): StageRow {
    if (!Number.isInteger(stage) || stage < 0 || stage >= this.stages)
      throw new HttpError(
        'E_BAD_STAGE',
        `stage ${stage} does not exist; this run has stages 0..${this.stages - 1}`,
      );
    return this.state.stage(stage);
  }

  phaseClosed(st: StageRow, reason: string, now: number): HttpError {
    const phase = `${st.phase.toUpperCase()}(${st.epoch})`;
    return new HttpError(
      'E_PHASE_CLOSED',
      `stage ${st.stage} is in ${phase}: ${reason}`,
      `this phase accepts: ${PHASE_CALLS[st.phase].join('; ')}`,
      {
        phase,
        reason,
        server_time: now,
        ...(st.deadline !== null ? { next_change_at: st.deadline } : {}),
      },
    );
  }

  view(stage: number): StageView {
    const st = this.state.stage(stage);
    return {
      stage,
      epoch: st.epoch,
      phase: st.phase,
      since: st.since,
      ...(st.deadline !== null ? { deadline: st.deadline } : {}),
      manifest: st.manifest,
      ...(st.note ? { note: st.note } : {}),
    };
  }

  /** The run at a glance (status.ts builds it). */
  status(now: number, ledgerFrom?: number): SwarmStatus {
    return buildStatus(this, now, ledgerFrom);
  }
}
