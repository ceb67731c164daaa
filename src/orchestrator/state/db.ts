/**
 * The orchestrator's durable state: SQLite through better-sqlite3, WAL mode with
 * synchronous=NORMAL. A committed transaction survives a crash of the process (SIGKILL,
 * out-of-memory); a power loss may lose the last few transactions before a WAL checkpoint,
 * never corrupt the file. Schema changes are numbered migrations, applied in order, once.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { IotaError } from '../../errors.js';
import { MIGRATIONS } from './migrations.js';

export { MIGRATIONS };

export type DB = Database.Database;

export const SCHEMA_VERSION = MIGRATIONS.length;

export function openDatabase(path: string): DB {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.pragma('temp_store = MEMORY'); // savepoints' journals in memory, not a temporary file
  db.pragma('cache_size = -65536'); // 64 MiB of pages: a large swarm's working set stays in memory
  migrate(db);
  return db;
}

/** Brings the schema up to `version` (the newest unless a test stops earlier to check one step). */
export function migrate(db: DB, version = MIGRATIONS.length): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new IotaError(
      'E_SCHEMA_TOO_NEW',
      `the state database has schema version ${current}; this iota knows up to ${MIGRATIONS.length}`,
      'run a newer iota on this state folder',
    );
  }
  for (let v = current; v < version; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

/**
 * In-memory copies of rows (a participant, the nonces of the clock window) stay true to the
 * database because every write goes through the method that also updates the copy, and
 * registers how to undo that update if its transaction or savepoint rolls back
 * (`undoOnRollback`). `Repository.transaction` opens and closes the frames: a released
 * savepoint hands its undos to the enclosing frame, a commit forgets them, a rollback runs
 * them, newest first. Outside a transaction a write commits at once: nothing to undo.
 */
const undoFrames = new WeakMap<DB, Array<Array<() => void>>>();

export function undoOnRollback(db: DB, undo: () => void): void {
  const stack = undoFrames.get(db);
  if (stack && stack.length > 0) stack[stack.length - 1].push(undo);
}

export function openUndoFrame(db: DB): void {
  const stack = undoFrames.get(db) ?? [];
  stack.push([]);
  undoFrames.set(db, stack);
}

export function closeUndoFrame(db: DB, committed: boolean): void {
  const stack = undoFrames.get(db)!;
  const frame = stack.pop()!;
  if (!committed) for (let i = frame.length - 1; i >= 0; i--) frame[i]();
  else if (stack.length > 0) stack[stack.length - 1].push(...frame);
}

/** Every table's rows in a stable order: tests compare dumps to prove nothing changed. */
export function dumpDatabase(db: DB): string {
  const tables = db
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .all() as Array<{ name: string }>;
  return tables
    .map(
      ({ name }) =>
        `${name}\n${JSON.stringify(db.prepare(`SELECT * FROM "${name}" ORDER BY 1, 2`).all())}`,
    )
    .join('\n');
}
