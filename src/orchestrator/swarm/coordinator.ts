/**
 * The swarm's brain: stage membership, sample allocation, work items and their leases, the
 * sample ledger, and the stages' phases (DESIGN.md section 3). Every method is synchronous
 * and runs inside the caller's transaction; time comes in as `now`, so tests drive it with a
 * fake clock and no server. Requests change the state; `advance` (called after every change)
 * moves the phases on, and `tick` lets time pass.
 *
 * A work item is `batch` consecutive samples of one epoch. It flows forward through the stages
 * (`fwd` tasks, then one `tail` task that computes the loss and its backward at once) and back
 * (`bwd` tasks, tail -> head). The ledger has one row per (item, stage), counted in samples:
 * open -> credited (the miner holds the gradient) -> uploaded -> merged, or
 * lost_with_miner / dropped:<reason>.
 */
import { lossBound } from '../../model/loss-bound.js';
import { HttpError } from '../errors.js';
import type { ManifestRef, ObjectRef, SwarmState, TaskKind, TaskRow } from '../state/swarm.js';
import type { SwarmStatus } from '../../protocol/swarm-messages.js';
import type { ParsedKey } from '../../store/keys.js';
import type {
  ReportBody,
  StageView,
  SwarmHooks,
  SwarmSettings,
  WorkItem,
  WorkReply,
} from './contracts.js';
import {
  checkOutputUpload,
  expireLeases,
  heldLease,
  leaseLost,
  leaseTask,
  measureRates,
  outputKey,
  recordLapse,
  roomFor,
  workedOff,
} from './leases.js';
import { leaseDue } from './lease-policy.js';
import type { InputCheck } from './input-check.js';
import { allocate, whyIdle } from './work-queue.js';
import { applyMove, JoinLoads, stageLoads } from './membership.js';
import { phaseClosed } from './phases.js';
import { isSilent, requireMember, requireStage } from './require.js';
import { UNITS, ewma, type StageLoad } from './scheduler.js';
import { StageCycle } from './stage-cycle.js';
import { buildStatus, stageView } from './status.js';
import { GradientUploads } from './uploads.js';
import { WorkWaits } from './work-waits.js';

export class Coordinator {
  readonly stages: number;
  readonly leaseMs: number;
  /** lease expiries since start, for metrics */
  expiries = 0;
  /** each stage's median rate, measured every tick */
  private medians: Array<number | undefined> = [];
  /** leases given while no rate was known (their due is the fallback, tightened on ticks) */
  private readonly unmeasured = new Set<string>();
  /** gradient uploads in UPLOADING (the routes accept them through it) */
  readonly uploads: GradientUploads;
  /** long polls of `work` (work-waits.ts), woken after group commits */
  readonly waits: WorkWaits;
  private readonly cycle: StageCycle;
  private readonly joins = new JoinLoads((now) => this.loads(now));

