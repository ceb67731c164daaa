/**
 * The orchestrator's side of validation (DESIGN.md section 5): which accepted work items a
 * validator replays, each miner's standing (new and quarantined miners are on probation: all
 * their items are replayed and their outputs wait for the verdict), verdicts and what a
 * failure costs, and the scores that turn verified work into incentive weights.
 */
import type { ModelConfig } from '../../config/model.js';
import type { RunConfig } from '../../config/run.js';
import { lossBound } from '../../model/loss-bound.js';
import { HttpError } from '../errors.js';
import type { GradientRow, ManifestRef, SwarmState, TaskRow, WindowRef } from '../state/swarm.js';
import type { ValidationRow, ValidationState } from '../state/validation.js';
import type { MergeState } from '../state/merge.js';
import type { ValidationHooks } from './contracts.js';
import { mergeAuditInputs } from './merge-audit.js';
import type { MergeAudit } from './merge-types.js';
import type { ReplayItem, ValidationTask } from './validation-types.js';
import { Pathways } from './pathways.js';
import { minerScores, minerVerdicts, type Scores, type Verdict } from './scores.js';

export type { ReplayItem, ValidationTask } from './validation-types.js';
export type { Score } from './scores.js';

/**
 * Passes a miner on probation needs to be released: `base` for a new miner, doubling with every
 * failure it ever had, so a cheater that behaves only while watched is watched longer each time.
 */
export function passesToRelease(base: number, failures: number): number {
  return base * 2 ** Math.max(0, failures - 1);
}

/**
 * The share of a released miner's items that are checked: the run's rate, doubled for every
 * failure it ever had (so its faults weigh on it long after its quarantine), at most all.
 */
export function checkRate(rate: number, failures: number): number {
  return Math.min(1, rate * 2 ** failures);
}

export class ValidationCoordinator implements ValidationHooks, MergeAudit {
  private validatorsSeen = new Map<string, number>();
  /** pathway attribution: which miners' samples end with worse losses than their stage's */
  readonly pathways = new Pathways();

  /**
   * `merges` is the merge's state (spot checks of merged partitions read what a merger used),
   * `cfg.heldOut` the held-out windows evaluations run on.
   */
  constructor(
    readonly state: ValidationState,
    private readonly swarm: SwarmState,
    private readonly merges: MergeState | undefined,
    readonly cfg: {
      run: RunConfig;
      model: ModelConfig;
      params: number[];
      heldOut?: { count: number; window(j: number): WindowRef };
    },
    private readonly random: () => number = Math.random,
  ) {}

  private get heldOut() {
    return this.cfg.heldOut;
  }

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
    const standing = this.state.standing(miner);
    const probation = standing?.probation === 1;
    const flagged = this.pathways.isFlagged(miner);
    if (!probation && !flagged && this.random() >= checkRate(this.v.rate, standing?.failures ?? 0))
      return null;
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

  /** A merger's result lost a dispute the orchestrator settled by recomputing: a failed ' +
    'verdict of the orchestrator's. */
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
    const bound = lossBound(this.cfg.model.vocab_size);
    if (!(Number.isFinite(loss) && loss >= 0 && loss <= bound))
      throw new HttpError(
        'E_BAD_LOSS',
        `a held-out loss is at least 0 and at most ${bound.toFixed(2)} (10 ln vocab)`,
      );
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
    for (const item of this.swarm.ledger.creditedItems(r.epoch, r.stage, r.miner)) {
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
        const inputs =
          weights &&
          this.merges &&
          mergeAuditInputs(this.merges, r.epoch, r.stage, r.item, r.miner);
        if (!inputs) {
          this.state.decide(r.id, 'void', null, 'the merge result is gone', now);
          continue;
        }
        const expires = now + this.v.task_s * 1000;
        this.state.assign(r.id, validator, expires);
        const merge = { ...inputs, partition: r.item };
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
    if (s.probation === 1 && s.passes >= passesToRelease(this.v.probation_passes, s.failures))
      s.probation = 0;
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
    this.swarm.ledger.move(r.epoch, r.stage, 'credited', 'dropped:failed_validation', [r.miner]);
    this.swarm.ledger.move(r.epoch, r.stage, 'uploaded', 'dropped:failed_validation', [r.miner]);
  }

  /** A miner's verdicts, oldest first: what was checked, by whom, and the numbers. */
  verdicts(miner: string, limit: number): Verdict[] {
    return minerVerdicts(this.state, miner, limit);
  }

  /** Scores and incentive weights (scores.ts). */
  scores(): Scores {
    return minerScores(this.state, this.swarm.stage(0).epoch, this.cfg);
  }
}
