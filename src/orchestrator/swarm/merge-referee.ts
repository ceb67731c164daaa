/**
 * The orchestrator as a merger of last resort, named `orchestrator`: it runs its own jobs
 * (breaking ties by recomputing a partition from the store it holds, and taking partitions
 * nobody live can take near the deadline), checks a merger's claim that an input cannot be
 * read (the liar, whichever side, loses), and publishes the next epoch's stage manifest once
 * every partition is agreed. It works outside any transaction, reading and writing the store;
 * its results are committed like anyone's.
 */
import { IotaError } from '../../errors.js';
import { decodeSlice, sliceRange } from '../../merge/gradient.js';
import {
  decodePartition,
  encodeManifest,
  encodePartition,
  MANIFEST_FORMAT,
  type StageManifest,
} from '../../merge/manifest.js';
import { reduceSlices } from '../../merge/reduce.js';
import { decodeOptimState, encodeOptimState, updatePartition } from '../../merge/update.js';
import { keys } from '../../store/keys.js';
import { sha256Hex } from '../../tensor-io/hash.js';
import type { JobRow, MergeRow } from '../state/merge.js';
import type { SwarmState } from '../state/swarm.js';
import type { MergeCoordinator } from './merge.js';
import { ORCHESTRATOR, type Reduced, type Updated } from './merge-types.js';

/** A participant's gradient slice that cannot be read, or is not what it declared. */
class UnusableInput extends Error {
  constructor(
    readonly participant: string,
    cause: Error,
  ) {
    super(`${participant.slice(0, 8)}'s input: ${cause.message}`);
  }
}

export class MergeReferee {
  private pumping: Promise<void> | undefined;

  /** `commit` runs a state change in the orchestrator's group commit. */
  constructor(
    private readonly m: MergeCoordinator,
    private readonly swarm: SwarmState,
    private readonly commit: <T>(fn: () => T) => Promise<T>,
    private readonly clock: () => number,
  ) {}

  pump(): Promise<void> {
    this.pumping ??= this.pumpOnce().finally(() => (this.pumping = undefined));
    return this.pumping;
  }

  private async pumpOnce(): Promise<void> {
    for (const m of this.m.state.active()) {
      const st = this.swarm.stage(m.stage);
      if (st.phase !== 'merging' || st.epoch !== m.epoch) continue; // abandoned at its deadline
      if (m.step === 3) {
        await this.publish(m);
        continue;
      }
      const step = m.step as 1 | 2;
      for (const j of this.m.state.jobsPending(m, step, ORCHESTRATOR)) {
        if (j.state === 'unavailable') await this.checkClaim(m, j);
        else if (j.merger === ORCHESTRATOR && j.state === 'assigned')
          await this.runOwnJob(m, step, j.partition);
      }
    }
  }

  /**
   * Every participant's slice of a partition, checked against its declared hash; a slice that
   * cannot be read or checked for any reason is that participant's fault (UnusableInput).
   */
  private async slices(
    m: MergeRow,
    partition: number,
  ): Promise<Array<{ miner: string; data: Float32Array }>> {
    const p = m.plan.partitions[partition];
    const range = sliceRange(m.plan.params, p.offset, p.length);
    return Promise.all(
      m.plan.participants.map(async (q) => {
        try {
          const bytes = await this.m.store.get(q.key, range);
          if (sha256Hex(bytes) !== q.partitions[partition])
            throw new IotaError(
              'E_HASH_MISMATCH',
              `partition ${partition} of ${q.key} does not match its declared hash`,
            );
          return { miner: q.miner, data: decodeSlice(bytes, p.length) };
        } catch (e) {
          throw new UnusableInput(q.miner, e as Error);
        }
      }),
    );
  }

