/**
 * WAL checkpoints on a thread of their own. SQLite's automatic checkpoint runs inside the
 * COMMIT that crosses the threshold, on the event loop: it copies a thousand pages back into
 * the database file and fsyncs it, stalling every request behind that commit. Here the server's
 * connection never checkpoints (`wal_autocheckpoint = 0`) and a worker with its own connection
 * runs a PASSIVE checkpoint (it never blocks the writer) a few times a second.
 *
 * A checkpoint only copies frames; the WAL starts again from its beginning only when a
 * transaction of the writer begins after every frame was copied. Under steady load the writer
 * is inside a transaction, or commits, whenever a pass ends, and the WAL would grow without
 * bound (a gigabyte in ten seconds of the orchestrator bench). So once the WAL passes
 * `restartBytes`, the worker asks for a quiet
 * moment: the write gate (the server's group commit) holds new commits, the worker copies the
 * few frames its last pass missed, and the gate opens; the next commit restarts the WAL. Holding
 * commits does not block the event loop: requests are still read, verified and answered from
 * memory; their changes wait for the commit after the quiet moment (a few milliseconds, at most
 * `HOLD_LIMIT_MS`).
 *
 * Durability is unchanged: a commit is durable against a crash of the process once it is in
 * the WAL, checkpointed or not; the checkpoint only bounds the WAL's size.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { DB } from './db.js';

/** What holds commits while the worker copies the WAL's last frames (the server's group commit). */
export interface WriteGate {
  hold(): void;
  release(): void;
}

/** A quiet moment never lasts longer than this, whatever the worker does. */
const HOLD_LIMIT_MS = 250;

// Plain CommonJS, evaluated by the worker (as the verifier's): no file to find in dist/ or under jest.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 5000');
let asked = false;
function pass() {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    return r;
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message) });
    return undefined;
  }
}
const timer = setInterval(() => {
  if (asked) return;
  let r = pass();
  if (!r || r.log < workerData.restartFrames) return;
  // Before asking for a quiet moment, catch up: each pass copies what the writer committed
  // during the one before, so a few back to back leave the quiet pass little to copy.
  for (let i = 0; i < 8; i++) {
    const t0 = performance.now();
    r = pass();
    if (!r || performance.now() - t0 < 2) break;
  }
  if (!r || r.log < workerData.restartFrames) return; // it started again by itself meanwhile
  asked = true;
  parentPort.postMessage({ quiet: true });
}, workerData.everyMs);
parentPort.on('message', (m) => {
  if (m === 'quiet') {
    const r = pass();
    asked = false;
    parentPort.postMessage({ settled: true, complete: !!r && r.log === r.checkpointed });
    return;
  }
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

export interface CheckpointerOptions {
  everyMs?: number;
  /** the WAL size past which the worker asks for a quiet moment to restart it */
  restartBytes?: number;
  onError?: (message: string) => void;
}

export class BackgroundCheckpointer {
  private worker: Worker;
  private gate?: WriteGate;
  private holding?: NodeJS.Timeout;
  private closing = false;
  /** quiet moments granted, and those after which the WAL was fully copied (tests, diagnostics) */
  readonly restarts = { asked: 0, complete: 0 };

  constructor(db: DB, o: CheckpointerOptions = {}) {
    const onError = o.onError ?? (() => {});
    db.pragma('wal_autocheckpoint = 0');
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    const restartBytes = o.restartBytes ?? 64 * 1024 * 1024;
    const restartFrames = Math.max(1, Math.floor(restartBytes / (pageSize + 24)));
    // A WAL that started again is cut back to this size: a burst does not leave a large file behind.
    db.pragma(`journal_size_limit = ${restartBytes}`);
    const module = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { module, path: db.name, everyMs: o.everyMs ?? 200, restartFrames },
    });
    this.worker.on(
      'message',
      (m: { error?: string; quiet?: boolean; settled?: boolean; complete?: boolean }) => {
        if (m.error) onError(m.error);
        if (m.quiet) this.quiet();
        if (m.settled) {
          if (m.complete) this.restarts.complete++;
          this.open();
        }
      },
    );
    this.worker.on('error', (e) => onError(e.message));
    // A worker that is gone checkpoints nothing: the server's connection does it again, as before.
    this.worker.on('exit', () => {
      this.open();
      if (!this.closing && db.open) db.pragma('wal_autocheckpoint = 1000');
    });
    this.worker.unref();
  }

  /**
   * The gate that holds commits during a quiet moment; without one, the worker's pass runs between
   * whatever commits come.
   */
  useGate(gate: WriteGate): void {
    this.gate = gate;
  }

  /** Stops checkpointing (the worker closes its connection and exits); a checkpoint cut short is safe. */
  close(): void {
    this.closing = true;
    this.open();
    this.worker.postMessage('close');
  }

  // This runs between two turns of the event loop, so no transaction is open: from here until
  // `open`, the gate lets none begin.
  private quiet(): void {
    if (this.closing) return;
    this.restarts.asked++;
    this.gate?.hold();
    this.holding = setTimeout(() => this.open(), HOLD_LIMIT_MS);
    this.worker.postMessage('quiet');
  }

  private open(): void {
    if (!this.holding) return;
    clearTimeout(this.holding);
    this.holding = undefined;
    this.gate?.release();
  }
}
