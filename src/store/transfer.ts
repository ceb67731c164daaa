/**
 * Client side of the store, used by miners and validators, who hold URLs and never credentials.
 * The same code talks to S3 and to the local store: an `UploadPlan` is a list of signed PUTs
 * with the headers each must carry, and a download URL is a plain GET.
 *
 * - `describeUpload` computes what to declare to the orchestrator: size, sha256, chunk hashes
 *   and, for a multipart upload, the part size and each part's sha256.
 * - `upload` sends every part, each retried alone with exponential backoff on network errors,
 *   5xx, 408 and 429; it returns the parts' ETags for the orchestrator to complete a multipart
 *   upload with.
 * - `download` verifies before returning anything: a whole object against its sha256; a Range
 *   read is widened to whole chunks (`chunkSpan`), verified with `verifyRange`, then cut. Bytes
 *   that fail are read again, and refused when two reads give the same wrong bytes (damage on
 *   the way differs from read to read); an upload the store says arrived damaged is resent.
 *
 * Errors: E_URL_EXPIRED (ask for a new URL), E_HASH_MISMATCH (the object is not the declared
 * one: report it), E_NOT_FOUND, E_TRANSFER_FAILED (retries exhausted, or the
 * server refused for another reason, named in the message).
 */
import { request, type Dispatcher } from 'undici';
import { IotaError, isIotaError } from '../errors.js';
import { CHUNK_BYTES, chunkHashes, chunkSpan, sha256Hex, verifyRange } from '../tensor-io/hash.js';
import { partLayout } from './declaration.js';
import { MAX_SINGLE_PUT_BYTES, type ByteRange, type PartUpload, type UploadPlan } from './types.js';

export interface TransferOptions {
  /** tries per part (upload) or per request (download); default 5 */
  attempts?: number;
  /** first backoff in ms, doubled per retry with jitter; default 250 */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** parts in flight at once; default 4 */
  concurrency?: number;
  dispatcher?: Dispatcher;
  signal?: AbortSignal;
  /** told about every failed try that will be retried */
  onRetry?: (info: { part?: number; attempt: number; error: IotaError }) => void;
}

export interface UploadDeclaration {
  size: number;
  sha256: string;
  chunkHashes: string[];
  /** present for a multipart upload */
  partSize?: number;
  partSha256s?: string[];
}

/** Multipart part size when none is asked for: 4 chunks, over S3's 5 MiB minimum. */
export const DEFAULT_PART_BYTES = 4 * CHUNK_BYTES;

/**
 * What to declare before uploading `bytes`. Objects over MAX_SINGLE_PUT_BYTES, or any object when
 * `partSize` is given, are described as multipart uploads.
 */
export function describeUpload(
  bytes: Uint8Array,
  o: { partSize?: number } = {},
): UploadDeclaration {
  const d: UploadDeclaration = {
    size: bytes.length,
    sha256: sha256Hex(bytes),
    chunkHashes: chunkHashes(bytes),
  };
  if (o.partSize !== undefined || bytes.length > MAX_SINGLE_PUT_BYTES) {
    const partSize = o.partSize ?? DEFAULT_PART_BYTES;
    d.partSize = partSize;
    d.partSha256s = partLayout(bytes.length, partSize).map((p) =>
      sha256Hex(bytes.subarray(p.offset, p.offset + p.size)),
    );
  }
  return d;
}

// ---- failures and retries ----------------------------------------------------------------------

class Failure extends Error {
  constructor(
    readonly error: IotaError,
    readonly retryable: boolean,
    /** rate limited: wait this long and try again, without counting an attempt */
    readonly waitMs?: number,
  ) {
    super(error.message);
  }
}

/** What the server said: the local store's JSON `{ error: { code } }` or S3's XML `<Code>`. */
function serverSays(body: string): { code?: string; message?: string } {
  try {
    const j = JSON.parse(body) as { error?: { code?: string; message?: string } };
    if (j?.error?.code) return { code: j.error.code, message: j.error.message };
  } catch {
    // not JSON
  }
  const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1];
  return { code, message };
}

