/**
 * Retention (DESIGN.md section 7): an epoch's activations and gradient sums leave the store once
 * `keep_epochs` epochs have passed at every stage and no audit of the epoch is still open. An
 * audit no validator took within 4 x keep_epochs epochs no longer holds them back (a swarm with
 * no validator would otherwise keep everything; a validator taking it later finds its inputs gone
 * and abstains). The epoch's weights (merged partitions, moments, manifests) go with them unless
 * the epoch is a kept one: the initial weights, every `keep_weights_every`-th epoch (what
 * `iota export --epoch` reads later), and any epoch whose weights a stage still starts from (an
 * abandoned epoch keeps the weights before it). So do its rows that nothing reads once its
 * merges are over: the merges' plans, jobs and results, the gradient uploads, the audits nobody
 * took, and the work items' tasks once they are also out of the scores' window (`window_epochs`)
 * except the tail's, which keep their loss (the loss history reads it) and lose the rest; the
 * ledger, the items and the verdicts stay (about 10 KB per epoch of 24 samples). How far it got is kept
 * in the database (`run.pruned_below`), so a restart carries on where it stopped.
 */
import type { DB } from '../state/db.js';
import { keys, type ObjectStore } from '../../store/index.js';

/** Audits this many times keep_epochs old no longer hold an epoch's objects back. */
const AUDIT_PATIENCE = 4;

export interface Pruned {
  /** epochs whose activations and gradients were deleted this time */
  epochs: number[];
  objects: number;
}

export class Retention {
  private running = false;
  /** tasks of epochs below this one are gone, but the tail's (in memory: a restart looks again) */
  private tasksBelow = 0;

  constructor(
    private readonly db: DB,
    private readonly store: ObjectStore,
    private readonly run: string,
    private readonly policy: {
      keep_epochs: number;
      /** every n-th epoch's weights stay (0: none but the initial weights) */
      keep_weights_every: number;
      /** epochs the scores read the tasks of */
      window_epochs: number;
    },
    /** runs a write in the orchestrator's group commit */
    private readonly commit: (fn: () => void) => Promise<void>,
  ) {}

  /** The epochs below which everything prunable is gone, and the next to prune up to (excluded). */
  bounds(): { from: number; to: number; window?: number } {
    const { from } = this.db.prepare('SELECT pruned_below AS "from" FROM run').get() as {
      from: number;
    };
    const { current } = this.db.prepare('SELECT MIN(epoch) AS current FROM stages').get() as {
      current: number | null;
    };
    if (current === null) return { from, to: from };
    const { audit } = this.db
      .prepare(
        "SELECT MIN(epoch) AS audit FROM validations WHERE state IN ('open', 'assigned') AND epoch >= ?",
      )
      .get(current - AUDIT_PATIENCE * this.policy.keep_epochs) as { audit: number | null };
    const to = Math.min(current - this.policy.keep_epochs, audit ?? Infinity);
    return { from, to: Math.max(from, to), window: current - this.policy.window_epochs };
  }

  private keepsWeights(epoch: number): boolean {
    const every = this.policy.keep_weights_every;
    return epoch === 0 || (every > 0 && epoch % every === 0);
  }

  /** The epochs whose weights a stage starts an epoch from, at `to` or later. */
  private weightsInUse(to: number): Set<number> {
    const rows = this.db
      .prepare('SELECT manifest FROM manifests WHERE epoch >= ? UNION SELECT manifest FROM stages')
      .all(to) as Array<{ manifest: string }>;
    const epochs = new Set<number>();
    for (const r of rows) {
      try {
        epochs.add((JSON.parse(r.manifest) as { epoch: number }).epoch);
      } catch {
        // a stage row before its first manifest
      }
    }
    return epochs;
  }

  /** Deletes what may go; one call at a time (a second returns at once). */
  async prune(): Promise<Pruned> {
    const out: Pruned = { epochs: [], objects: 0 };
    if (this.running) return out;
    this.running = true;
    try {
      const { from, to, window } = this.bounds();
      const starts = this.weightsInUse(to);
      for (let epoch = from; epoch < to; epoch++) {
        const parts = ['act', 'grad'] as Array<'act' | 'grad' | 'merged' | 'optim' | 'stage'>;
        if (!this.keepsWeights(epoch) && !starts.has(epoch)) parts.push('merged', 'optim', 'stage');
        for (const part of parts)
          for (const o of await this.store.list(keys.epochWorkPrefix(this.run, epoch, part))) {
            await this.store.delete(o.key);
            out.objects++;
          }
        await this.commit(() => {
          for (const table of ['merges', 'merge_jobs', 'merge_results', 'gradients'])
            this.db.prepare(`DELETE FROM ${table} WHERE epoch = ?`).run(epoch);
          // an audit nobody took before its inputs went can never be done
          this.db.prepare("DELETE FROM validations WHERE epoch = ? AND state = 'open'").run(epoch);
          this.db.prepare('UPDATE run SET pruned_below = ?').run(epoch + 1);
        });
        out.epochs.push(epoch);
      }
      const below = Math.min(to, window ?? to);
      if (below > this.tasksBelow) {
        this.tasksBelow = below;
        await this.commit(() => {
          this.db.prepare("DELETE FROM tasks WHERE epoch < ? AND kind != 'tail'").run(below);
          // the tail's keep their loss for the history, not where their inputs and outputs were
          this.db
            .prepare(
              "UPDATE tasks SET input = '', output = NULL WHERE epoch < ? AND kind = 'tail' AND input != ''",
            )
            .run(below);
        });
      }
      return out;
    } finally {
      this.running = false;
    }
  }
}
