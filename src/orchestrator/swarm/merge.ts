/**
 * The orchestrator's side of MERGING (DESIGN.md section 4): it plans the merge when uploads
 * close, hands out jobs (step 1: reduce a partition's gradient slices; step 2: clip and AdamW
 * on it), checks that the r results of every partition are byte-identical, computes the global
 * clip factor between the steps, filters participants with absurd gradient norms, re-assigns
 * the jobs of mergers that go silent, and records how the merge ended (the coordinator moves
 * the stage on from there).
 *
 * The orchestrator is itself a merger of last resort, named `orchestrator` (merge-referee.ts):
 * it breaks ties, checks claims that an input is unreadable, takes partitions nobody live can
 * take, and publishes the manifest.
 */
import { IotaError } from '../../errors.js';
import { sliceRange } from '../../merge/gradient.js';
import { parseManifest, partitionElements, type StageManifest } from '../../merge/manifest.js';
import { makePlan, type MergePlan, type PlanParticipant } from '../../merge/plan.js';
import { clipFactor } from '../../model/optimizer.js';
import { learningRate } from '../../model/schedule.js';
import { keys, type ObjectStore } from '../../store/index.js';
import { sha256Hex } from '../../tensor-io/hash.js';
import type { JobRow, MergeOutcome, MergeRow, MergeState } from '../state/merge.js';
import type { ManifestRef, ObjectRef, SwarmState } from '../state/swarm.js';
import type { MergeHooks, MergeParticipant } from './contracts.js';
import {
  ORCHESTRATOR,
  type MergeAudit,
  type MergeJob,
  type MergeSettings,
  type Reduced,
  type Updated,
} from './merge-types.js';
import { MergeTraffic } from './merge-traffic.js';
import { isSilent } from './require.js';

export { ORCHESTRATOR } from './merge-types.js';
export type { MergeJob, MergeSettings, Reduced, Updated } from './merge-types.js';

export class MergeCoordinator implements MergeHooks {
  /** parsed manifests by key, the newest few per stage (the referee adds the ones it publishes) */
  readonly manifests = new Map<string, StageManifest>();
  readonly traffic = new MergeTraffic();
  private readonly leaseMs: number;

  constructor(
    readonly state: MergeState,
    private readonly swarm: SwarmState,
    readonly cfg: MergeSettings,
    readonly store: ObjectStore,
    private readonly audit?: MergeAudit,
    readonly log: (s: string) => void = () => {},
  ) {
    this.leaseMs = cfg.run.phases.lease_s * 1000;
  }

  private get elements(): number {
    return partitionElements(this.cfg.run.merge.partition_bytes);
  }

  // ---- hooks (inside the coordinator's transaction) -------------------------------------

  begin(stage: number, epoch: number, participants: MergeParticipant[], now: number): void {
    const plan = this.plan(stage, epoch, participants);
    const m: MergeRow = {
      epoch,
      stage,
      round: 0,
      step: 1,
      plan,
      excluded: {},
      norm2: null,
      clip_factor: null,
      started_at: now,
      ...this.stepOf(stage, epoch),
      outcome: null,
    };
    this.state.put(m);
    this.assignAll(m, 1, now);
  }

  /**
   * The optimizer step this merge takes, computed once when it begins: the epoch's learning
   * rate and the step count t (one more than the weights' it updates).
   */
  private stepOf(stage: number, epoch: number): { lr: number; t: number } {
    const run = this.cfg.run;
    const t = this.swarm.stage(stage).manifest.step + 1;
    return { lr: learningRate(epoch, run.optimizer.lr, run.schedule), t };
  }

  /** Merges begun by an orchestrator before merges kept their step get it (once, at start). */
  fillSteps(): void {
    for (const m of this.state.active())
      if (m.lr === null || m.t === null) this.state.put({ ...m, ...this.stepOf(m.stage, m.epoch) });
  }

  outcome(stage: number, epoch: number): MergeOutcome | undefined {
    return this.state.merge(epoch, stage)?.outcome ?? undefined;
  }

  /** The referee published the manifest of an agreed merge: the merge is over. */
  published(m: MergeRow, manifest: ManifestRef): void {
    this.state.put({ ...m, step: 4, outcome: { manifest, excluded: m.excluded } });
  }

