/**
 * Applies the phase machine (phases.ts) to the state: gathers each stage's facts, moves it on
 * until it stays, and does what each move means for the ledger, the merge and validation.
 * `advance` runs after every state change (the server's group commit calls it), `tick` when
 * time passes: leases expire, epochs drain, merges re-assign their jobs.
 */
import type { GradientRow, ManifestRef, StageRow, SwarmState } from '../state/swarm.js';
import type { SwarmHooks, SwarmSettings } from './contracts.js';
import { stageLoads } from './membership.js';
import { drainNext, nextPhase, type StageFacts, type Transition } from './phases.js';
import { isSilent } from './require.js';
import { rebalance } from './scheduler.js';

export class StageCycle {
  private readonly leaseMs: number;

  constructor(
    private readonly state: SwarmState,
    private readonly cfg: SwarmSettings,
    private readonly hooks: SwarmHooks,
  ) {
    this.leaseMs = cfg.run.phases.lease_s * 1000;
  }

  /** Epochs whose allocation closed drain until every sample is settled or their deadline. */
  drain(now: number): void {
    for (const ep of this.state.drainingEpochs()) {
      const next = drainNext(this.state.ledger.openCount(ep.epoch), ep.drain_deadline!, now);
      if (next === 'wait') continue;
      if (next === 'close') {
        this.state.ledger.dropOpen(ep.epoch, 'dropped:epoch_closed');
        this.state.voidEpochTasks(ep.epoch);
      }
      this.state.markDrained(ep.epoch, now);
    }
  }

  /** Lets every merging stage's merge act on the time (re-assignments, the deadline nearing). */
  tickMerges(now: number): void {
    for (const st of this.state.stages())
      if (st.phase === 'merging' && now < st.deadline!)
        this.hooks.merge?.tick?.(st.stage, st.epoch, now);
  }

  /** Moves every stage on as far as its state allows. */
  advance(now: number): void {
    for (const { stage } of this.state.stages()) {
      // Each move changes the phase or the epoch, so this ends; the bound only guards a bug.
      for (let moves = 0; moves < 8; moves++) {
        const st = this.state.stage(stage);
        const t = nextPhase(this.facts(st, now), this.cfg.run.phases, now);
        if (t.to === 'stay') break;
        this.apply(st, t, now);
      }
    }
  }

  private facts(st: StageRow, now: number): StageFacts {
    const E = st.epoch;
    if (st.phase === 'training') {
      const ep = this.state.epoch(E);
      const settled =
        !!ep && ep.closed_at !== null && this.state.ledger.openCount(E, st.stage) === 0;
      return { phase: 'training', settled, credited: settled ? this.credited(st) : 0 };
    }
    if (st.phase === 'uploading') {
      return {
        phase: 'uploading',
        since: st.since,
        deadline: st.deadline!,
        credits: this.state.ledger.credits(E, st.stage).map((c) => ({
          ...c,
          live: !isSilent(this.state, c.miner, this.leaseMs, now),
        })),
        uploads: this.state.gradients(E, st.stage),
      };
    }
    return {
      phase: 'merging',
      deadline: st.deadline!,
      merge: this.hooks.merge?.outcome(st.stage, E),
    };
  }

  private credited(st: StageRow): number {
    return this.state.ledger.credits(st.epoch, st.stage).reduce((a, c) => a + c.n, 0);
  }

  private apply(st: StageRow, t: Exclude<Transition, { to: 'stay' }>, now: number): void {
    switch (t.to) {
      case 'uploading':
        // The head's time from here to TRAINING(E+1) is the epoch's sync time (merge_ms sums end - start).
        if (st.stage === 0) this.state.addMergeTime(st.epoch, -now);
        this.state.putStage({
          ...st,
          phase: 'uploading',
          since: now,
          deadline: t.deadline,
          note: '',
        });
        return;
      case 'merging':
        return this.closeUploads(st, t.deadline, now);
      case 'trained':
        for (const [miner, reason] of Object.entries(t.excluded))
          this.state.ledger.move(st.epoch, st.stage, 'uploaded', `dropped:${reason}`, [miner]);
        this.state.ledger.move(st.epoch, st.stage, 'uploaded', 'merged');
        return this.enterTraining(st, t.manifest, '', now);
      case 'abandoned': {
        // Given up visibly: the replicas keep w_E, and the epoch's samples at this stage are dropped.
        const E = st.epoch;
        this.settleCredits(st, this.state.ledger.credits(E, st.stage), t.dropAs, now);
        this.state.ledger.move(E, st.stage, 'uploaded', t.dropAs);
        const note = `epoch ${E} abandoned: ${t.why}; weights stay at epoch ${st.manifest.epoch}`;
        return this.enterTraining(st, st.manifest, note, now);
      }
    }
  }

  private closeUploads(st: StageRow, deadline: number, now: number): void {
    const E = st.epoch;
    const uploads: GradientRow[] = this.state.gradients(E, st.stage);
    const uploaded = new Set(uploads.map((g) => g.miner));
    const late = this.state.ledger.credits(E, st.stage).filter((c) => !uploaded.has(c.miner));
    this.state.ledger.move(E, st.stage, 'credited', 'uploaded', [...uploaded]);
    this.settleCredits(st, late, 'dropped:upload_late', now);
    this.state.putStage({ ...st, phase: 'merging', since: now, deadline, note: '' });
    this.hooks.validation?.uploadsClosed?.(st.stage, E, uploads, now);
    this.hooks.merge?.begin(
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

  /** Credited samples that will not be merged: lost with a silent miner, or dropped as `dropAs`. */
  private settleCredits(
    st: StageRow,
    credits: Array<{ miner: string }>,
    dropAs: string,
    now: number,
  ): void {
    const silent = credits
      .filter((c) => isSilent(this.state, c.miner, this.leaseMs, now))
      .map((c) => c.miner);
    const gone = new Set(silent);
    const live = credits.filter((c) => !gone.has(c.miner)).map((c) => c.miner);
    this.state.ledger.move(st.epoch, st.stage, 'credited', 'lost_with_miner', silent);
    this.state.ledger.move(st.epoch, st.stage, 'credited', dropAs, live);
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
    this.hooks.validation?.stageAdvanced?.(st.stage, next, now);
    if (st.stage === 0) {
      this.state.startEpoch(next, now);
      const loads = stageLoads(this.state, this.cfg.costs, this.leaseMs, now);
      for (const move of rebalance(loads)) {
        const m = this.state.member(move.miner)!;
        this.state.setMember(m.miner, m.stage, m.requested, move.to);
      }
    }
  }
}
