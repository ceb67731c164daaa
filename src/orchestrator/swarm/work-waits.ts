/**
 * Long polls of `POST /v1/work`: a miner that would get nothing now may ask to wait (`wait_ms`)
 * until something that concerns it changes, instead of asking again every 100 ms. What concerns
 * a miner is its stage's phase and epoch, the ready tasks of that epoch at its stage, the items
 * it holds, its membership and the head's allocation, and outside training its upload duty and
 * the merge jobs assigned to it (a miner whose gradient is in waits for the merge, and one whose
 * merge jobs are done waits for the next step or the new weights, instead of asking four times a
 * second): their signature is compared after every
 * group commit, and a waiter wakes when it differs (or at the time its idle answer names, or
 * after `wait_ms`). An item reaches the next stage one commit after its report, rather than at
 * the next poll; idle miners cost the orchestrator one request per change, not ten a second.
 *
 * Waking is a hint, never a promise: the woken request then asks `work` as any request does,
 * and a miner woken for a task another miner took gets an idle answer and asks again.
 */
import { EventEmitter } from 'node:events';
import type { Statement } from 'better-sqlite3';
import type { SwarmState } from '../state/swarm.js';
import type { SwarmSettings } from './contracts.js';
import { roomFor } from './leases.js';
import { whyIdle } from './work-queue.js';

interface Waiter {
  miner: string;
  signature: string;
  wake: () => void;
}

/** Emits 'wait' (a request began to wait) and 'wake' (one ended), with the miner's id. */
export class WorkWaits extends EventEmitter {
  private waiters = new Set<Waiter>();
  private readonly ready: Statement;
  private readonly mergeJobs: Statement;
  private closed = false;

  constructor(
    private readonly state: SwarmState,
    private readonly cfg: SwarmSettings,
    private readonly leaseMs: number,
  ) {
    super();
    this.ready = state.db.prepare(
      'SELECT count(*) AS n, total(item) AS items FROM tasks WHERE stage = ? AND epoch ' +
        "= ? AND state = 'ready' AND gate IS NULL",
    );
    // the jobs GET /v1/merge/jobs would give the miner: assigned, of its merge's current step
    this.mergeJobs = state.db.prepare(
      'SELECT count(*) AS n FROM merge_jobs j JOIN merges m ON m.epoch = j.epoch AND ' +
        'm.stage = j.stage AND m.round = j.round AND m.step = j.step ' +
        "WHERE j.merger = ? AND j.state = 'assigned'",
    );
  }

  /** Miners waiting now. */
  get size(): number {
    return this.waiters.size;
  }

  /**
   * Resolves when `work` may have something new for `miner`: at once when it would answer
   * with anything now (see `idleUntil`), else on a change of its signature, at the time its
   * idle answer names, or after `ms`, whichever comes first.
   */
  wait(miner: string, ms: number, now: number): Promise<void> {
    const until = this.idleUntil(miner, now);
    if (this.closed || until === undefined || ms <= 0) return Promise.resolve();
    const timeout = Math.max(0, Math.min(ms, until - now));
    if (timeout === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const w: Waiter = {
        miner,
        signature: this.signature(miner),
        wake: () => {
          clearTimeout(timer);
          this.waiters.delete(w);
          this.emit('wake', miner);
          resolve();
        },
      };
      const timer = setTimeout(w.wake, timeout);
      this.waiters.add(w);
      this.emit('wait', miner);
    });
  }

  /** After a group commit: wakes every waiter whose signature changed. */
  changed(): void {
    for (const w of [...this.waiters]) if (this.signature(w.miner) !== w.signature) w.wake();
  }

  /** Wakes everyone and takes no more waits (the server is closing). */
  close(): void {
    this.closed = true;
    for (const w of [...this.waiters]) w.wake();
  }

  /**
   * Undefined when `work` would answer this miner with something now (an item, an upload duty,
   * merge jobs, a move, a refusal); else until when nothing changes for it
   * without a commit (Infinity when only a commit can change it). Reads only.
   */
  idleUntil(miner: string, now: number): number | undefined {
    const { state, cfg } = this;
    const m = state.member(miner);
    if (!m || m.next_stage !== null) return undefined;
    const st = state.stage(m.stage);
    if (st.phase === 'uploading') {
      // its duty (a credit without a gradient) is an answer now; else the merge's start
      const duty =
        state.ledger.minerCredit(st.epoch, st.stage, miner) > 0 &&
        !state.gradient(st.epoch, st.stage, miner);
      return duty ? undefined : (st.deadline ?? Infinity);
    }
    if (st.phase === 'merging')
      return this.assignedMergeJobs(miner) > 0 ? undefined : (st.deadline ?? Infinity);
    if (state.readyPreferred(m.stage, st.epoch, miner)) return undefined;
    const room = roomFor(state, m, cfg.run.in_flight, st.epoch, this.leaseMs, now);
    if (state.heldItems(miner) < room) {
      const stale = now - this.leaseMs;
      if (state.readyBackward(m.stage, st.epoch, stale, stale)) return undefined;
      if (state.readyForward(m.stage, st.epoch)) return undefined;
      const ep = state.epoch(st.epoch);
      if (m.stage === 0 && ep && ep.allocated < cfg.run.samples_per_epoch) return undefined;
    }
    return whyIdle(state, cfg, m, st, room, now).next_change_at ?? Infinity;
  }

  /** What `work` answers this miner depends on, in one string. */
  private signature(miner: string): string {
    const m = this.state.member(miner);
    if (!m) return 'gone';
    const st = this.state.stage(m.stage);
    const ready = this.ready.get(m.stage, st.epoch) as { n: number; items: number };
    const ep = m.stage === 0 ? this.state.epoch(st.epoch) : undefined;
    return [
      m.stage,
      m.next_stage,
      m.lapses,
      st.phase,
      st.epoch,
      ready.n,
      ready.items,
      this.state.heldItems(miner),
      // the head also waits for room in the epoch's allocation
      ep?.allocated,
      st.phase === 'uploading'
        ? `${this.state.ledger.minerCredit(st.epoch, st.stage, miner)}/` +
          `${this.state.gradient(st.epoch, st.stage, miner) ? 1 : 0}`
        : '',
      st.phase === 'merging' ? this.assignedMergeJobs(miner) : '',
    ].join(' ');
  }

  private assignedMergeJobs(miner: string): number {
    return (this.mergeJobs.get(miner) as { n: number }).n;
  }
}
