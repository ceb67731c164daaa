/**
 * The orchestrator's side of validation (DESIGN.md section 5): which accepted work items a
 * validator replays, each miner's standing (new and quarantined miners are on probation: all
 * their items are replayed and their outputs wait for the verdict), verdicts and what a
 * failure costs, and the scores that turn verified work into incentive weights.
 */
import type { ModelConfig } from '../../config/model.js';
import type { RunConfig } from '../../config/run.js';
import { HttpError } from '../errors.js';
import type {
  GradientRow,
  ManifestRef,
  ObjectRef,
  SwarmState,
  TaskRow,
  WindowRef,
} from '../state/swarm.js';
import type { ValidationRow, ValidationState } from '../state/validation.js';
import { learningRate } from '../../model/schedule.js';
import type { ValidationHooks } from './contracts.js';
import type { Coordinator } from './coordinator.js';
import type { MergeAudit, MergeAuditInputs } from './merge.js';
import { Pathways } from './pathways.js';
import { UNITS } from './scheduler.js';

export interface ReplayItem {
  item: number;
  kind: 'bwd' | 'tail';
  samples: number[];
  windows?: WindowRef[];
  x?: ObjectRef;
  dy?: ObjectRef;
}

export interface ValidationTask {
  id: number;
  epoch: number;
  stage: number;
  item: number;
  kind: 'fwd' | 'bwd' | 'tail' | 'upload' | 'merge';
  miner: string;
  samples: number[];
  /** the weights the miner used: the stage's manifest for that epoch */
  weights: ManifestRef;
  windows?: WindowRef[];
  x?: ObjectRef;
  dy?: ObjectRef;
  /** what the miner reported: its output and, at the tail, its mean loss */
  output?: ObjectRef;
  loss?: number;
  /** how forward outputs travel (the replay encodes its own the same way before comparing) */
  codec: string;
  expires_at: number;
  gradient?: ObjectRef;
  items?: ReplayItem[];
  /** a merged partition (item is the partition): what the merger used and uploaded */
  merge?: MergeAuditInputs & { partition: number; lr: number; t: number };
}

export interface Score {
  miner: string;
  work_flops: number;
  failures: number;
  penalty_flops: number;
  score: number;
  weight: number;
  probation: boolean;
}

export class ValidationCoordinator implements ValidationHooks, MergeAudit {
  coordinator!: Coordinator;
  /** the merge's side, for spot checks of merged partitions */
  merges?: {
    auditInputs(
      epoch: number,
      stage: number,
      partition: number,
      merger: string,
    ): MergeAuditInputs | undefined;
  };
  private validatorsSeen = new Map<string, number>();
  /** pathway attribution: which miners' samples end with worse losses than their stage's */
  readonly pathways = new Pathways();

  constructor(
    readonly state: ValidationState,
    private readonly swarm: SwarmState,
    readonly cfg: { run: RunConfig; model: ModelConfig; params: number[] },
    private readonly random: () => number = Math.random,
  ) {}

  private get v() {
    return this.cfg.run.validation;
  }

  joined(miner: string): void {
    if (!this.state.standing(miner))
      this.state.putStanding({
        miner,
        probation: this.v.probation_passes > 0 ? 1 : 0,
        passes: 0,
        failures: 0,
        quarantined_at: null,
      });
  }

  /** Validators that asked for work lately: without one, nothing is held back waiting for them. */
  private validatorsLive(now: number): boolean {
    for (const t of this.validatorsSeen.values())
      if (t >= now - 2 * this.v.task_s * 1000) return true;
    return false;
  }

  afterReport(t: TaskRow, miner: string, now: number): number | null {
    if (t.kind === 'tail' && t.loss !== null) this.attribute(t, miner);
    if (t.kind === 'bwd' && t.stage === 0) return null; // the head's backward leaves nothing to compare
    const probation = this.state.standing(miner)?.probation === 1;
    const flagged = this.pathways.isFlagged(miner);
    if (!probation && !flagged && this.random() >= this.v.rate) return null;
    const id = this.state.add(
      t.epoch,
      t.stage,
      t.item,
      t.kind,
      miner,
      flagged ? 'attribution' : probation ? 'probation' : 'random',
      now,
    );
    return probation && this.validatorsLive(now) ? id : null;
  }

  /**
   * A tail's loss joins the pathway of its item: the miner of every stage's forward and the
   * tail's own. A miner newly flagged has its open random checks moved to the front.
   */
  private attribute(t: TaskRow, tailMiner: string): void {
    const S = this.swarm.stages().length;
    const path: string[] = [];
    for (let s = 0; s < S - 1; s++) {
      const fwd = this.swarm.task(t.item, s, 'fwd');
      if (!fwd?.miner) return;
      path.push(fwd.miner);
    }
    path.push(tailMiner);
    for (const miner of this.pathways.add(t.epoch, path, t.loss!)) this.state.promote(miner);
  }

