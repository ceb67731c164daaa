/**
 * The orchestrator's state behind a small interface: every state transition is one method,
 * and callers group them into one transaction with `transaction()`.
 */
import type { Statement } from 'better-sqlite3';
import {
  closeUndoFrame,
  openDatabase,
  dumpDatabase,
  openUndoFrame,
  undoOnRollback,
  type DB,
} from './db.js';
import { BackgroundCheckpointer, type CheckpointerOptions, type WriteGate } from './checkpoint.js';
import { MAX_SKEW_MS } from '../../protocol/signing.js';

const MAX_CACHED_PARTICIPANTS = 100_000;
/**
 * How far back from the newest stored request nonces are read at open: twice the clock window
 * either side, to spare.
 */
const NONCE_WINDOW_MS = 4 * MAX_SKEW_MS;

export type Role = 'miner' | 'validator' | 'admin';

export interface Participant {
  id: string;
  role: Role;
  registeredAt: number;
  lastSeen: number;
  info: Record<string, unknown>;
}

export interface StoredReply {
  method: string;
  path: string;
  status: number;
  reply: unknown;
}

interface ParticipantRow {
  id: string;
  role: Role;
  registered_at: number;
  last_seen: number;
  info: string;
}

export class Repository {
  private s: {
    replyGet: Statement;
    replyPut: Statement;
    replyPrune: Statement;
    participantGet: Statement;
    participantPut: Statement;
    participantTouch: Statement;
    participantList: Statement;
    participantCounts: Statement;
    uploadPut: Statement;
    uploadGet: Statement;
    uploadDelete: Statement;
  };

  /** role counts change only on registration; status reads them on every call */
  private counts: Record<Role, number> | null = null;
  /** participants by id, as in the database (the writes below keep it so) */
  private known = new Map<string, Participant>();
  /** "key nonce" -> client timestamp of the state changes of the clock window (their rows hold them) */
  private nonces = new Map<string, number>();
  /** Transaction control, prepared once (better-sqlite3's db.transaction(fn) builds four wrappers per call). */
  private tx: Record<
    'begin' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'rollbackTo',
    Statement
  >;