/** An HTTP refusal as a coded error, and whether trying again could help. */
export function refusal(
  status: number,
  body: string,
  what: string,
  retryAfter?: string | string[],
): { error: IotaError; retryable: boolean; waitMs?: number } {
  const { code, message } = serverSays(body);
  const said = `HTTP ${status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`;
  if (code === 'E_URL_EXPIRED' || (code === 'AccessDenied' && /expired/i.test(message ?? ''))) {
    return {
      error: new IotaError(
        'E_URL_EXPIRED',
        `${what}: the URL has expired (${said})`,
        'ask the orchestrator for a new URL',
      ),
      retryable: false,
    };
  }
  if (
    code === 'E_HASH_MISMATCH' ||
    code === 'BadDigest' ||
    code === 'InvalidDigest' ||
    code === 'XAmzContentChecksumMismatch'
  ) {
    return {
      error: new IotaError(
        'E_HASH_MISMATCH',
        `${what}: the store refused the bytes as not matching their declared sha256 (${said})`,
      ),
      retryable: false,
    };
  }
  if (status === 404 || code === 'NoSuchKey' || code === 'E_NOT_FOUND') {
    return {
      error: new IotaError('E_NOT_FOUND', `${what}: no such object (${said})`),
      retryable: false,
    };
  }
  const retryable = status >= 500 || status === 408 || status === 429;
  const waitMs = status === 429 ? retryAfterMs(body, retryAfter) : undefined;
  return {
    ...(waitMs !== undefined ? { waitMs } : {}),
    error: new IotaError(
      'E_TRANSFER_FAILED',
      `${what}: ${said}`,
      retryable
        ? undefined
        : 'the URL does not allow this request; ask the orchestrator for a new one',
    ),
    retryable,
  };
}