  // ---- merges (MergeAudit) ----------------------------------------------------------------

  /** A merger's step-2 result: spot-checked at the random rate, always while on probation. */
  updated(epoch: number, stage: number, partition: number, merger: string, now: number): void {
    const probation = this.state.standing(merger)?.probation === 1;
    if (!probation && this.random() >= this.v.rate) return;
    this.state.add(
      epoch,
      stage,
      partition,
      'merge',
      merger,
      probation ? 'probation' : 'random',
      now,
    );
  }

  /** A merger's result lost a dispute the orchestrator settled by recomputing: a failed verdict of the orchestrator's. */
  disputed(
    epoch: number,
    stage: number,
    partition: number,
    merger: string,
    detail: string,
    now: number,
  ): void {
    const id = this.state.add(epoch, stage, partition, 'merge', merger, 'dispute', now);
    this.state.assign(id, 'orchestrator', now);
    this.fail(this.state.get(id)!, `merge dispute: ${detail}`, null, now);
  }

  /** Held-out windows an evaluation uses. */
  static readonly EVAL_WINDOWS = 16;

  /** When every stage trains epoch E (E a multiple of eval_every), the weights of E get evaluated. */
  stageAdvanced(_stage: number, epoch: number, now: number): void {
    const every = this.cfg.run.eval_every;
    if (every <= 0 || epoch % every !== 0 || !this.heldOut || this.heldOut.count === 0) return;
    if (this.swarm.stages().every((s) => s.epoch >= epoch)) this.state.addEval(epoch, now);
  }

  heldOut?: { count: number; window(j: number): WindowRef };

  evalTask(
    validator: string,
    now: number,
  ):
    { epoch: number; stages: ManifestRef[]; windows: WindowRef[]; expires_at: number } | undefined {
    this.validatorsSeen.set(validator, now);
    const epoch = this.state.openEval(now);
    if (epoch === undefined || !this.heldOut) return undefined;
    const stages = this.swarm.stages().map((s) => this.swarm.manifest(s.stage, epoch));
    if (stages.some((m) => !m)) return undefined;
    const expires = now + this.v.task_s * 1000;
    this.state.assignEval(epoch, validator, expires);
    const n = Math.min(this.heldOut.count, ValidationCoordinator.EVAL_WINDOWS);
    return {
      epoch,
      stages: stages as ManifestRef[],
      windows: Array.from({ length: n }, (_, j) => this.heldOut!.window(j)),
      expires_at: expires,
    };
  }

  evalDone(
    validator: string,
    epoch: number,
    loss: number,
    windows: number,
    now: number,
  ): { epoch: number } {
    const r = this.state.evalRow(epoch);
    if (!r || r.state !== 'assigned' || r.validator !== validator)
      throw new HttpError('E_NO_TASK', `the evaluation of epoch ${epoch} is not assigned to you`);
    this.state.finishEval(epoch, loss, windows, now);
    return { epoch };
  }

  evals(): Array<{ epoch: number; loss: number; windows: number; at: number }> {
    return this.state
      .recentEvals(10)
      .map((e) => ({ epoch: e.epoch, loss: e.loss, windows: e.windows, at: e.done_at }));
  }

  /** With probability upload_rate per miner, every sample credited to it will be replayed. */
  uploadsClosed(stage: number, epoch: number, uploads: GradientRow[], now: number): void {
    for (const g of uploads)
      if (this.random() < this.v.upload_rate)
        this.state.add(epoch, stage, -1, 'upload', g.miner, 'upload', now);
  }

  private uploadTask(
    r: ValidationRow,
    weights: ManifestRef,
    expires: number,
  ): ValidationTask | undefined {
    const g = this.swarm.gradient(r.epoch, r.stage, r.miner);
    if (!g) return undefined;
    const kind = r.stage === this.swarm.stages().length - 1 ? 'tail' : 'bwd';
    const items: ReplayItem[] = [];
    for (const item of this.swarm.creditedItems(r.epoch, r.stage, r.miner)) {
      const t = this.swarm.task(item, r.stage, kind);
      if (!t) return undefined;
      items.push({
        item,
        kind,
        samples: Array.from({ length: t.n }, (_, i) => t.first_sample + i),
        ...t.input,
      });
    }
    return {
      id: r.id,
      epoch: r.epoch,
      stage: r.stage,
      item: -1,
      kind: 'upload',
      miner: r.miner,
      samples: [],
      weights,
      codec: 'f32',
      expires_at: expires,
      gradient: { key: g.key, size: g.size, sha256: g.sha256 },
      items,
    };
  }

