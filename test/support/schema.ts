/** A database at an older schema version, for testing one migration step on rows of its time. */
import Database from 'better-sqlite3';
import { MIGRATIONS, migrate, type DB } from '../../src/orchestrator/state/db.js';

/** A database at `path` migrated up to (not including) the step whose SQL contains `marker`; `step` is -1 when none does. */
export function databaseBefore(path: string, marker: string): { db: DB; step: number } {
  const step = MIGRATIONS.findIndex((m) => m.includes(marker));
  const db = new Database(path);
  if (step >= 0) migrate(db, step);
  return { db, step };
}