/** How long a rate-limited request should wait: the body's `retry_after_ms`, else Retry-After. */
function retryAfterMs(body: string, header?: string | string[]): number {
  try {
    const ms = (JSON.parse(body) as { error?: { retry_after_ms?: unknown } })?.error
      ?.retry_after_ms;
    if (typeof ms === 'number' && ms >= 0) return Math.min(30_000, ms);
  } catch {
    // not JSON
  }
  const s = Number(Array.isArray(header) ? header[0] : header);
  return Number.isFinite(s) && s >= 0 ? Math.min(30_000, 1000 * s) : 1000;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function withRetries<T>(
  what: string,
  part: number | undefined,
  o: TransferOptions,
  attempt: () => Promise<T>,
): Promise<T> {
  const attempts = o.attempts ?? 5;
  const base = o.baseDelayMs ?? 250;
  const max = o.maxDelayMs ?? 8000;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (e) {
      if (o.signal?.aborted) throw e;
      let failure: Failure;
      if (e instanceof Failure) failure = e;
      else if (isIotaError(e)) throw e;
      else
        failure = new Failure(
          new IotaError('E_TRANSFER_FAILED', `${what}: ${(e as Error).message}`),
          true,
        );
      if (!failure.retryable) throw failure.error;
      if (failure.waitMs !== undefined) {
        // Rate limited: as long as the server asks, never counted against the attempts (an
        // expired URL ends it with E_URL_EXPIRED).
        o.onRetry?.({ part, attempt: n, error: failure.error });
        await sleep(failure.waitMs * (1 + 0.25 * Math.random()));
        n--;
        continue;
      }
      if (n >= attempts) {
        throw new IotaError(
          'E_TRANSFER_FAILED',
          `${what} failed ${attempts} times; last: ${failure.error.message}`,
          'check the network and the store; the orchestrator may issue new URLs',
        );
      }
      o.onRetry?.({ part, attempt: n, error: failure.error });
      await sleep(Math.min(max, base * 2 ** (n - 1)) * (0.5 + Math.random() / 2));
    }
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// ---- upload ------------------------------------------------------------------------------------

async function putPart(
  part: PartUpload,
  bytes: Uint8Array,
  what: string,
  o: TransferOptions,
): Promise<string> {
  const res = await request(part.url, {
    method: 'PUT',
    body: asBuffer(bytes),
    headers: { ...part.headers, 'content-length': String(bytes.length) },
    dispatcher: o.dispatcher,
    signal: o.signal,
  });
  if (res.statusCode >= 200 && res.statusCode < 300) {
    await res.body.dump();
    const etag = res.headers.etag;
    if (typeof etag !== 'string')
      throw new Failure(
        new IotaError('E_TRANSFER_FAILED', `${what}: the store sent no ETag`),
        false,
      );
    return etag;
  }
  const failure = refusal(res.statusCode, await res.body.text(), what, res.headers['retry-after']);
  // When the bytes sent are the ones the URL is for, a store that received others got them
  // damaged on the way, and sending them again is the cure.
  const damaged = failure.error.code === 'E_HASH_MISMATCH' && sha256Hex(bytes) === part.sha256;
  throw new Failure(failure.error, failure.retryable || damaged, failure.waitMs);
}

/** Uploads `bytes` as the plan says; returns each part's ETag in part order. */
export async function upload(
  plan: UploadPlan,
  bytes: Uint8Array,
  o: TransferOptions = {},
): Promise<{ etags: string[] }> {
  if (bytes.length !== plan.size) {
    throw new IotaError(
      'E_BAD_SIZE',
      `the plan for ${plan.key} is for ${plan.size} bytes, not ${bytes.length}`,
    );
  }
  const etags = new Array<string>(plan.parts.length);
  let next = 0;
  const worker = async () => {
    while (next < plan.parts.length) {
      const i = next++;
      const part = plan.parts[i];
      const what =
        plan.parts.length > 1
          ? `upload of ${plan.key} part ${part.number}/${plan.parts.length}`
          : `upload of ${plan.key}`;
      const slice = bytes.subarray(part.offset, part.offset + part.size);
      etags[i] = await withRetries(what, part.number, o, () => putPart(part, slice, what, o));
    }
  };
  const workers = Math.max(1, Math.min(o.concurrency ?? 4, plan.parts.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return { etags };
}

// ---- download ----------------------------------------------------------------------------------

export interface DownloadExpectation {
  /** required for a whole-object download */
  sha256?: string;
  /** the object's size, when known: checked, and clamps a widened range */
  size?: number;
  /** for a Range read: the object's chunk hashes (the read widens to whole chunks), or `rangeSha256` */
  chunkHashes?: readonly string[];
  /** for a Range read of exactly `range`: the sha256 of those bytes (data windows) */
  rangeSha256?: string;
  /** bytes [start, end) of the object */
  range?: ByteRange;
  chunkBytes?: number;
}

/** GETs `url` (with a Range header when `range` is given), refusing a body over `limitFor(status)` bytes. */
async function fetchBytes(
  url: string,
  range: ByteRange | undefined,
  limitFor: (status: number) => number | undefined,
  what: string,
  o: TransferOptions,
): Promise<{ status: number; bytes: Buffer }> {
  const res = await request(url, {
    method: 'GET',
    headers: range ? { range: `bytes=${range.start}-${range.end - 1}` } : {},
    dispatcher: o.dispatcher,
    signal: o.signal,
  });
  if (res.statusCode !== 200 && res.statusCode !== 206) {
    const failure = refusal(
      res.statusCode,
      await res.body.text(),
      what,
      res.headers['retry-after'],
    );
    throw new Failure(failure.error, failure.retryable, failure.waitMs);
  }
  const limit = limitFor(res.statusCode);
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (limit !== undefined && length > limit) {
      res.body.destroy();
      throw new IotaError(
        'E_HASH_MISMATCH',
        `${what}: the store sent more than the ${limit} bytes expected`,
      );
    }
    chunks.push(chunk);
  }
  return { status: res.statusCode, bytes: Buffer.concat(chunks, length) };
}

/** Fetches and verifies; refuses when two reads in a row give the same wrong bytes (see above). */
async function fetchVerified(
  what: string,
  o: TransferOptions,
  fetch: () => Promise<{ status: number; bytes: Buffer }>,
  verify: (got: { status: number; bytes: Buffer }) => Uint8Array,
): Promise<Uint8Array> {
  const attempts = o.attempts ?? 5;
  let lastWrong: string | undefined;
  for (let n = 1; ; n++) {
    const got = await withRetries(what, undefined, o, fetch);
    try {
      return verify(got);
    } catch (e) {
      if (!isIotaError(e) || e.code !== 'E_HASH_MISMATCH') throw e;
      const wrong = sha256Hex(got.bytes);
      if (wrong === lastWrong || n >= attempts) throw e;
      lastWrong = wrong;
      o.onRetry?.({ attempt: n, error: e });
    }
  }
}

/** Downloads and verifies an object or a byte range of it. */
export async function download(
  url: string,
  expect: DownloadExpectation,
  o: TransferOptions = {},
): Promise<Uint8Array> {
  const chunkBytes = expect.chunkBytes ?? CHUNK_BYTES;
  if (expect.range) return downloadRange(url, expect.range, expect, chunkBytes, o);
  const what = 'download';
  if (!expect.sha256)
    throw new IotaError(
      'E_BAD_HASH',
      'a download needs the sha256 the orchestrator gave for the object',
    );
  return fetchVerified(
    what,
    o,
    () => fetchBytes(url, undefined, () => expect.size, what, o),
    ({ bytes }) => {
      if (expect.size !== undefined && bytes.length !== expect.size) {
        throw new IotaError(
          'E_HASH_MISMATCH',
          `${what}: got ${bytes.length} bytes, the object has ${expect.size}`,
        );
      }
      const got = sha256Hex(bytes);
      if (got !== expect.sha256)
        throw new IotaError(
          'E_HASH_MISMATCH',
          `${what}: the object's sha256 is ${got}, expected ${expect.sha256}`,
          'report it to the orchestrator; do not use these bytes',
        );
      return bytes;
    },
  );
}

async function downloadRange(
  url: string,
  range: ByteRange,
  expect: DownloadExpectation,
  chunkBytes: number,
  o: TransferOptions,
): Promise<Uint8Array> {
  const what = `download of bytes [${range.start}, ${range.end})`;
  if (expect.rangeSha256 !== undefined) {
    const n = range.end - range.start;
    return fetchVerified(
      what,
      o,
      () => fetchBytes(url, range, (st) => (st === 206 ? n : expect.size), what, o),
      ({ status, bytes: got }) => {
        const bytes = status === 200 ? got.subarray(range.start, range.end) : got;
        if (bytes.length !== n || sha256Hex(bytes) !== expect.rangeSha256) {
          throw new IotaError(
            'E_HASH_MISMATCH',
            `${what}: the bytes do not match the sha256 the orchestrator gave`,
            'report it to the orchestrator; do not use these bytes',
          );
        }
        return bytes;
      },
    );
  }
  if (!expect.chunkHashes)
    throw new IotaError(
      'E_BAD_RANGE',
      "a Range read needs the object's chunk hashes (or the range's sha256) to verify it",
    );
  const wide = chunkSpan(range.start, range.end, chunkBytes, expect.size);
  if (wide.start === wide.end) return new Uint8Array(0);
  // A 206 carries the span; a 200 (a server that ignores Range) the whole object.
  const whole = expect.size ?? expect.chunkHashes.length * chunkBytes;
  const limitFor = (status: number) => (status === 206 ? wide.end - wide.start : whole);
  return fetchVerified(
    what,
    o,
    () => fetchBytes(url, wide, limitFor, what, o),
    ({ status, bytes: got }) => {
      const bytes = status === 200 ? got.subarray(wide.start, wide.end) : got;
      verifyRange(bytes, wide.start, expect.chunkHashes!, chunkBytes);
      if (wide.start + bytes.length < range.end) {
        throw new IotaError(
          'E_HASH_MISMATCH',
          `${what}: the store sent only up to byte ${wide.start + bytes.length}`,
        );
      }
      return bytes.subarray(range.start - wide.start, range.end - wide.start);
    },
  );
}
