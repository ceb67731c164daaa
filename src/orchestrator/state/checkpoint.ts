/**
 * WAL checkpoints on a thread of their own. SQLite's automatic checkpoint runs inside the
 * COMMIT that crosses the threshold, on the event loop: it copies a thousand pages back into
 * the database file and fsyncs it, stalling every request behind that commit. Here the server's
 * connection never checkpoints (`wal_autocheckpoint = 0`) and a worker with its own connection
 * runs a PASSIVE checkpoint (it never blocks the writer) a few times a second.
 *
 * Durability is unchanged: a commit is durable against a crash of the process once it is in
 * the WAL, checkpointed or not; the checkpoint only bounds the WAL's size.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { DB } from './db.js';

// Plain CommonJS, evaluated by the worker (as the verifier's): no file to find in dist/ or under jest.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 5000');
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message) });
  }
}, workerData.everyMs);
parentPort.on('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

export class BackgroundCheckpointer {
  private worker: Worker;

  constructor(db: DB, everyMs = 200, onError: (message: string) => void = () => {}) {
    db.pragma('wal_autocheckpoint = 0');
    const module = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, path: db.name, everyMs } });
    this.worker.on('message', (m: { error?: string }) => m.error && onError(m.error));
    this.worker.on('error', (e) => onError(e.message));
    // A worker that is gone checkpoints nothing: the server's connection does it again, as before.
    this.worker.on('exit', () => {
      if (!this.closing && db.open) db.pragma('wal_autocheckpoint = 1000');
    });
    this.worker.unref();
  }

  private closing = false;

  /** Stops checkpointing (the worker closes its connection and exits); a checkpoint cut short is safe. */
  close(): void {
    this.closing = true;
    this.worker.postMessage('close');
  }
}
