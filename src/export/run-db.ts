/**
 * A run's state database, opened read only by the tools beside the orchestrator (`iota export`,
 * `iota local`'s summary): the run and model configs, the stage manifests, and the run's record
 * (training losses per epoch, merged samples, verdicts, held-out losses). It reads while the
 * orchestrator writes (WAL) and never changes the database.
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { validateConfig } from '../config/index.js';
import type { ModelConfig } from '../config/model.js';
import type { RunConfig } from '../config/run.js';
import { IotaError } from '../errors.js';

export interface ManifestRow {
  key: string;
  size: number;
  sha256: string;
}

export class RunDb {
  readonly run: RunConfig;
  readonly model: ModelConfig;

  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {
    const row = db.prepare('SELECT config FROM run WHERE id = 1').get() as
      { config: string } | undefined;
    if (!row) {
      db.close();
      throw new IotaError('E_NO_RUN', `${path} holds no created run yet`);
    }
    const configs = JSON.parse(row.config) as { run: unknown; model: unknown };
    this.run = validateConfig('run', configs.run, `${path} (run)`);
    this.model = validateConfig('model', configs.model, `${path} (run)`);
  }

  /** `<stateDir>/state.db`; E_NO_RUN when there is none or it holds no run. */
  static open(stateDir: string): RunDb {
    const path = resolve(join(stateDir, 'state.db'));
    if (!existsSync(path))
      throw new IotaError(
        'E_NO_RUN',
        `${stateDir} holds no run (no state.db)`,
        'pass the --state-dir of `iota local` or `iota orchestrator serve`',
      );
    const db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    return new RunDb(db, path);
  }

  manifest(stage: number, epoch: number): ManifestRow {
    const r = this.db
      .prepare('SELECT manifest FROM manifests WHERE stage = ? AND epoch = ?')
      .get(stage, epoch) as { manifest: string } | undefined;
    if (!r) throw new IotaError('E_NO_EPOCH', `stage ${stage} has no manifest of epoch ${epoch}`);
    return JSON.parse(r.manifest) as ManifestRow;
  }

  /** The newest epoch of each stage's weights (epoch E: E merges published). */
  stageEpochs(): number[] {
    const rows = this.db
      .prepare('SELECT stage, MAX(epoch) AS epoch FROM manifests GROUP BY stage ORDER BY stage')
      .all() as Array<{ stage: number; epoch: number }>;
    return this.model.stages.map((_, s) => rows.find((r) => r.stage === s)?.epoch ?? -1);
  }

  /** Mean training loss of each epoch's tail items (weighted by their samples), in epoch order. */
  epochLosses(): Array<{ epoch: number; loss: number; samples: number }> {
    return this.db
      .prepare(
        'SELECT epoch, SUM(loss * n) / SUM(n) AS loss, SUM(n) AS samples FROM tasks ' +
          "WHERE kind = 'tail' AND loss IS NOT NULL GROUP BY epoch ORDER BY epoch",
      )
      .all() as Array<{ epoch: number; loss: number; samples: number }>;
  }

  /** Samples whose gradients were merged, per stage (the ledger's `merged` state). */
  mergedSamples(): number[] {
    const rows = this.db
      .prepare("SELECT stage, SUM(n) AS n FROM ledger WHERE state = 'merged' GROUP BY stage")
      .all() as Array<{ stage: number; n: number }>;
    return this.model.stages.map((_, s) => rows.find((r) => r.stage === s)?.n ?? 0);
  }

  /** Verdicts issued: passed and failed checks of miners' work. */
  verdicts(): { passed: number; failed: number } {
    const r = this.db
      .prepare(
        "SELECT SUM(state = 'passed') AS passed, SUM(state = 'failed') AS failed FROM validations",
      )
      .get() as { passed: number | null; failed: number | null };
    return { passed: r.passed ?? 0, failed: r.failed ?? 0 };
  }

  /** Held-out losses, in epoch order. */
  evals(): Array<{ epoch: number; loss: number }> {
    return this.db
      .prepare("SELECT epoch, loss FROM evals WHERE state = 'done' ORDER BY epoch")
      .all() as Array<{ epoch: number; loss: number }>;
  }

  close(): void {
    this.db.close();
  }
}