  private async runOwnJob(m: MergeRow, step: 1 | 2, partition: number): Promise<void> {
    try {
      const red = reduceSlices(await this.slices(m, partition), m.plan.N);
      let result: Reduced | Updated = {
        sha256: red.sha256,
        norm2: red.norm2,
        slice_norms2: red.sliceNorms2,
      };
      if (step === 2) {
        const job = await this.m.describe(m, 2, partition, ORCHESTRATOR, this.clock());
        const p = m.plan.partitions[partition];
        const wE = decodePartition(await this.m.store.get(job.w!.key), p.length);
        const prev = job.optim
          ? decodeOptimState(await this.m.store.get(job.optim.key), p.length)
          : undefined;
        const o = this.m.cfg.run.optimizer;
        const u = updatePartition(
          wE,
          red.gbar,
          prev,
          p.offset,
          this.m.cfg.layouts[m.stage],
          { lr: job.lr!, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weight_decay },
          job.t!,
          job.clip_factor!,
        );
        // The orchestrator always writes what it computes (it is never a witness).
        const out = this.m.outputKeys(m.epoch, m.stage, partition, ORCHESTRATOR);
        const w = await this.m.store.put(out.w, encodePartition(u.w, p.offset));
        const opt = await this.m.store.put(out.optim, encodeOptimState(u.m, u.v, p.offset));
        result = {
          w: { key: w.key, size: w.size, sha256: w.sha256! },
          optim: { key: opt.key, size: opt.size, sha256: opt.sha256! },
        };
      }
      await this.commit(() => {
        const cur = this.m.state.merge(m.epoch, m.stage);
        if (!cur || cur.round !== m.round || cur.step !== step) return;
        const j = this.m.state.job(cur, step, partition, ORCHESTRATOR);
        if (!j || j.state !== 'assigned') return;
        this.m.state.setJob(j, 'done', result, this.clock());
        this.m.settle(cur, step, partition, this.clock());
      });
    } catch (e) {
      this.m.log(
        `merge e${m.epoch} stage ${m.stage}: the orchestrator could not merge partition ` +
          `${partition}: ${(e as Error).message}`,
      );
      // A participant's input that the orchestrator itself cannot use: it is out, with a fault,
      // and the merge goes on without it (never retried). Anything else is tried again.
      if (e instanceof UnusableInput) {
        const who = e.participant;
        await this.commit(() => {
          const cur = this.m.state.merge(m.epoch, m.stage);
          if (!cur || cur.round !== m.round) return;
          const now = this.clock();
          this.m.state.fault(
            m.epoch,
            m.stage,
            who,
            'input_unavailable',
            e.message.slice(0, 200),
            now,
          );
          this.m.replan(cur, { [who]: 'input_unavailable' }, now);
        });
      }
    }
  }

  /** A merger says an input cannot be read: check it; the liar, whichever side, loses. */
  private async checkClaim(m: MergeRow, j: JobRow): Promise<void> {
    const { participant } = j.result as { participant: string };
    const q = m.plan.participants.find((p) => p.miner === participant)!;
    const p = m.plan.partitions[j.partition];
    let readable = true;
    try {
      const bytes = await this.m.store.get(q.key, sliceRange(m.plan.params, p.offset, p.length));
      readable = sha256Hex(bytes) === q.partitions[j.partition];
      if (readable) decodeSlice(bytes, p.length);
    } catch {
      readable = false;
    }
    await this.commit(() => {
      const now = this.clock();
      const cur = this.m.state.merge(m.epoch, m.stage);
      if (!cur || cur.round !== m.round) return;
      this.m.state.setJob(j, 'reassigned', j.result, now);
      if (!readable) {
        this.m.state.fault(
          m.epoch,
          m.stage,
          participant,
          'input_unavailable',
          `partition ${j.partition} of its gradient cannot be read or does not match its hash`,
          now,
        );
        this.m.replan(cur, { [participant]: 'input_unavailable' }, now);
      } else {
        this.m.state.fault(
          m.epoch,
          m.stage,
          j.merger,
          'false_unavailable',
          `claimed ${participant.slice(0, 8)}'s partition ${j.partition} unreadable; it is not`,
          now,
        );
        this.m.state.assign(cur, j.step, j.partition, ORCHESTRATOR, now);
      }
    });
  }

  private async publish(m: MergeRow): Promise<void> {
    const st = this.swarm.stage(m.stage);
    const prev = await this.m.manifest(st.manifest);
    const results = this.m.state.results<Updated>(m, 2);
    const manifest: StageManifest = {
      format: MANIFEST_FORMAT,
      version: 1,
      run: this.m.cfg.name,
      stage: m.stage,
      epoch: m.epoch + 1,
      step: prev.step + 1,
      params: m.plan.params,
      grad_norm: Math.sqrt(m.norm2 ?? 0),
      clip_factor: m.clip_factor ?? 1,
      partitions: m.plan.partitions.map((p) => {
        const r = results.get(p.index)!;
        return {
          index: p.index,
          offset: p.offset,
          length: p.length,
          key: r.w.key,
          size: r.w.size,
          sha256: r.w.sha256,
          optim: r.optim,
        };
      }),
    };
    const key = keys.manifest({ run: this.m.cfg.name, epoch: m.epoch + 1, stage: m.stage });
    const info = await this.m.store.put(key, encodeManifest(manifest));
    this.m.remember(key, manifest);
    await this.commit(() => {
      const cur = this.m.state.merge(m.epoch, m.stage);
      if (!cur || cur.step !== 3) return;
      const ref = {
        key,
        size: info.size,
        sha256: info.sha256!,
        epoch: m.epoch + 1,
        step: manifest.step,
      };
      this.m.published(cur, ref);
    });
    this.m.log(`merge e${m.epoch} stage ${m.stage}: published ${key}`);
  }
}
