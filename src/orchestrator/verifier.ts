/**
 * Ed25519 verification off the event loop. Verifying costs about as much as the rest of a
 * request, so a worker thread does it, in batches (one message per event-loop turn, not one per
 * request). With `threads: 0` it verifies inline (one-core hosts, tests of the inline path).
 * The worker checks through libsodium (sodium-native, an optional dependency with prebuilt
 * binaries) where it loads: 63 us a check here against 110 us through Node's OpenSSL, CPU the
 * event loop gets back on a small machine; elsewhere through node:crypto.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { publicKeyFromId, verifyBytes } from '../protocol/keys.js';

// Plain CommonJS, evaluated by the worker: no file to find in dist/ or under jest.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
let sodium;
try {
  sodium = workerData.sodium && require(workerData.sodium);
} catch {
  sodium = undefined; // no binary for this platform: node:crypto below
}
const PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const keys = new Map();
function keyOf(id) {
  let k = keys.get(id);
  if (!k) {
    const raw = Buffer.from(id, 'base64url');
    if (raw.length !== 32) return undefined;
    k = sodium ? raw : createPublicKey({ key: Buffer.concat([PREFIX, raw]), format: 'der', type: 'spki' });
    if (keys.size > 50000) keys.delete(keys.keys().next().value);
    keys.set(id, k);
  }
  return k;
}
parentPort.on('message', ({ batch, ids }) => {
  const ok = batch.map(([id, message, signature]) => {
    try {
      const sig = Buffer.from(signature, 'base64url');
      const key = keyOf(id);
      if (sig.length !== 64 || !key) return false;
      const bytes = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
      return sodium
        ? sodium.crypto_sign_verify_detached(sig, bytes, key)
        : verify(null, bytes, key, sig);
    } catch {
      return false;
    }
  });
  parentPort.postMessage({ ids, ok });
});
`;

/** Where sodium-native is installed, if it is (an optional dependency). */
function sodiumPath(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve('sodium-native');
  } catch {
    return undefined;
  }
}

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
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { sodium: sodiumPath() } });
      w.on('message', ({ ids, ok }: { ids: number[]; ok: boolean[] }) =>
        ids.forEach((id, j) => this.settle(id, ok[j])),
      );
      w.on('error', () => this.failAll());
      w.unref();
      this.workers.push(w);
    }
  }

  verify(key: string, message: Uint8Array, signature: string): Promise<boolean> {
    if (this.workers.length === 0)
      return Promise.resolve(verifyBytes(publicKeyFromId(key), message, signature));
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
