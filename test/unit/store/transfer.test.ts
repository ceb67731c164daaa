/**
 * The client transfers against a scripted server (undici's MockAgent, no network): how refusals
 * become codes, when retries stop, and that nothing unverified is returned.
 */
import { randomBytes } from 'node:crypto';
import { MockAgent } from 'undici';
import { CHUNK_BYTES, chunkHashes, sha256Hex } from '../../../src/tensor-io/hash.js';
import { describeUpload, download, upload, type UploadPlan } from '../../../src/store/index.js';
import { refusal } from '../../../src/store/transfer.js';

const ORIGIN = 'http://store.test';
let agent: MockAgent;
beforeEach(() => {
  agent = new MockAgent();
  agent.disableNetConnect();
});
afterEach(async () => {
  await agent.close();
});
const fast = () => ({ baseDelayMs: 0, dispatcher: agent });

describe('refusal', () => {
  it("reads S3's expired-URL reply as E_URL_EXPIRED", () => {
    const xml =
      '<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>';
    expect(refusal(403, xml, 'download')).toMatchObject({
      error: { code: 'E_URL_EXPIRED' },
      retryable: false,
    });
  });

  it("reads the local store's JSON errors", () => {
    expect(refusal(403, '{"error":{"code":"E_URL_EXPIRED","message":"m"}}', 'x').error.code).toBe(
      'E_URL_EXPIRED',
    );
    expect(refusal(400, '{"error":{"code":"E_HASH_MISMATCH","message":"m"}}', 'x').error.code).toBe(
      'E_HASH_MISMATCH',
    );
    const forged = refusal(
      403,
      '{"error":{"code":"E_BAD_SIGNATURE","message":"not a valid store URL"}}',
      'upload',
    );
    expect(forged).toMatchObject({ retryable: false, error: { code: 'E_TRANSFER_FAILED' } });
    expect(forged.error.message).toContain('E_BAD_SIGNATURE');
  });

  it("maps S3's checksum refusal to E_HASH_MISMATCH and 5xx, 408, 429 to retryable failures", () => {
    expect(refusal(400, '<Error><Code>BadDigest</Code></Error>', 'x').error.code).toBe(
      'E_HASH_MISMATCH',
    );
    expect(refusal(404, '<Error><Code>NoSuchKey</Code></Error>', 'x').error.code).toBe(
      'E_NOT_FOUND',
    );
    for (const status of [500, 503, 408, 429])
      expect(refusal(status, '', 'x').retryable).toBe(true);
    expect(refusal(403, '<Error><Code>SignatureDoesNotMatch</Code></Error>', 'x').retryable).toBe(
      false,
    );
  });
});