  private plan(stage: number, epoch: number, participants: PlanParticipant[]): MergePlan {
    return makePlan({
      runSeed: this.cfg.run.seed,
      epoch,
      stage,
      params: this.cfg.params[stage],
      partitionElements: this.elements,
      replicas: this.cfg.run.merge.replicas,
      participants,
    });
  }

  private assignAll(m: MergeRow, step: 1 | 2, now: number): void {
    // In step 2 one merger writes each partition and the others witness it: the objects are
    // uploaded once, their hashes compared r times. The writer is the merger with the fewest
    // writes so far, so each uploads its share.
    const writes = new Map<string, number>();
    for (const p of m.plan.partitions) {
      const mergers = step === 1 ? p.mergers : this.stepTwoMergers(m, p.index);
      let writer = mergers[p.index % mergers.length];
      for (const x of mergers) if ((writes.get(x) ?? 0) < (writes.get(writer) ?? 0)) writer = x;
      writes.set(writer, (writes.get(writer) ?? 0) + 1);
      for (const miner of mergers)
        this.state.assign(m, step, p.index, miner, now, step === 1 || miner === writer);
    }
  }

  /** Step 2 goes to the mergers whose step-1 result agreed (they hold Gbar_p), else the orchestrator. */
  private stepTwoMergers(m: MergeRow, partition: number): string[] {
    const agreed = this.state.result<Record<string, unknown>>(m, 1, partition);
    const want = agreed && this.resultHash(1, agreed);
    const good = this.state
      .jobsAt(m, 1, partition)
      .filter(
        (j) =>
          j.state === 'done' && j.merger !== ORCHESTRATOR && this.resultHash(1, j.result!) === want,
      )
      .map((j) => j.merger);
    return good.length > 0 ? good.slice(0, m.plan.replicas) : [ORCHESTRATOR];
  }

