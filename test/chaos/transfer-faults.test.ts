/**
 * Store faults at the transfer layer: the client's uploads and downloads through the fault
 * proxy in front of a real local store (HTTP, signed URLs). Every fault the proxy injects is
 * ridden out by retries, and no damaged byte is ever returned or stored.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  describeUpload,
  download,
  keys,
  LocalStore,
  localStoreRoutes,
  upload,
} from '../../src/store/index.js';
import { CHUNK_BYTES, sha256Hex } from '../../src/tensor-io/hash.js';
import { FaultProxy } from './support/fault-proxy.js';

let app: FastifyInstance;
let store: LocalStore;
let proxy: FaultProxy;
let root: string;
let origin = '';
const fast = { baseDelayMs: 1, maxDelayMs: 5, attempts: 12 };

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'iota-chaos-transfer-'));
  proxy = new FaultProxy({ target: () => origin, seed: 7 });
  const proxyUrl = await proxy.listen();
  store = await LocalStore.open({ root, baseUrl: () => proxyUrl });
  app = Fastify();
  await app.register(localStoreRoutes(store));
  await app.listen({ host: '127.0.0.1', port: 0 });
  origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await proxy.close();
  await app.close();
});

let n = 0;
const expiresAt = () => Date.now() + 60_000;

/** Uploads through the proxy as a participant does, with a signed PUT. */
async function put(bytes: Uint8Array): Promise<string> {
  const key = keys.probe({ run: 'r', owner: `m${n++}` });
  const d = describeUpload(bytes);
  const plan = await store.presignPut({ key, ...d, expiresAt: expiresAt() });
  await upload(plan, bytes, fast);
  return key;
}
const url = (key: string) => store.presignGet({ key, expiresAt: expiresAt() });

describe('transfers through a faulty link', () => {
  it('a byte flipped on the way in is sent again and one flipped on the way out is read again: nothing damaged is kept or returned', async () => {
    proxy.counts.flip = 0;
    proxy.configure({ rates: { flip: 0.3 } });
    for (let i = 0; i < 12; i++) {
      const bytes = randomBytes(3 * CHUNK_BYTES + 17);
      const key = await put(bytes);
      expect(sha256Hex(readFileSync(join(root, 'objects', key)))).toBe(sha256Hex(bytes));
      const at = await url(key);
      const whole = await download(at, { sha256: sha256Hex(bytes), size: bytes.length }, fast);
      expect(Buffer.compare(Buffer.from(whole), bytes)).toBe(0);
      const { chunkHashes } = describeUpload(bytes);
      const range = { start: CHUNK_BYTES + 5, end: 2 * CHUNK_BYTES + 9 };
      const part = await download(at, { chunkHashes, size: bytes.length, range }, fast);
      expect(Buffer.compare(Buffer.from(part), bytes.subarray(range.start, range.end))).toBe(0);
    }
    expect(proxy.counts.flip).toBeGreaterThanOrEqual(10);
  });

  it('rides out 5xx, resets, stalls and cut bodies', async () => {
    proxy.configure({
      stallMs: 50,
      rates: { error: 0.15, reset: 0.15, stall: 0.1, truncate: 0.15 },
    });
    const before = proxy.injected;
    for (let i = 0; i < 10; i++) {
      const bytes = randomBytes(CHUNK_BYTES + 3);
      const key = await put(bytes);
      const got = await download(
        await url(key),
        { sha256: sha256Hex(bytes), size: bytes.length },
        fast,
      );
      expect(sha256Hex(got)).toBe(sha256Hex(bytes));
    }
    expect(proxy.injected - before).toBeGreaterThanOrEqual(8);
  });

  it('an object whose own bytes are wrong is refused after two reads that agree', async () => {
    proxy.configure({ rates: {} });
    const bytes = randomBytes(1000);
    const key = await put(bytes);
    const file = join(root, 'objects', key);
    const damaged = readFileSync(file);
    damaged[3] ^= 1;
    writeFileSync(file, damaged);
    const at = await url(key);
    const reads = proxy.requests;
    const err = await download(at, { sha256: sha256Hex(bytes), size: 1000 }, fast).catch((e) => e);
    expect(err.code).toBe('E_HASH_MISMATCH');
    expect(proxy.requests - reads).toBe(2);
  });
});