describe('upload', () => {
  const bytes = randomBytes(100);
  const plan: UploadPlan = {
    key: 'runs/r1/e0/grad/0/m.safetensors',
    size: 100,
    sha256: sha256Hex(bytes),
    expiresAt: Date.now() + 60_000,
    parts: [
      {
        number: 1,
        offset: 0,
        size: 100,
        sha256: sha256Hex(bytes),
        url: `${ORIGIN}/put`,
        headers: { 'x-amz-checksum-sha256': 'abc' },
      },
    ],
  };

  it('sends the signed headers and returns the ETag', async () => {
    let sent: Record<string, string> = {};
    agent
      .get(ORIGIN)
      .intercept({ method: 'PUT', path: '/put', headers: (h) => ((sent = h), true) })
      .reply(200, '', { headers: { etag: '"e1"' } });
    const { etags } = await upload(plan, bytes, fast());
    expect(etags).toEqual(['"e1"']);
    expect(sent).toMatchObject({ 'x-amz-checksum-sha256': 'abc', 'content-length': '100' });
  });

  it('gives up after the attempts it was given, naming the last failure', async () => {
    agent.get(ORIGIN).intercept({ method: 'PUT', path: '/put' }).reply(503, 'busy').times(3);
    const retries: number[] = [];
    const err = await upload(plan, bytes, {
      ...fast(),
      attempts: 3,
      onRetry: (r) => retries.push(r.attempt),
    }).catch((e) => e);
    expect(err.code).toBe('E_TRANSFER_FAILED');
    expect(err.message).toMatch(/failed 3 times.*HTTP 503/);
    expect(retries).toEqual([1, 2]);
  });

  it('does not retry an expired URL', async () => {
    agent
      .get(ORIGIN)
      .intercept({ method: 'PUT', path: '/put' })
      .reply(403, '<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
    const err = await upload(plan, bytes, fast()).catch((e) => e);
    expect([err.code, err.hint]).toEqual(['E_URL_EXPIRED', 'ask the orchestrator for a new URL']);
  });

  it('refuses bytes of another size than planned before sending anything', async () => {
    expect((await upload(plan, bytes.subarray(1), fast()).catch((e) => e)).code).toBe('E_BAD_SIZE');
  });
});

describe('download', () => {
  const bytes = randomBytes(2 * CHUNK_BYTES + 100);
  const d = describeUpload(bytes);

  it('retries a network failure, then verifies', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/obj' }).replyWithError(new Error('connection reset'));
    pool.intercept({ path: '/obj' }).reply(200, bytes);
    const got = await download(`${ORIGIN}/obj`, { sha256: d.sha256, size: d.size }, fast());
    expect(Buffer.compare(Buffer.from(got), bytes)).toBe(0);
  });

  it('refuses a body longer than the object without reading it all', async () => {
    agent
      .get(ORIGIN)
      .intercept({ path: '/obj' })
      .reply(200, Buffer.concat([bytes, Buffer.from('more')]));
    expect(
      (await download(`${ORIGIN}/obj`, { sha256: d.sha256, size: d.size }, fast()).catch((e) => e))
        .code,
    ).toBe('E_HASH_MISMATCH');
  });

  it('asks for whole chunks (the last clamped to the object) and cuts the range out after verifying', async () => {
    let asked = '';
    agent
      .get(ORIGIN)
      .intercept({ path: '/obj', headers: (h) => ((asked = String(h.range)), true) })
      .reply(206, bytes.subarray(CHUNK_BYTES, 2 * CHUNK_BYTES + 100));
    const got = await download(
      `${ORIGIN}/obj`,
      {
        chunkHashes: chunkHashes(bytes),
        size: bytes.length,
        range: { start: CHUNK_BYTES + 10, end: 2 * CHUNK_BYTES + 20 },
      },
      fast(),
    );
    expect(asked).toBe(`bytes=${CHUNK_BYTES}-${2 * CHUNK_BYTES + 99}`);
    expect(
      Buffer.compare(Buffer.from(got), bytes.subarray(CHUNK_BYTES + 10, 2 * CHUNK_BYTES + 20)),
    ).toBe(0);
  });

  it('copes with a server that ignores Range, and refuses a short reply', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/obj' }).reply(200, bytes);
    const got = await download(
      `${ORIGIN}/obj`,
      { chunkHashes: d.chunkHashes, range: { start: 5, end: 15 } },
      fast(),
    );
    expect(Buffer.compare(Buffer.from(got), bytes.subarray(5, 15))).toBe(0);
    // Read twice: a short reply could be damage on the way; the same one twice is the object's.
    pool.intercept({ path: '/obj' }).reply(206, bytes.subarray(0, CHUNK_BYTES)).times(2);
    const short = await download(
      `${ORIGIN}/obj`,
      { chunkHashes: d.chunkHashes, range: { start: 5, end: CHUNK_BYTES + 5 } },
      fast(),
    ).catch((e) => e);
    expect(short.code).toBe('E_HASH_MISMATCH');
  });

  it('needs the hashes it is to verify against', async () => {
    expect((await download(`${ORIGIN}/obj`, {}, fast()).catch((e) => e)).code).toBe('E_BAD_HASH');
    expect(
      (
        await download(
          `${ORIGIN}/obj`,
          { sha256: d.sha256, range: { start: 0, end: 1 } },
          fast(),
        ).catch((e) => e)
      ).code,
    ).toBe('E_BAD_RANGE');
  });
});