  constructor(
    readonly state: SwarmState,
    readonly cfg: SwarmSettings,
    private readonly hooks: SwarmHooks = {},
  ) {
    this.stages = cfg.costs.length;
    this.leaseMs = cfg.run.phases.lease_s * 1000;
    this.uploads = new GradientUploads(state, cfg);
    this.cycle = new StageCycle(state, cfg, hooks);
    this.waits = new WorkWaits(state, cfg, this.leaseMs);
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
    if (requested !== 'auto') requireStage(this.state, this.stages, requested);
    const req = String(requested);
    const m = this.state.member(miner);
    if (!m) {
      const stage = requested === 'auto' ? this.joins.choose(miner, now) : requested;
      this.state.addMember(miner, stage, req, this.state.stage(0).epoch, now);
      this.hooks.validation?.joined?.(miner, now);
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
    return stageLoads(this.state, this.cfg.costs, this.leaseMs, now);
  }

  // ---- work ----------------------------------------------------------------------------

  work(miner: string, max: number, now: number): WorkReply {
    const m = applyMove(this.state, requireMember(this.state, miner));
    this.state.seen(miner, now);
    const st = this.state.stage(m.stage);
    const base: WorkReply = { ...this.view(m.stage), server_time: now, items: [] };
    if (st.phase !== 'training') {
      const duty = st.phase === 'uploading' ? this.uploads.duty(st, miner) : undefined;
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
    const room = roomFor(this.state, m, this.cfg.run.in_flight, st.epoch, this.leaseMs, now);
    const items: WorkItem[] = [];
    const rate = m.rate ?? this.medians[m.stage];
    let queued = this.state.heldItems(miner, 'leased');
    const lease = (t: TaskRow) => {
      const due = leaseDue(t.kind, t.n, rate, this.cfg.run.phases, now, queued++);
      const it = leaseTask(this.state, this.cfg.name, t, miner, now + this.leaseMs, due, now);
      if (rate === undefined) this.unmeasured.add(it.lease);
      return it;
    };
    // Backwards of items this miner forwarded come first and need no new room.
    for (
      let t = this.state.readyPreferred(m.stage, st.epoch, miner);
      t && items.length < max;
      t = this.state.readyPreferred(m.stage, st.epoch, miner)
    ) {
      items.push(lease(t));
    }
    while (items.length < max && this.state.heldItems(miner) < room) {
      const t =
        this.state.readyBackward(m.stage, st.epoch, now - this.leaseMs, now - this.leaseMs) ??
        this.state.readyForward(m.stage, st.epoch) ??
        (m.stage === 0 ? allocate(this.state, this.cfg, st.epoch, now) : undefined);
      if (!t) break;
      items.push(lease(t));
    }
    if (items.length > 0) return { ...base, items };
    return { ...base, idle: whyIdle(this.state, this.cfg, m, st, room, now) };
  }

  /** The output key a lease must upload to (for the server to check the object before reporting). */
  expectedOutput(lease: string): string | undefined {
    const t = this.state.taskByLease(lease);
    if (!t || !t.miner) return undefined;
    return outputKey(this.cfg.name, t, t.miner, lease);
  }

  /** Upload URLs for a lease's output expire with the lease; refused when it is not held. */
  leaseExpiry(miner: string, lease: string, now: number): number {
    return heldLease(this.state, miner, lease, now).expires!;
  }

  /**
   * The upload of a lease's output: only its output key, at its exact size, and the bytes its
   * first URL declared (leases.ts); `record` (in a transaction) remembers that declaration.
   */
  outputUpload(
    caller: string,
    key: Extract<ParsedKey, { kind: 'activation' }>,
    declared: { size: number; sha256: string },
    now: number,
    record = false,
  ): number {
    const expires = this.leaseExpiry(caller, key.lease, now);
    const t = checkOutputUpload(
      this.cfg,
      this.state.taskByLease(key.lease)!,
      caller,
      key,
      declared,
    );
    if (record && t.declared === null) this.state.declareOutput(t, declared.sha256);
    return expires;
  }

  report(
    miner: string,
    body: ReportBody,
    output: { size: number; sha256?: string } | undefined,
    now: number,
  ): { item: number; stage: number; kind: TaskKind; credited: number } {
    const m = requireMember(this.state, miner);
    const t = this.state.taskByLease(body.lease);
    if (!t || t.miner !== miner) throw leaseLost(body.lease, t, miner, now);
    const st = this.state.stage(t.stage);
    if (st.epoch !== t.epoch || st.phase !== 'training')
      throw phaseClosed(st, `epoch ${t.epoch} closed for stage ${t.stage} before this report`, now);
    if (t.state !== 'leased' || (t.expires ?? 0) < now) throw leaseLost(body.lease, t, miner, now);

    const key = outputKey(this.cfg.name, t, miner, body.lease);
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
      const bound = lossBound(this.cfg.model.vocab_size);
      if (!l || l.length !== t.n || !l.every((v) => Number.isFinite(v) && v >= 0 && v <= bound)) {
        throw new HttpError(
          'E_BAD_LOSS',
          `a tail item reports ${t.n} per-sample losses, each at least 0 and at most ${bound.toFixed(2)} (10 ln vocab)`,
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
    workedOff(this.state, miner);

    let credited = 0;
    const done = { ...t, output: out, loss };
    if (t.kind === 'fwd') {
      // The miner keeps the input for the backward that comes back to it.
      this.state.finishTask(t, 'held', out, null, now);
      const gate = this.hooks.validation?.afterReport(done, miner, now) ?? null;
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
      this.state.ledger.credit(t.item, t.stage, miner);
      credited = t.n;
      const gate = this.hooks.validation?.afterReport(done, miner, now) ?? null;
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
    found: InputCheck,
    now: number,
  ): { dropped: number; upheld: boolean } {
    requireMember(this.state, miner);
    const t = this.state.taskByLease(lease);
    if (!t || t.miner !== miner || t.state !== 'leased') throw leaseLost(lease, t, miner, now);
    if (found.ok) {
      // The input is good: the refusal is the refuser's fault, and the item goes to another.
      this.state.unlease(t, now);
      recordLapse(
        this.state,
        miner,
        t,
        'false_refusal',
        `refused ${t.kind} of item ${t.item} (${code}: ${message.slice(0, 120)}); its inputs are good`,
        now,
      );
      return { dropped: 0, upheld: false };
    }
    // The producer of the input that is bad: the next stage's backward for dy, the previous
    // stage's forward for x, nobody's for the data windows.
    const producer =
      found.input === 'dy'
        ? this.state.task(t.item, t.stage + 1, t.stage + 1 === this.stages - 1 ? 'tail' : 'bwd')
        : found.input === 'x'
          ? this.state.task(t.item, t.stage - 1, 'fwd')
          : undefined;
    const dropped = this.state.dropItem(t.item, 'dropped:bad_input');
    this.state.fault(
      t.epoch,
      producer?.stage ?? t.stage,
      producer?.miner ?? '(data)',
      'bad_output',
      `${code} from ${miner.slice(0, 8)} on item ${t.item}, confirmed: ${found.why.slice(0, 200)}`,
      now,
    );
    return { dropped, upheld: true };
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

  // ---- time passes ---------------------------------------------------------------------

  /** Time passes: silent miners' leases expire, epochs drain, merges act on the time. */
  tick(now: number): void {
    this.state.flushLiveness();
    this.hooks.validation?.tick?.(now);
    this.expiries += expireLeases(this.state, this.leaseMs, now);
    this.medians = measureRates(this.state, this.cfg, this.unmeasured, now);
    this.cycle.drain(now);
    this.cycle.tickMerges(now);
    this.advance(now);
  }

  /**
   * The orchestrator (re)started: leases in flight get their due time again from now, so its
   * own downtime is never counted as a miner's lapse.
   */
  resume(now: number): void {
    this.state.restartDues(now, this.leaseMs);
  }

  /** Moves every stage's phase on as far as the state allows (phases.ts decides). */
  advance(now: number): void {
    this.cycle.advance(now);
  }

  // ---- reading -------------------------------------------------------------------------

  isSilent(miner: string, now: number): boolean {
    return isSilent(this.state, miner, this.leaseMs, now);
  }

  view(stage: number): StageView {
    return stageView(this.state.stage(stage));
  }

  /** The run at a glance (status.ts builds it). */
  status(now: number, ledgerFrom?: number): SwarmStatus {
    return buildStatus(
      this.state,
      {
        name: this.cfg.name,
        target: this.cfg.run.samples_per_epoch,
        leaseMs: this.leaseMs,
        loads: this.loads(now),
        expiries: this.expiries,
        evals: this.hooks.validation?.evals?.() ?? [],
      },
      now,
      ledgerFrom,
    );
  }
}
