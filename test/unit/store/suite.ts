/**
 * The one store suite, run against every implementation (store.test.ts): what the orchestrator
 * and the participants rely on, through the public interface and the client transfers only.
 */
import { randomBytes } from 'node:crypto';
import { types } from 'node:util';
import { MockAgent } from 'undici';
import { CHUNK_BYTES, chunkHashes, sha256Hex } from '../../../src/tensor-io/hash.js';
import {
  describeUpload,
  download,
  MIN_PART_BYTES,
  upload,
  type UploadPlan,
} from '../../../src/store/index.js';
import { verdictOnUnreadable } from '../../../src/store/unreadable.js';
import type { StoreFixture } from './fixtures.js';

const MiB = 1024 * 1024;
const soon = () => Date.now() + 60_000;
const fast = { baseDelayMs: 0 };

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code ?? `uncoded: ${(e as Error).message}`;
  }
  return 'no error';
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.length),
      Buffer.from(b.buffer, b.byteOffset, b.length),
    ) === 0
  );
}

export function storeSuite(make: () => Promise<StoreFixture>): void {
  let f: StoreFixture;
  beforeAll(async () => {
    f = await make();
  });
  afterAll(async () => {
    await f?.close();
  });
  afterEach(() => f.shiftClock(0));

  it('puts, heads, gets and deletes an object, empty ones included', async () => {
    const key = 'runs/r1/e0/stage/0.json';
    const bytes = Buffer.from('{"partitions":[]}');
    const put = await f.store.put(key, bytes);
    expect(put).toEqual({
      key,
      size: bytes.length,
      sha256: sha256Hex(bytes),
      chunkHashes: [sha256Hex(bytes)],
    });
    expect(await f.store.head(key)).toEqual(put);
    const got = await f.store.get(key);
    expect(types.isUint8Array(got)).toBe(true);
    expect(bytesEqual(got, bytes)).toBe(true);

    await f.store.put('runs/r1/empty.bin', new Uint8Array(0));
    expect(await f.store.head('runs/r1/empty.bin')).toMatchObject({
      size: 0,
      sha256: sha256Hex(''),
      chunkHashes: [],
    });
    expect((await f.store.get('runs/r1/empty.bin')).length).toBe(0);

    await f.store.delete(key);
    await f.store.delete('runs/r1/empty.bin');
    await f.store.delete(key); // deleting a missing object is fine
    expect(await f.store.head(key)).toBeUndefined();
    expect(await codeOf(f.store.get(key))).toBe('E_NOT_FOUND');
  });

  it('reads byte ranges [start, end) and refuses ranges past the end', async () => {
    const key = 'runs/r1/data/shard-00000.bin';
    const bytes = randomBytes(1000);
    await f.store.put(key, bytes);
    expect(bytesEqual(await f.store.get(key, { start: 10, end: 20 }), bytes.subarray(10, 20))).toBe(
      true,
    );
    expect(bytesEqual(await f.store.get(key, { start: 0, end: 1000 }), bytes)).toBe(true);
    expect(bytesEqual(await f.store.get(key, { start: 999, end: 1000 }), bytes.subarray(999))).toBe(
      true,
    );
    expect((await f.store.get(key, { start: 500, end: 500 })).length).toBe(0);
    expect(await codeOf(f.store.get(key, { start: 990, end: 1001 }))).toBe('E_BAD_RANGE');
    expect(await codeOf(f.store.get(key, { start: 1000, end: 1010 }))).toBe('E_BAD_RANGE');
    expect(await codeOf(f.store.get(key, { start: 5, end: 4 }))).toBe('E_BAD_RANGE');
    await f.store.delete(key);
  });

  it('lists by prefix in key order (across listing pages)', async () => {
    const keys = [
      'runs/r2/e1/grad/0/m2.safetensors',
      'runs/r2/e1/grad/0/m1.safetensors',
      'runs/r2/e1/grad/1/m1.safetensors',
      'runs/r2/e10/grad/0/m1.safetensors',
      'runs/r3/e1/grad/0/m1.safetensors',
    ];
    for (const [i, k] of keys.entries()) await f.store.put(k, Buffer.alloc(i + 1, i));
    expect(await f.store.list('runs/r2/e1/')).toEqual([
      { key: 'runs/r2/e1/grad/0/m1.safetensors', size: 2 },
      { key: 'runs/r2/e1/grad/0/m2.safetensors', size: 1 },
      { key: 'runs/r2/e1/grad/1/m1.safetensors', size: 3 },
    ]);
    expect((await f.store.list('runs/r2/e1')).map((o) => o.key)).toContain(
      'runs/r2/e10/grad/0/m1.safetensors',
    );
    expect((await f.store.list('runs/r2/')).length).toBe(4);
    expect(await f.store.list('runs/r9/')).toEqual([]);
    expect(await codeOf(f.store.list('../'))).toBe('E_BAD_KEY');
    for (const k of keys) await f.store.delete(k);
    expect(await f.store.list('runs/r2/')).toEqual([]);
  });

  it('refuses keys outside the key syntax with E_BAD_KEY', async () => {
    for (const key of [
      '/runs/a',
      'runs/../a',
      'runs//a',
      'runs/a/',
      'runs/.hidden',
      'runs/a b',
      '',
    ]) {
      expect(await codeOf(f.store.put(key, Buffer.from('x')))).toBe('E_BAD_KEY');
      expect(await codeOf(f.store.presignGet({ key, expiresAt: soon() }))).toBe('E_BAD_KEY');
    }
  });

  it('uploads through a presigned PUT and downloads through a presigned GET, verified', async () => {
    const key = 'runs/r1/e0/act/7/1/fwd/minerA-lease1.safetensors';
    const bytes = randomBytes(2 * CHUNK_BYTES + 12345);
    const d = describeUpload(bytes);
    expect(d.partSize).toBeUndefined();
    const plan = await f.store.presignPut({
      key,
      size: d.size,
      sha256: d.sha256,
      chunkHashes: d.chunkHashes,
      expiresAt: soon(),
    });
    expect(plan.parts).toHaveLength(1);
    const { etags } = await upload(plan, bytes, fast);
    expect(etags).toHaveLength(1);
    expect(await f.store.head(key)).toEqual({
      key,
      size: bytes.length,
      sha256: d.sha256,
      chunkHashes: d.chunkHashes,
    });

    const url = await f.store.presignGet({ key, expiresAt: soon() });
    const got = await download(url, { sha256: d.sha256, size: d.size }, fast);
    expect(bytesEqual(got, bytes)).toBe(true);

    // a Range read that straddles the chunk boundary is widened, verified, then cut
    const range = { start: CHUNK_BYTES - 100, end: CHUNK_BYTES + 100 };
    const part = await download(url, { chunkHashes: d.chunkHashes, size: d.size, range }, fast);
    expect(bytesEqual(part, bytes.subarray(range.start, range.end))).toBe(true);
    const tail = await download(
      url,
      { chunkHashes: d.chunkHashes, range: { start: bytes.length - 10, end: bytes.length } },
      fast,
    );
    expect(bytesEqual(tail, bytes.subarray(bytes.length - 10))).toBe(true);
    await f.store.delete(key);
  });

  it('uploads multipart with 5 MiB parts, each part signed alone, and assembles the object', async () => {
    const key = 'runs/r1/e0/grad/2/minerA.safetensors';
    const bytes = randomBytes(2 * MIN_PART_BYTES + MiB + 7);
    const d = describeUpload(bytes, { partSize: MIN_PART_BYTES });
    const plan = await f.store.createMultipart({
      key,
      size: d.size,
      sha256: d.sha256,
      chunkHashes: d.chunkHashes,
      partSize: d.partSize!,
      partSha256s: d.partSha256s!,
      expiresAt: soon(),
    });
    expect(plan.uploadId).toBeTruthy();
    expect(plan.parts.map((p) => [p.number, p.offset, p.size])).toEqual([
      [1, 0, MIN_PART_BYTES],
      [2, MIN_PART_BYTES, MIN_PART_BYTES],
      [3, 2 * MIN_PART_BYTES, MiB + 7],
    ]);
    expect(new Set(plan.parts.map((p) => p.url)).size).toBe(3);
    const stored: UploadPlan = JSON.parse(JSON.stringify(plan)); // what the orchestrator keeps
    const { etags } = await upload(plan, bytes, fast);
    expect(await f.store.head(key)).toBeUndefined(); // nothing until completed
    const info = await f.store.completeMultipart(stored, etags);
    expect(info).toMatchObject({ key, size: bytes.length, sha256: d.sha256 });
    expect(await f.store.head(key)).toEqual({
      key,
      size: bytes.length,
      sha256: d.sha256,
      chunkHashes: chunkHashes(bytes),
    });
    const got = await download(
      await f.store.presignGet({ key, expiresAt: soon() }),
      { sha256: d.sha256, size: d.size },
      fast,
    );
    expect(bytesEqual(got, bytes)).toBe(true);
    await f.store.delete(key);
  });

  it('retries a failed part alone', async () => {
    const key = 'runs/r1/e0/merged/0/3/minerB.safetensors';
    const bytes = randomBytes(2 * MIN_PART_BYTES + 1);
    const d = describeUpload(bytes, { partSize: MIN_PART_BYTES });
    const plan = await f.store.createMultipart({
      key,
      size: d.size,
      sha256: d.sha256,
      partSize: d.partSize!,
      partSha256s: d.partSha256s!,
      expiresAt: soon(),
    });
    // The first PUT of part 2 gets a 503; everything else reaches the store.
    const agent = new MockAgent();
    agent.enableNetConnect();
    const seen: string[] = [];
    agent
      .get(f.origin)
      .intercept({ method: 'PUT', path: (p) => /[?&](part|partNumber)=2(&|$)/.test(p) })
      .reply(503, 'injected')
      .times(1);
    try {
      const { etags } = await upload(plan, bytes, {
        ...fast,
        dispatcher: agent,
        onRetry: (r) => seen.push(`part ${r.part} try ${r.attempt} ${r.error.code}`),
      });
      expect(seen).toEqual(['part 2 try 1 E_TRANSFER_FAILED']);
      await f.store.completeMultipart(plan, etags);
    } finally {
      await agent.close();
    }
    expect(await f.store.head(key)).toMatchObject({ size: bytes.length, sha256: d.sha256 });
    await f.store.delete(key);
  });

  it("gives a validator the errors it tells apart: a miner's object gone or out of reach is not the miner's fault, wrong bytes are", async () => {
    const key = 'runs/r1/e5/act/133/0/fwd/minerA.safetensors';
    const bytes = randomBytes(1000);
    const want = { sha256: sha256Hex(bytes), size: bytes.length };
    await f.store.put(key, bytes);
    const url = await f.store.presignGet({ key, expiresAt: soon() });
    expect(bytesEqual(await download(url, want, fast), bytes)).toBe(true);
    // rewritten under its key: the miner's claim no longer holds
    await f.store.put(key, randomBytes(1000));
    const tampered = await codeOf(download(url, want, fast));
    expect([tampered, verdictOnUnreadable(tampered)]).toEqual(['E_HASH_MISMATCH', false]);
    // pruned by retention while the audit waited for a slow validator
    await f.store.delete(key);
    const gone = await codeOf(download(url, want, fast));
    expect([gone, verdictOnUnreadable(gone)]).toEqual(['E_NOT_FOUND', null]);
    await f.store.put(key, bytes);
    f.shiftClock(-3600_000); // a URL that expired while the audit queued
    const stale = await f.store.presignGet({ key, expiresAt: Date.now() - 3600_000 + 60_000 });
    f.shiftClock(0);
    const expired = await codeOf(download(stale, want, fast));
    expect([expired, verdictOnUnreadable(expired)]).toEqual(['E_URL_EXPIRED', null]);
    await f.store.delete(key);
  });

  it('catches a tampered object on download: whole, and in the chunk that changed only', async () => {
    const key = 'runs/r1/e0/grad/0/minerC.safetensors';
    const bytes = randomBytes(2 * CHUNK_BYTES + 10);
    const d = describeUpload(bytes);
    await upload(
      await f.store.presignPut({ key, size: d.size, sha256: d.sha256, expiresAt: soon() }),
      bytes,
      fast,
    );
    const tampered = Buffer.from(bytes);
    tampered[CHUNK_BYTES + 5] ^= 0xff;
    await f.store.put(key, tampered); // someone with store access rewrites it
    const url = await f.store.presignGet({ key, expiresAt: soon() });
    expect(await codeOf(download(url, { sha256: d.sha256 }, fast))).toBe('E_HASH_MISMATCH');
    expect(
      await codeOf(
        download(
          url,
          { chunkHashes: d.chunkHashes, range: { start: CHUNK_BYTES, end: CHUNK_BYTES + 10 } },
          fast,
        ),
      ),
    ).toBe('E_HASH_MISMATCH');
    const clean = await download(
      url,
      { chunkHashes: d.chunkHashes, range: { start: 0, end: 10 } },
      fast,
    );
    expect(bytesEqual(clean, bytes.subarray(0, 10))).toBe(true);
    await f.store.delete(key);
  });

  it('refuses expired URLs with E_URL_EXPIRED, for GET and PUT', async () => {
    const key = 'runs/r1/e0/grad/3/minerE.safetensors';
    const bytes = randomBytes(100);
    await f.store.put(key, bytes);
    f.shiftClock(-3600_000); // URLs issued an hour ago, valid for a minute
    const issuedAt = Date.now() - 3600_000;
    const url = await f.store.presignGet({ key, expiresAt: issuedAt + 60_000 });
    const plan = await f.store.presignPut({
      key,
      size: 100,
      sha256: sha256Hex(bytes),
      expiresAt: issuedAt + 60_000,
    });
    f.shiftClock(0);
    expect(await codeOf(download(url, { sha256: sha256Hex(bytes) }, fast))).toBe('E_URL_EXPIRED');
    expect(await codeOf(upload(plan, bytes, fast))).toBe('E_URL_EXPIRED');
    await f.store.delete(key);
  });

  it('refuses to issue URLs for bad declarations', async () => {
    const key = 'runs/r1/e0/grad/4/minerF.safetensors';
    const sha256 = sha256Hex('x');
    expect(
      await codeOf(f.store.presignPut({ key, size: 1, sha256, expiresAt: Date.now() - 1 })),
    ).toBe('E_BAD_EXPIRY');
    expect(
      await codeOf(f.store.presignPut({ key, size: 1, sha256: 'ABC', expiresAt: soon() })),
    ).toBe('E_BAD_HASH');
    expect(
      await codeOf(f.store.presignPut({ key, size: 64 * MiB + 1, sha256, expiresAt: soon() })),
    ).toBe('E_TOO_LARGE');
    expect(
      await codeOf(
        f.store.presignPut({
          key,
          size: 1,
          sha256,
          chunkHashes: [sha256, sha256],
          expiresAt: soon(),
        }),
      ),
    ).toBe('E_BAD_HASH');
    expect(
      await codeOf(
        f.store.createMultipart({
          key,
          size: 10 * MiB,
          sha256,
          partSize: MiB,
          partSha256s: [],
          expiresAt: soon(),
        }),
      ),
    ).toBe('E_BAD_SIZE');
    expect(
      await codeOf(
        f.store.createMultipart({
          key,
          size: 10 * MiB,
          sha256,
          partSize: 5 * MiB,
          partSha256s: [sha256],
          expiresAt: soon(),
        }),
      ),
    ).toBe('E_BAD_HASH');
  });
}
