/**
 * The local store's own guarantees, over HTTP: its signed URLs cannot be forged, outlived,
 * re-targeted or overfilled, a body must hash to what was signed, and a refusal changes nothing.
 */
import { randomBytes } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import Fastify from 'fastify';
import { request } from 'undici';
import { sha256Hex } from '../../../src/tensor-io/hash.js';
import {
  describeUpload,
  LocalStore,
  localStoreRoutes,
  MIN_PART_BYTES,
  upload,
} from '../../../src/store/index.js';
import { localFixture, type LocalFixture } from './fixtures.js';

let f: LocalFixture;
beforeAll(async () => {
  f = await localFixture();
});
afterAll(async () => {
  await f.close();
});
afterEach(() => f.shiftClock(0));

const soon = () => Date.now() + 60_000;
const KEY = 'runs/r1/e0/grad/0/minerA.safetensors';
const OTHER = 'runs/r1/e0/grad/0/minerB.safetensors';

async function send(
  url: string,
  method: 'GET' | 'PUT' | 'HEAD',
  body?: Buffer | Readable,
  headers: Record<string, string> = {},
) {
  const res = await request(url, { method, body, headers });
  const text = await res.body.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    code = undefined;
  }
  return { status: res.statusCode, code, text, headers: res.headers };
}

/** Everything the store holds: keys, sizes, hashes, and no stray temp files. */
async function snapshot(store: LocalStore) {
  const objects = await store.list('');
  const heads = await Promise.all(objects.map((o) => store.head(o.key)));
  return { heads, tmp: await readdir(`${f.root}/tmp`) };
}

