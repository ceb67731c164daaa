/**
 * Retention (DESIGN.md section 7): an epoch's activations and gradient sums leave the store once
 * `keep_epochs` epochs have passed at every stage and no audit of the epoch is still open. An
 * audit no validator took within 4 x keep_epochs epochs no longer holds them back (a swarm with
 * no validator would otherwise keep everything; a validator taking it later finds its inputs gone
 * and abstains). Manifests, merged weights and moments stay: exports and resumes read them. The
 * database keeps its rows (scores and the loss history read them). How far it got is kept in the
 * database (`run.pruned_below`), so a restart carries on where it stopped.
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

  constructor(
    private readonly db: DB,
    private readonly store: ObjectStore,
    private readonly run: string,
    private readonly keepEpochs: number,
    /** runs a write in the orchestrator's group commit */
    private readonly commit: (fn: () => void) => Promise<void>,
  ) {}

  /** The epochs below which everything prunable is gone, and the next to prune up to (excluded). */
  bounds(): { from: number; to: number } {
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
      .get(current - AUDIT_PATIENCE * this.keepEpochs) as { audit: number | null };
    const to = Math.min(current - this.keepEpochs, audit ?? Infinity);
    return { from, to: Math.max(from, to) };
  }

  /** Deletes what may go; one call at a time (a second returns at once). */
  async prune(): Promise<Pruned> {
    const out: Pruned = { epochs: [], objects: 0 };
    if (this.running) return out;
    this.running = true;
    try {
      const { from, to } = this.bounds();
      for (let epoch = from; epoch < to; epoch++) {
        for (const part of ['act', 'grad'] as const)
          for (const o of await this.store.list(keys.epochWorkPrefix(this.run, epoch, part))) {
            await this.store.delete(o.key);
            out.objects++;
          }
        await this.commit(() => {
          this.db.prepare('UPDATE run SET pruned_below = ?').run(epoch + 1);
        });
        out.epochs.push(epoch);
      }
      return out;
    } finally {
      this.running = false;
    }
  }
}