  tick(now: number): void {
    for (const r of this.state.expired(now)) this.state.reopen(r.id);
    for (const id of this.state.staleGates(now - this.v.task_s * 1000)) this.swarm.ungate(id, now);
  }

  /** Assigns up to `max` open tasks to a validator (never about its own work). */
  tasksFor(validator: string, max: number, now: number): ValidationTask[] {
    this.validatorsSeen.set(validator, now);
    const out: ValidationTask[] = [];
    for (const r of this.state.open(validator, max)) {
      const weights = this.swarm.manifest(r.stage, r.epoch);
      if (r.kind === 'merge') {
        const inputs = weights && this.merges?.auditInputs(r.epoch, r.stage, r.item, r.miner);
        if (!inputs) {
          this.state.decide(r.id, 'void', null, 'the merge result is gone', now);
          continue;
        }
        const expires = now + this.v.task_s * 1000;
        this.state.assign(r.id, validator, expires);
        const run = this.cfg.run;
        const merge = {
          ...inputs,
          partition: r.item,
          lr: learningRate(r.epoch, run.optimizer.lr, run.schedule),
          t: weights.step + 1,
        };
        out.push({
          id: r.id,
          epoch: r.epoch,
          stage: r.stage,
          item: r.item,
          kind: 'merge',
          miner: r.miner,
          samples: [],
          weights,
          codec: 'f32',
          expires_at: expires,
          merge,
        });
        continue;
      }
      if (r.kind === 'upload') {
        const expires = now + this.v.task_s * 1000;
        const task = weights && this.uploadTask(r, weights, expires);
        if (!task) {
          this.state.decide(r.id, 'void', null, 'the upload or its items are gone', now);
          continue;
        }
        this.state.assign(r.id, validator, expires);
        out.push(task);
        continue;
      }
      const t = this.swarm.task(r.item, r.stage, r.kind as TaskRow['kind']);
      if (!t || !weights || t.state === 'void') {
        this.state.decide(
          r.id,
          'void',
          null,
          'the item was dropped before it could be checked',
          now,
        );
        this.swarm.ungate(r.id, now);
        continue;
      }
      const expires = now + this.v.task_s * 1000;
      this.state.assign(r.id, validator, expires);
      const item = this.swarm.item(r.item);
      out.push({
        id: r.id,
        epoch: r.epoch,
        stage: r.stage,
        item: r.item,
        kind: t.kind,
        miner: r.miner,
        samples: Array.from({ length: t.n }, (_, i) => item.first_sample + i),
        weights,
        ...t.input,
        ...(t.output ? { output: t.output } : {}),
        ...(t.loss !== null ? { loss: t.loss } : {}),
        codec: t.kind === 'fwd' ? this.cfg.run.activation_codec : 'f32',
        expires_at: expires,
      });
    }
    return out;
  }

  /** `passed` null: the validator abstains (it could not judge); the miner is neither credited nor blamed. */
  verdict(
    validator: string,
    id: number,
    passed: boolean | null,
    relErr: number | null,
    detail: string,
    now: number,
  ): { state: string } {
    this.validatorsSeen.set(validator, now);
    const r = this.state.get(id);
    if (!r || r.state !== 'assigned' || r.validator !== validator)
      throw new HttpError(
        'E_NO_TASK',
        `validation ${id} is not assigned to you`,
        'ask for tasks again (POST /v1/validate/tasks)',
      );
    if (passed === null) {
      this.state.decide(id, 'void', relErr, `abstained: ${detail.slice(0, 480)}`, now);
      this.swarm.ungate(id, now);
      return { state: 'void' };
    }
    if (!passed) {
      this.fail(r, detail, relErr, now);
      return { state: 'failed' };
    }
    this.state.decide(id, 'passed', relErr, detail.slice(0, 500), now);
    const s = this.state.standing(r.miner) ?? {
      miner: r.miner,
      probation: 0,
      passes: 0,
      failures: 0,
      quarantined_at: null,
    };
    // Only work done after a quarantine counts towards the release from it.
    if (s.quarantined_at === null || r.created_at > s.quarantined_at) s.passes++;
    if (s.probation === 1 && s.passes >= this.v.probation_passes) s.probation = 0;
    this.state.putStanding(s);
    this.swarm.ungate(id, now);
    return { state: 'passed' };
  }