describe('local store URLs', () => {
  const bytes = randomBytes(3000);
  const sha256 = sha256Hex(bytes);
  const putUrl = () =>
    f.store
      .presignPut({ key: KEY, size: bytes.length, sha256, expiresAt: soon() })
      .then((p) => p.parts[0].url);

  it('accepts the PUT it signed and serves it back with its ETag', async () => {
    const r = await send(await putUrl(), 'PUT', bytes);
    expect(r.status).toBe(200);
    expect(r.headers.etag).toBe(`"${sha256}"`);
    const get = await request(await f.store.presignGet({ key: KEY, expiresAt: soon() }));
    expect(get.statusCode).toBe(200);
    expect(Buffer.compare(Buffer.from(await get.body.arrayBuffer()), bytes)).toBe(0);
    await f.store.delete(KEY);
  });

  describe('refuses, with a code and a 4xx, and stores nothing', () => {
    beforeAll(async () => {
      await f.store.put(OTHER, Buffer.from('the other object'));
    });

    async function expectRefused(
      attempt: () => Promise<{ status: number; code?: string }>,
      status: number,
      code: string,
    ) {
      const before = await snapshot(f.store);
      const r = await attempt();
      expect([r.status, r.code]).toEqual([status, code]);
      expect(await snapshot(f.store)).toEqual(before);
      expect(await f.store.head(KEY)).toBeUndefined();
    }

    it('a forged signature', async () => {
      const url = new URL(await putUrl());
      const sig = url.searchParams.get('sig')!;
      url.searchParams.set('sig', (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1));
      await expectRefused(() => send(url.toString(), 'PUT', bytes), 403, 'E_BAD_SIGNATURE');
      const unsigned = new URL(await putUrl());
      unsigned.searchParams.delete('sig');
      await expectRefused(() => send(unsigned.toString(), 'PUT', bytes), 403, 'E_BAD_SIGNATURE');
    });

    it('a signed field changed: length, sha256, expiry or method', async () => {
      for (const [name, value] of [
        ['len', '2999'],
        ['sha', sha256Hex('other')],
        ['exp', String(soon() + 3600_000)],
        ['m', 'GET'],
      ]) {
        const url = new URL(await putUrl());
        url.searchParams.set(name, value);
        await expectRefused(
          () =>
            send(
              url.toString(),
              name === 'm' ? 'GET' : 'PUT',
              name === 'len' ? bytes.subarray(1) : bytes,
            ),
          403,
          'E_BAD_SIGNATURE',
        );
      }
    });

    it('an expired URL', async () => {
      const url = await putUrl();
      f.shiftClock(61_000);
      await expectRefused(() => send(url, 'PUT', bytes), 403, 'E_URL_EXPIRED');
      const get = await f.store.presignGet({ key: OTHER, expiresAt: Date.now() + 61_000 + 1000 });
      f.shiftClock(62_001);
      expect((await send(get, 'GET')).code).toBe('E_URL_EXPIRED');
    });

    it('a URL re-targeted to another key', async () => {
      const url = (await putUrl()).replace(KEY, 'runs/r1/e0/grad/0/minerZ.safetensors');
      await expectRefused(() => send(url, 'PUT', bytes), 403, 'E_BAD_SIGNATURE');
      const onto = (await putUrl()).replace(KEY, OTHER); // overwrite someone else's object
      await expectRefused(() => send(onto, 'PUT', bytes), 403, 'E_BAD_SIGNATURE');
      const read = (await f.store.presignGet({ key: KEY, expiresAt: soon() })).replace(KEY, OTHER);
      expect((await send(read, 'GET')).code).toBe('E_BAD_SIGNATURE');
    });

    it('a URL used with another method', async () => {
      const getUrl = (await f.store.presignGet({ key: OTHER, expiresAt: soon() })).replace(
        OTHER,
        KEY,
      );
      expect((await send(getUrl, 'PUT', bytes)).code).toBe('E_BAD_SIGNATURE');
      const getOther = await f.store.presignGet({ key: KEY, expiresAt: soon() });
      await expectRefused(() => send(getOther, 'PUT', bytes), 405, 'E_WRONG_METHOD');
      const r = await send(await putUrl(), 'GET');
      expect([r.status, r.code, r.headers.allow]).toEqual([405, 'E_WRONG_METHOD', 'PUT']);
    });

    it('a body longer than signed, before reading it', async () => {
      await expectRefused(
        async () => send(await putUrl(), 'PUT', Buffer.concat([bytes, Buffer.from('!')])),
        413,
        'E_TOO_LARGE',
      );
    });

    it('a body shorter than signed', async () => {
      await expectRefused(
        async () => send(await putUrl(), 'PUT', bytes.subarray(1)),
        400,
        'E_LENGTH_MISMATCH',
      );
    });

    it('a body without content-length', async () => {
      await expectRefused(
        async () => send(await putUrl(), 'PUT', Readable.from([bytes])),
        411,
        'E_LENGTH_REQUIRED',
      );
    });

    it('a body whose sha256 is not the signed one', async () => {
      const wrong = Buffer.from(bytes);
      wrong[1234] ^= 1;
      await expectRefused(async () => send(await putUrl(), 'PUT', wrong), 400, 'E_HASH_MISMATCH');
      const err = await upload(
        await f.store.presignPut({ key: KEY, size: bytes.length, sha256, expiresAt: soon() }),
        wrong,
        { baseDelayMs: 0 },
      ).catch((e) => e);
      expect(err.code).toBe('E_HASH_MISMATCH');
    });

    it('a multipart part re-targeted to another part or another upload, or to an aborted upload', async () => {
      const data = randomBytes(MIN_PART_BYTES + 10);
      const d = describeUpload(data, { partSize: MIN_PART_BYTES });
      const plan = await f.store.createMultipart({
        key: KEY,
        size: d.size,
        sha256: d.sha256,
        partSize: d.partSize!,
        partSha256s: d.partSha256s!,
        expiresAt: soon(),
      });
      const part2 = data.subarray(MIN_PART_BYTES);
      const as1 = plan.parts[1].url.replace('part=2', 'part=1');
      expect((await send(as1, 'PUT', part2)).code).toBe('E_BAD_SIGNATURE');
      const other = await f.store.createMultipart({
        key: KEY,
        size: d.size,
        sha256: d.sha256,
        partSize: d.partSize!,
        partSha256s: d.partSha256s!,
        expiresAt: soon(),
      });
      const elsewhere = plan.parts[1].url.replace(plan.uploadId!, other.uploadId!);
      expect((await send(elsewhere, 'PUT', part2)).code).toBe('E_BAD_SIGNATURE');
      await f.store.abortMultipart(plan);
      await f.store.abortMultipart(other);
      const late = await send(plan.parts[1].url, 'PUT', part2);
      expect([late.status, late.code]).toEqual([404, 'E_NO_UPLOAD']);
      expect(await readdir(`${f.root}/uploads`)).toEqual([]);
    });
  });

  it('completes a multipart upload only when every part is there and the whole matches', async () => {
    const data = randomBytes(MIN_PART_BYTES + 10);
    const d = describeUpload(data, { partSize: MIN_PART_BYTES });
    const plan = await f.store.createMultipart({
      key: KEY,
      size: d.size,
      sha256: d.sha256,
      partSize: d.partSize!,
      partSha256s: d.partSha256s!,
      expiresAt: soon(),
    });
    expect((await send(plan.parts[0].url, 'PUT', data.subarray(0, MIN_PART_BYTES))).status).toBe(
      200,
    );
    const missing = await f.store
      .completeMultipart(plan, [`"${d.partSha256s![0]}"`, `"${d.partSha256s![1]}"`])
      .catch((e) => e);
    expect(missing.code).toBe('E_INCOMPLETE_UPLOAD');

    // honest parts, but a whole-object sha256 that does not match them
    const liar = await f.store.createMultipart({
      key: KEY,
      size: d.size,
      sha256: sha256Hex('not it'),
      partSize: d.partSize!,
      partSha256s: d.partSha256s!,
      expiresAt: soon(),
    });
    const { etags } = await upload(liar, data, { baseDelayMs: 0 });
    expect((await f.store.completeMultipart(liar, etags).catch((e) => e)).code).toBe(
      'E_HASH_MISMATCH',
    );
    expect(await f.store.head(KEY)).toBeUndefined();
    await f.store.abortMultipart(plan);
  });

  it('serves one byte range per GET: 206 with Content-Range, suffix ranges, 416 outside', async () => {
    const data = randomBytes(1000);
    await f.store.put(KEY, data);
    const url = await f.store.presignGet({ key: KEY, expiresAt: soon() });
    const mid = await request(url, { headers: { range: 'bytes=100-199' } });
    expect([mid.statusCode, mid.headers['content-range'], mid.headers['content-length']]).toEqual([
      206,
      'bytes 100-199/1000',
      '100',
    ]);
    expect(Buffer.compare(Buffer.from(await mid.body.arrayBuffer()), data.subarray(100, 200))).toBe(
      0,
    );
    const suffix = await request(url, { headers: { range: 'bytes=-10' } });
    expect(Buffer.compare(Buffer.from(await suffix.body.arrayBuffer()), data.subarray(990))).toBe(
      0,
    );
    const open = await request(url, { headers: { range: 'bytes=995-' } });
    expect((await open.body.arrayBuffer()).byteLength).toBe(5);
    const past = await send(url, 'GET', undefined, { range: 'bytes=1000-1100' });
    expect([past.status, past.code, past.headers['content-range']]).toEqual([
      416,
      'E_BAD_RANGE',
      'bytes */1000',
    ]);
    expect((await send(url, 'GET', undefined, { range: 'bytes=0-1,5-6' })).status).toBe(416);
    const head = await send(url, 'HEAD');
    expect([head.status, head.headers['content-length'], head.headers.etag]).toEqual([
      200,
      '1000',
      `"${sha256Hex(data)}"`,
    ]);
    expect(
      (await send(await f.store.presignGet({ key: OTHER + 'x', expiresAt: soon() }), 'GET')).status,
    ).toBe(404);
    await f.store.delete(KEY);
  });

  it('keeps its secret across restarts, in a file only its owner can read', async () => {
    const url = await f.store.presignGet({ key: OTHER, expiresAt: soon() });
    expect((await stat(`${f.root}/secret`)).mode & 0o777).toBe(0o600);
    const again = await localFixture({ root: f.root });
    try {
      const r = await request(url.replace(f.origin, again.origin));
      expect(r.statusCode).toBe(200);
      await r.body.dump();
    } finally {
      await again.close();
    }
    const stranger = await localFixture();
    try {
      await stranger.store.put(OTHER, Buffer.from('the other object'));
      expect((await send(url.replace(f.origin, stranger.origin), 'GET')).code).toBe(
        'E_BAD_SIGNATURE',
      );
    } finally {
      await stranger.close();
    }
  });

  it('streams bodies past a parent server that only takes small JSON (as the orchestrator does)', async () => {
    const app = Fastify({ bodyLimit: 1024 });
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) =>
      done(null, JSON.parse(String(body))),
    );
    await app.register(async (scoped) => localStoreRoutes(f.store)(scoped));
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const data = randomBytes(256 * 1024);
      const plan = await f.store.presignPut({
        key: KEY,
        size: data.length,
        sha256: sha256Hex(data),
        expiresAt: soon(),
      });
      const port = (app.server.address() as { port: number }).port;
      const r = await send(
        plan.parts[0].url.replace(f.origin, `http://127.0.0.1:${port}`),
        'PUT',
        data,
        { 'content-type': 'application/json' },
      );
      expect(r.status).toBe(200);
      expect(await f.store.head(KEY)).toMatchObject({ size: data.length, sha256: sha256Hex(data) });
    } finally {
      await app.close();
      await f.store.delete(KEY);
    }
  });
});
