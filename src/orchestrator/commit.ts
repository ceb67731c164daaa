/**
 * Group commit of state changes. Each change runs in its own savepoint, so it commits or rolls
 * back alone, but the changes that arrive within one turn of the event loop share one SQLite
 * transaction: one commit instead of dozens under load. A change is acknowledged only after
 * the transaction that holds it has committed.
 *
 * `after` runs once per group, after its changes, in the same transaction (in a savepoint of
 * its own): the swarm moves its phases on there, so no request handler has to. `committed`
 * runs once the group has committed, before its changes are acknowledged (the swarm wakes its
 * long polls there).
 */
import type { WriteGate } from './state/checkpoint.js';
import type { Repository } from './state/repository.js';

interface Pending {
  fn: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class GroupCommitter implements WriteGate {
  private queue: Pending[] = [];
  private scheduled = false;
  private held = false;

  constructor(
    private readonly repo: Repository,
    private readonly hooks: {
      after?: () => void;
      committed?: () => void;
      onError?: (e: unknown) => void;
    } = {},
  ) {
    repo.useWriteGate(this);
  }

  /** No commit begins until `release` (the checkpointer restarts the WAL meanwhile); changes queue up. */
  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    if (this.queue.length > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    if (this.held) {
      this.scheduled = false; // `release` schedules the flush
      return;
    }
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    const outcomes: Array<{ ok: boolean; value: unknown }> = [];
    try {
      this.repo.transaction(() => {
        for (const p of batch) {
          try {
            outcomes.push({ ok: true, value: this.repo.transaction(p.fn) }); // nested: a savepoint
          } catch (e) {
            outcomes.push({ ok: false, value: e });
          }
        }
        if (this.hooks.after) this.runAfter(this.hooks.after);
      });
    } catch (e) {
      for (const p of batch) p.reject(e);
      return;
    }
    try {
      this.hooks.committed?.();
    } catch (e) {
      this.hooks.onError?.(e);
    }
    batch.forEach((p, i) =>
      outcomes[i].ok ? p.resolve(outcomes[i].value) : p.reject(outcomes[i].value),
    );
  }

  /** The hook's failure rolls back its own savepoint only: the group's changes still commit. */
  private runAfter(after: () => void): void {
    try {
      this.repo.transaction(after);
    } catch (e) {
      this.hooks.onError?.(e);
    }
  }
}