  constructor(readonly db: DB) {
    this.loadNonces();
    this.tx = {
      begin: db.prepare('BEGIN'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
      savepoint: db.prepare('SAVEPOINT change'),
      release: db.prepare('RELEASE change'),
      rollbackTo: db.prepare('ROLLBACK TO change'),
    };
    this.s = {
      replyGet: db.prepare(
        'SELECT method, path, status, reply FROM requests WHERE key = ? AND request_id = ?',
      ),
      replyPut: db.prepare(
        'INSERT INTO requests (key, request_id, method, path, status, reply, created_at, ' +
          'nonce, nonce_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      // The rows before the first one young enough to keep (arrival order: a prefix of the table).
      replyPrune: db.prepare(
        `DELETE FROM requests WHERE rowid < COALESCE(
           (SELECT rowid FROM requests WHERE created_at >= ? ORDER BY rowid LIMIT 1),
           (SELECT COALESCE(MAX(rowid), 0) + 1 FROM requests))`,
      ),
      participantGet: db.prepare('SELECT * FROM participants WHERE id = ?'),
      participantPut: db.prepare(
        'INSERT INTO participants (id, role, registered_at, last_seen, info) VALUES ' +
          '(@id, @role, @now, @now, @info) ON CONFLICT (id) DO UPDATE SET role = @role, ' +
          'last_seen = @now, info = @info',
      ),
      participantTouch: db.prepare('UPDATE participants SET last_seen = ? WHERE id = ?'),
      participantList: db.prepare('SELECT * FROM participants ORDER BY registered_at, id'),
      participantCounts: db.prepare('SELECT role, COUNT(*) AS n FROM participants GROUP BY role'),
      uploadPut: db.prepare(
        'INSERT OR REPLACE INTO uploads (key, caller, upload_id, plan, created_at) VALUES (?, ?, ?, ?, ?)',
      ),
      uploadGet: db.prepare(
        'SELECT plan FROM uploads WHERE key = ? AND caller = ? AND upload_id = ?',
      ),
      uploadDelete: db.prepare(
        'DELETE FROM uploads WHERE key = ? AND caller = ? AND upload_id = ?',
      ),
    };
  }

  private checkpointer?: BackgroundCheckpointer;

  /** `backgroundCheckpoints`: a server's database, checkpointed off the event loop (checkpoint.ts). */
  static open(
    path: string,
    o: {
      backgroundCheckpoints?: boolean | Omit<CheckpointerOptions, 'onError'>;
      onCheckpointError?: (message: string) => void;
    } = {},
  ): Repository {
    const repo = new Repository(openDatabase(path));
    if (o.backgroundCheckpoints && path !== ':memory:') {
      const options = typeof o.backgroundCheckpoints === 'object' ? o.backgroundCheckpoints : {};
      repo.checkpointer = new BackgroundCheckpointer(repo.db, {
        ...options,
        onError: o.onCheckpointError,
      });
    }
    return repo;
  }

  /** What holds commits while the background checkpointer restarts the WAL (the server's group commit). */
  useWriteGate(gate: WriteGate): void {
    this.checkpointer?.useGate(gate);
  }

  /** Quiet moments the checkpointer was granted, and those after which the whole WAL was copied. */
  get walRestarts(): { asked: number; complete: number } {
    return this.checkpointer ? { ...this.checkpointer.restarts } : { asked: 0, complete: 0 };
  }

  /**
   * Runs `fn` in a transaction, or in a savepoint when one is open: all of it commits, or none
   * of it, in-memory copies of rows included (db.ts, `undoOnRollback`).
   */
  transaction<T>(fn: () => T): T {
    const nested = this.db.inTransaction;
    const t = this.tx;
    (nested ? t.savepoint : t.begin).run();
    openUndoFrame(this.db);
    try {
      const result = fn();
      if (result instanceof Promise)
        throw new TypeError('a transaction function cannot return a promise');
      (nested ? t.release : t.commit).run();
      closeUndoFrame(this.db, true);
      return result;
    } catch (e) {
      if (this.db.inTransaction) {
        if (nested) {
          t.rollbackTo.run();
          t.release.run();
        } else {
          t.rollback.run();
        }
      }
      closeUndoFrame(this.db, false);
      this.counts = null; // a rolled-back registration may have cleared or kept a stale cache
      throw e;
    }
  }

  /**
   * Whether a state change with this nonce was received (within the clock window: older ones are
   * refused by the clock check).
   */
  nonceSeen(key: string, nonce: string): boolean {
    return this.nonces.has(`${key} ${nonce}`);
  }

  storedReply(key: string, requestId: string): StoredReply | undefined {
    const row = this.s.replyGet.get(key, requestId) as
      { method: string; path: string; status: number; reply: string } | undefined;
    return (
      row && {
        method: row.method,
        path: row.path,
        status: row.status,
        reply: JSON.parse(row.reply),
      }
    );
  }

  /**
   * A state change's reply, with the nonce of the signed request that made it (seen from now on,
   * and after a restart).
   */
  storeReply(
    key: string,
    requestId: string,
    r: StoredReply,
    now: number,
    signed: { nonce: string; ts: number },
  ): void {
    const k = `${key} ${signed.nonce}`;
    this.s.replyPut.run(
      key,
      requestId,
      r.method,
      r.path,
      r.status,
      JSON.stringify(r.reply),
      now,
      signed.nonce,
      signed.ts,
    );
    this.nonces.set(k, signed.ts);
    undoOnRollback(this.db, () => this.nonces.delete(k));
  }

  /**
   * A nonce seen without a reply of its own (a retry answered with the stored reply): kept in a
   * row no request id can name ('.' is outside the ids' alphabet), pruned with the replies.
   */
  rememberNonce(key: string, nonce: string, ts: number, now: number): void {
    this.storeReply(key, `.nonce.${nonce}`, { method: '', path: '', status: 0, reply: null }, now, {
      nonce,
      ts,
    });
  }

  /**
   * Forgets nonces older than `nonceBefore` (refused by the clock check anyway) and replies older
   * than `replyBefore`.
   */
  prune(nonceBefore: number, replyBefore: number): void {
    this.transaction(() => this.s.replyPrune.run(replyBefore));
    for (const [k, ts] of this.nonces) if (ts < nonceBefore) this.nonces.delete(k);
  }

  /**
   * The nonces of the clock window, from the newest rows back (rows are in arrival order): a
   * replay of a request from before a restart is refused as before it.
   */
  private loadNonces(): void {
    let newest: number | undefined;
    const rows = this.db
      .prepare('SELECT key, nonce, nonce_ts, created_at FROM requests ORDER BY rowid DESC')
      .iterate() as IterableIterator<{
      key: string;
      nonce: string | null;
      nonce_ts: number;
      created_at: number;
    }>;
    for (const r of rows) {
      newest ??= r.created_at;
      if (r.created_at < newest - NONCE_WINDOW_MS) {
        rows.return?.();
        break;
      }
      if (r.nonce !== null) this.nonces.set(`${r.key} ${r.nonce}`, r.nonce_ts);
    }
  }

  /** Every signed call looks its caller up: served from memory after the first time. */
  participant(id: string): Participant | undefined {
    const cached = this.known.get(id);
    if (cached) return cached;
    const row = this.s.participantGet.get(id) as ParticipantRow | undefined;
    if (!row) return undefined;
    if (this.known.size >= MAX_CACHED_PARTICIPANTS) this.known.clear();
    const p = toParticipant(row);
    this.known.set(id, p);
    return p;
  }

  /** Registers or re-registers; returns whether it is new. */
  putParticipant(id: string, role: Role, info: Record<string, unknown>, now: number): boolean {
    const existed = this.s.participantGet.get(id) as ParticipantRow | undefined;
    this.s.participantPut.run({ id, role, now, info: JSON.stringify(info) });
    this.forget(id);
    if (!existed || existed.role !== role) this.counts = null;
    return !existed;
  }

  touch(id: string, now: number): void {
    this.s.participantTouch.run(now, id);
    this.forget(id);
  }

  /**
   * Drops a participant's in-memory copy now, and again if this write rolls back (a read in between
   * may have copied the new row).
   */
  private forget(id: string): void {
    this.known.delete(id);
    undoOnRollback(this.db, () => this.known.delete(id));
  }

  participants(): Participant[] {
    return (this.s.participantList.all() as ParticipantRow[]).map(toParticipant);
  }

  roleCounts(): Record<Role, number> {
    if (!this.counts) {
      const counts: Record<Role, number> = { miner: 0, validator: 0, admin: 0 };
      for (const r of this.s.participantCounts.all() as Array<{ role: Role; n: number }>)
        counts[r.role] = r.n;
      this.counts = counts;
    }
    return { ...this.counts };
  }

  /** A multipart upload in progress: the plan the orchestrator issued, kept for completion. */
  putUpload(key: string, caller: string, uploadId: string, plan: unknown, now: number): void {
    this.s.uploadPut.run(key, caller, uploadId, JSON.stringify(plan), now);
  }

  upload(key: string, caller: string, uploadId: string): unknown {
    const row = this.s.uploadGet.get(key, caller, uploadId) as { plan: string } | undefined;
    return row && JSON.parse(row.plan);
  }

  deleteUpload(key: string, caller: string, uploadId: string): void {
    this.s.uploadDelete.run(key, caller, uploadId);
  }

  dump(): string {
    return dumpDatabase(this.db);
  }

  close(): void {
    this.checkpointer?.close();
    this.db.close();
  }
}

function toParticipant(r: ParticipantRow): Participant {
  return {
    id: r.id,
    role: r.role,
    registeredAt: r.registered_at,
    lastSeen: r.last_seen,
    info: JSON.parse(r.info),
  };
}
