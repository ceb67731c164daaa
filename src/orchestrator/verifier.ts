/**
 * Ed25519 verification off the event loop. Verifying costs about as much as the rest of a
 * request, so a worker thread does it, in batches (one message per event-loop turn, not one per
 * request). With `threads: 0` it verifies inline (one-core hosts, tests of the inline path).
 */
import { Worker } from 'node:worker_threads';
import { publicKeyFromId, verifyBytes } from '../protocol/keys.js';

// Plain CommonJS, evaluated by the worker: no file to find in dist/ or under jest.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
const PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const keys = new Map();
function keyOf(id) {
  let k = keys.get(id);
  if (!k) {
    k = createPublicKey({ key: Buffer.concat([PREFIX, Buffer.from(id, 'base64url')]), format: 'der', type: 'spki' });
    if (keys.size > 50000) keys.delete(keys.keys().next().value);
    keys.set(id, k);
  }
  return k;
}
parentPort.on('message', ({ batch, ids }) => {
  const ok = batch.map(([id, message, signature]) => {
    try {
      const sig = Buffer.from(signature, 'base64url');
      return sig.length === 64 && verify(null, Buffer.from(message), keyOf(id), sig);
    } catch {
      return false;
    }
  });
  parentPort.postMessage({ ids, ok });
});
`;

type Job = [key: string, message: Uint8Array, signature: string];

/** Signatures per message to the worker. */
const CHUNK = 8;

export class SignatureVerifier {
  private workers: Worker[] = [];
  private next = 0;
  private seq = 0;
  private waiting = new Map<number, (ok: boolean) => void>();
  private queue: Array<{ id: number; job: Job }> = [];
  private scheduled = false;

  constructor(threads: number) {
    for (let i = 0; i < threads; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.on('message', ({ ids, ok }: { ids: number[]; ok: boolean[] }) => ids.forEach((id, j) => this.settle(id, ok[j])));
      w.on('error', () => this.failAll());
      w.unref();
      this.workers.push(w);
    }
  }

  verify(key: string, message: Uint8Array, signature: string): Promise<boolean> {
    if (this.workers.length === 0) return Promise.resolve(verifyBytes(publicKeyFromId(key), message, signature));
    return new Promise((resolve) => {
      const id = this.seq++;
      this.waiting.set(id, resolve);
      // A copy of just these bytes: a small Buffer is a view into an 8 KiB pool, and posting the
      // view would clone the whole pool.
      this.queue.push({ id, job: [key, Uint8Array.prototype.slice.call(message), signature] });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
    this.failAll();
  }

  private flush(): void {
    this.scheduled = false;
    const q = this.queue;
    this.queue = [];
    // Small chunks: the worker starts on the first while the event loop still parses the rest,
    // and the first replies come back before the whole turn's batch is verified.
    for (let i = 0; i < q.length; i += CHUNK) {
      const chunk = q.slice(i, i + CHUNK);
      const w = this.workers[this.next++ % this.workers.length];
      w.postMessage({ ids: chunk.map((x) => x.id), batch: chunk.map((x) => x.job) });
    }
  }

  private settle(id: number, ok: boolean): void {
    const r = this.waiting.get(id);
    this.waiting.delete(id);
    r?.(ok);
  }

  /** A dead worker must not leave requests hanging: refuse what it held. */
  private failAll(): void {
    for (const r of this.waiting.values()) r(false);
    this.waiting.clear();
  }
}