  /**
   * A failure: quarantine (probation again) and a penalty. For work items, the item is dropped
   * where still open and the miner's credit at that stage and epoch is void (its gradient sum
   * cannot be trusted); a bad merge result says nothing about the merger's gradient.
   */
  private fail(r: ValidationRow, detail: string, relErr: number | null, now: number): void {
    this.state.decide(r.id, 'failed', relErr, detail.slice(0, 500), now);
    const s = this.state.standing(r.miner) ?? {
      miner: r.miner,
      probation: 0,
      passes: 0,
      failures: 0,
      quarantined_at: null,
    };
    this.state.putStanding({
      ...s,
      probation: 1,
      passes: 0,
      failures: s.failures + 1,
      quarantined_at: now,
    });
    const what =
      r.kind === 'merge' ? `merge of partition ${r.item}` : `${r.kind} of item ${r.item}`;
    this.swarm.fault(
      r.epoch,
      r.stage,
      r.miner,
      'failed_validation',
      `${what}: ${detail.slice(0, 200)}`,
      now,
    );
    if (r.kind === 'merge') return;
    if (r.item >= 0) {
      this.swarm.setTaskState(
        { item: r.item, stage: r.stage, kind: r.kind as TaskRow['kind'] },
        'void',
      ); // failed work is no work
      this.swarm.dropItem(r.item, 'dropped:failed_validation');
    }
    this.swarm.moveLedger(r.epoch, r.stage, 'credited', 'dropped:failed_validation', [r.miner]);
    this.swarm.moveLedger(r.epoch, r.stage, 'uploaded', 'dropped:failed_validation', [r.miner]);
  }

  /** A miner's verdicts, oldest first: what was checked, by whom, and the numbers. */
  verdicts(
    miner: string,
    limit: number,
  ): Array<{
    id: number;
    epoch: number;
    stage: number;
    item: number;
    kind: string;
    reason: string;
    passed: boolean;
    by: string;
    rel_err: number | null;
    detail: string;
    at: number;
  }> {
    return this.state.decidedFor(miner, limit).map((r) => ({
      id: r.id,
      epoch: r.epoch,
      stage: r.stage,
      item: r.item,
      kind: r.kind,
      reason: r.reason,
      passed: r.state === 'passed',
      by: r.validator === 'orchestrator' ? 'orchestrator' : 'validator',
      rel_err: r.rel_err,
      detail: r.detail ?? '',
      at: r.done_at ?? r.created_at,
    }));
  }

  /** FLOPs of one sample of work: 2 per parameter per token forward, in units of the work kind. */
  private flops(stage: number, kind: string): number {
    return (
      2 * this.cfg.params[stage] * this.cfg.model.seq * (UNITS[kind as keyof typeof UNITS] ?? 1)
    );
  }

  /**
   * Scores over the last `window_epochs` epochs: work in FLOPs (from the config's shapes, so
   * costly stages pay more) minus `penalty_items` items' worth per failed verdict, clamped at
   * zero (a quarantined miner scores zero until released); weights are the normalised scores,
   * with `burn_fraction` to the owner.
   */
  scores(): { epoch_from: number; scores: Score[]; burn?: { owner: string; weight: number } } {
    const head = this.swarm.stage(0).epoch;
    const from = Math.max(0, head - this.v.window_epochs + 1);
    const work = new Map<string, number>();
    const perItem = new Map<string, number>();
    for (const w of this.state.work(from)) {
      work.set(w.miner, (work.get(w.miner) ?? 0) + w.samples * this.flops(w.stage, w.kind));
      perItem.set(
        w.miner,
        Math.max(perItem.get(w.miner) ?? 0, this.cfg.run.batch * this.flops(w.stage, w.kind)),
      );
    }
    const failures = this.state.failures(from);
    const standing = new Map(this.state.standings().map((s) => [s.miner, s]));
    const miners = [...new Set([...work.keys(), ...failures.keys()])].sort();
    const rows = miners.map((miner) => {
      const f = failures.get(miner) ?? 0;
      const penalty = f * this.v.penalty_items * (perItem.get(miner) ?? 0);
      const w = work.get(miner) ?? 0;
      const st = standing.get(miner);
      const quarantined = st?.probation === 1 && st.quarantined_at !== null;
      return {
        miner,
        work_flops: w,
        failures: f,
        penalty_flops: penalty,
        score: quarantined ? 0 : Math.max(0, w - penalty),
        weight: 0,
        probation: st?.probation === 1,
      };
    });
    const total = rows.reduce((a, r) => a + r.score, 0);
    const burn = this.v.owner ? this.v.burn_fraction : 0;
    for (const r of rows) r.weight = total > 0 ? ((1 - burn) * r.score) / total : 0;
    return {
      epoch_from: from,
      scores: rows,
      ...(this.v.owner ? { burn: { owner: this.v.owner, weight: total > 0 ? burn : 1 } } : {}),
    };
  }
}