  tick(stage: number, epoch: number, now: number): void {
    const m = this.state.merge(epoch, stage);
    if (!m || m.step > 2) return;
    const step = m.step;
    const jobs = this.state.jobs(m, step);
    // Late in the phase the orchestrator takes every partition still open, so the deadline is met.
    const st = this.swarm.stage(stage);
    if (st.deadline !== null && now >= st.deadline - 0.2 * this.cfg.run.phases.merge_s * 1000) {
      const taken = new Set(jobs.filter((j) => j.merger === ORCHESTRATOR).map((j) => j.partition));
      for (const p of m.plan.partitions) {
        if (this.state.result(m, step, p.index) || taken.has(p.index)) continue;
        this.state.assign(m, step, p.index, ORCHESTRATOR, now);
        this.log(
          `merge e${epoch} stage ${stage}: the deadline nears; the orchestrator merges ` +
            `partition ${p.index} step ${step}`,
        );
      }
      return;
    }
    for (const j of jobs) {
      if (
        j.state !== 'assigned' ||
        j.merger === ORCHESTRATOR ||
        !isSilent(this.swarm, j.merger, this.leaseMs, now)
      )
        continue;
      this.state.setJob(j, 'reassigned', null, now);
      const busy = new Set(
        jobs
          .filter((o) => o.partition === j.partition && o.state !== 'reassigned')
          .map((o) => o.merger),
      );
      const load = new Map<string, number>();
      for (const o of jobs)
        if (o.state === 'assigned') load.set(o.merger, (load.get(o.merger) ?? 0) + 1);
      const candidates = m.plan.participants
        .map((p) => p.miner)
        .filter((id) => !busy.has(id) && !isSilent(this.swarm, id, this.leaseMs, now))
        .sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0) || (a < b ? -1 : 1));
      const to = candidates[0] ?? ORCHESTRATOR;
      // The replacement takes the silent merger's part, writer or witness; the orchestrator
      // always writes what it computes.
      if (!busy.has(to))
        this.state.assign(m, step, j.partition, to, now, to === ORCHESTRATOR || j.writes === 1);
      this.log(
        `merge e${epoch} stage ${stage}: ${j.merger.slice(0, 8)} went silent; partition ` +
          `${j.partition} step ${step} goes to ${to.slice(0, 8)}`,
      );
    }
  }

  // ---- miners' calls --------------------------------------------------------------------

  /** Where a merger of epoch E's step 2 uploads a partition's new weights and moments. */
  outputKeys(epoch: number, stage: number, partition: number, miner: string) {
    const at = { run: this.cfg.name, epoch: epoch + 1, stage, partition, owner: miner };
    return { w: keys.merged(at), optim: keys.optimizer(at) };
  }

  async describe(
    m: MergeRow,
    step: 1 | 2,
    partition: number,
    miner: string,
    now: number,
  ): Promise<MergeJob> {
    const p = m.plan.partitions[partition];
    const st = this.swarm.stage(m.stage);
    const job: MergeJob = {
      epoch: m.epoch,
      stage: m.stage,
      round: m.round,
      step,
      partition,
      offset: p.offset,
      length: p.length,
      N: m.plan.N,
      inputs: m.plan.participants.map((q) => ({
        miner: q.miner,
        key: q.key,
        ...sliceRange(m.plan.params, p.offset, p.length),
        sha256: q.partitions[partition],
      })),
      deadline: st.deadline ?? now,
    };
    if (step === 2) {
      const manifest = await this.manifest(st.manifest);
      const entry = manifest.partitions[partition];
      const writes = this.state.job(m, 2, partition, miner)?.writes !== 0;
      Object.assign(job, {
        gbar_sha256: this.state.result<Reduced>(m, 1, partition)!.sha256,
        clip_factor: m.clip_factor!,
        lr: m.lr!,
        t: m.t!,
        w: { key: entry.key, size: entry.size, sha256: entry.sha256 },
        ...(entry.optim ? { optim: entry.optim } : {}),
        ...(writes ? { outputs: this.outputKeys(m.epoch, m.stage, partition, miner) } : {}),
      });
    }
    return job;
  }

  // ---- agreement ------------------------------------------------------------------------

  /**
   * What the r results of a partition must agree on, byte for byte: in step 1 the mean's hash
   * and every number reported with it (the norms decide clipping and exclusions, so they are
   * as much the result as the mean), in step 2 the uploaded objects' hashes.
   */
  private resultHash(step: number, r: Record<string, unknown>): string {
    if (step === 2)
      return `${(r as unknown as Updated).w.sha256}/${(r as unknown as Updated).optim.sha256}`;
    const red = r as unknown as Reduced;
    const norms = Object.entries(red.slice_norms2).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return sha256Hex(new TextEncoder().encode(JSON.stringify([red.sha256, red.norm2, norms])));
  }

  /** Decides a partition's result once enough jobs are done; a dispute brings in the orchestrator. */
  settle(m: MergeRow, step: 1 | 2, partition: number, now: number): void {
    if (this.state.result(m, step, partition)) return;
    const jobs = this.state.jobsAt(m, step, partition).filter((j) => j.state !== 'reassigned');
    const done = jobs.filter((j) => j.state === 'done');
    const orch = done.find((j) => j.merger === ORCHESTRATOR);
    const orchAssigned = jobs.some((j) => j.merger === ORCHESTRATOR);
    let agreed: JobRow | undefined;
    if (orch) {
      agreed = orch;
    } else if (!orchAssigned && done.length > 0 && done.length === jobs.length) {
      // Every merger assigned has answered (r of them, or fewer after a dispute in step 1).
      const hashes = new Set(done.map((j) => this.resultHash(step, j.result!)));
      // A lone merger's step-1 numbers (they decide clipping and exclusions) have nobody to
      // agree with: the orchestrator reduces the partition too, and its result decides.
      const lone = step === 1 && done.length === 1;
      // Step 2's agreed result is one whose objects are in the store: a writer's.
      const stored = step === 1 ? done[0] : done.find((j) => j.writes === 1);
      if (hashes.size === 1 && !lone && stored) agreed = stored;
      else {
        this.state.assign(m, step, partition, ORCHESTRATOR, now);
        const why = lone
          ? 'checks the lone result'
          : hashes.size > 1
            ? 'results differ; the orchestrator recomputes it'
            : 'no merger wrote it; the orchestrator does';
        this.log(`merge e${m.epoch} stage ${m.stage}: partition ${partition} step ${step}: ${why}`);
      }
    }
    if (!agreed) return;
    const want = this.resultHash(step, agreed.result!);
    for (const j of done) {
      if (j.merger !== ORCHESTRATOR && this.resultHash(step, j.result!) !== want) {
        const detail =
          `partition ${partition} step ${step}: ` +
          `${this.resultHash(step, j.result!).slice(0, 16)} against the agreed ${want.slice(0, 16)}`;
        this.state.fault(m.epoch, m.stage, j.merger, 'merge_mismatch', detail, now);
        this.audit?.disputed(m.epoch, m.stage, partition, j.merger, detail, now);
      }
    }
    this.state.putResult(m, step, partition, agreed.result);
    if (this.state.results(m, step).size === m.plan.partitions.length) this.advance(m, step, now);
  }

  private advance(m: MergeRow, step: 1 | 2, now: number): void {
    if (step === 2) {
      this.state.put({ ...m, step: 3 });
      return;
    }
    const results = this.state.results<Reduced>(m, 1);
    // The Byzantine filter: a participant whose mean per-sample gradient norm is beyond the bound.
    const bound = this.cfg.run.merge.max_sample_grad_norm;
    const excluded: Record<string, string> = {};
    for (const p of m.plan.participants) {
      let sq = 0;
      for (const r of results.values()) sq += r.slice_norms2[p.miner];
      if (!(Math.sqrt(sq) / p.n <= bound)) excluded[p.miner] = 'gradient_norm';
    }
    if (Object.keys(excluded).length > 0) {
      for (const miner of Object.keys(excluded))
        this.state.fault(
          m.epoch,
          m.stage,
          miner,
          'gradient_norm',
          `mean per-sample gradient norm over ${bound}`,
          now,
        );
      this.replan(m, excluded, now);
      return;
    }
    let norm2 = 0;
    for (const r of [...results.entries()].sort((a, b) => a[0] - b[0])) norm2 += r[1].norm2;
    const factor = clipFactor(Math.sqrt(norm2), this.cfg.run.optimizer.clip);
    const next: MergeRow = { ...m, step: 2, norm2, clip_factor: factor };
    this.state.put(next);
    this.assignAll(next, 2, now);
  }

  /** A new round without some participants (their samples are dropped with the reason). */
  replan(m: MergeRow, drop: Record<string, string>, now: number): void {
    const excluded = { ...m.excluded, ...drop };
    const remaining = m.plan.participants.filter((p) => !(p.miner in excluded));
    if (remaining.length === 0) {
      const outcome = { failed: 'every participant was excluded from the merge' };
      this.state.put({ ...m, step: 4, excluded, outcome });
      return;
    }
    const next: MergeRow = {
      epoch: m.epoch,
      stage: m.stage,
      round: m.round + 1,
      step: 1,
      plan: this.plan(m.stage, m.epoch, remaining),
      excluded,
      norm2: null,
      clip_factor: null,
      started_at: m.started_at,
      lr: m.lr,
      t: m.t,
      outcome: null,
    };
    this.state.put(next);
    this.assignAll(next, 1, now);
    this.log(
      `merge e${m.epoch} stage ${m.stage}: re-planned without ${Object.keys(drop)
        .map((d) => d.slice(0, 8))
        .join(', ')}`,
    );
  }

  /** A stage manifest, read from the store once and checked against its hash. */
  async manifest(ref: ObjectRef): Promise<StageManifest> {
    let m = this.manifests.get(ref.key);
    if (!m) {
      const bytes = await this.store.get(ref.key);
      if (sha256Hex(bytes) !== ref.sha256)
        throw new IotaError('E_HASH_MISMATCH', `manifest ${ref.key} does not match its hash`);
      m = parseManifest(bytes);
      this.remember(ref.key, m);
    }
    return m;
  }

  /** Keeps a parsed manifest; the oldest go past a few per stage (a run has one per epoch). */
  remember(key: string, m: StageManifest): void {
    this.manifests.set(key, m);
    if (this.manifests.size > 8 * this.cfg.params.length)
      this.manifests.delete(this.manifests.keys().next().value!);
  }
}
