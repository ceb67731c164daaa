/**
 * Checks on what a client declares before it gets a URL, shared by both stores so they refuse
 * the same things with the same codes. Pure functions over plain data.
 */
import { IotaError } from '../errors.js';
import { CHUNK_BYTES } from '../tensor-io/hash.js';
import { validateKey } from './keys.js';
import {
  MAX_PARTS,
  MAX_SINGLE_PUT_BYTES,
  MAX_URL_TTL_MS,
  MIN_PART_BYTES,
  type MultipartRequest,
  type PutRequest,
  type UploadPlan,
} from './types.js';

const HEX64 = /^[0-9a-f]{64}$/;

export function isSha256Hex(s: unknown): s is string {
  return typeof s === 'string' && HEX64.test(s);
}

export function checkSha256(sha256: unknown, what = 'sha256'): string {
  if (!isSha256Hex(sha256))
    throw new IotaError('E_BAD_HASH', `${what} must be 64 lowercase hex characters`);
  return sha256;
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0)
    throw new IotaError('E_BAD_SIZE', `size must be a non-negative integer, got ${size}`);
}

/** Seconds a URL stays valid; refuses an expiry in the past or beyond S3's 7 days. */
export function checkExpiry(expiresAt: number, now: number): number {
  if (!Number.isSafeInteger(expiresAt))
    throw new IotaError('E_BAD_EXPIRY', `expiresAt ${expiresAt} is not a whole number of ms`);
  if (expiresAt <= now) {
    throw new IotaError('E_BAD_EXPIRY', `expiresAt ${expiresAt} is not in the future (now ${now})`);
  }
  if (expiresAt - now > MAX_URL_TTL_MS) {
    throw new IotaError(
      'E_BAD_EXPIRY',
      'a URL may live at most 7 days',
      'use the lease end as the expiry',
    );
  }
  return Math.ceil((expiresAt - now) / 1000);
}

function checkChunkHashes(
  size: number,
  sha256: string,
  chunkHashes: readonly string[] | undefined,
): void {
  if (chunkHashes === undefined) return;
  const want = Math.ceil(size / CHUNK_BYTES);
  if (!Array.isArray(chunkHashes) || chunkHashes.length !== want) {
    throw new IotaError(
      'E_BAD_HASH',
      `an object of ${size} bytes has ${want} chunk hashes, got ${chunkHashes?.length}`,
    );
  }
  chunkHashes.forEach((h, i) => checkSha256(h, `chunk hash ${i}`));
  if (want === 1 && chunkHashes[0] !== sha256)
    throw new IotaError('E_BAD_HASH', 'a one-chunk object has its sha256 as its chunk hash');
}

/** Validates a single-PUT declaration; returns the URL's lifetime in seconds. */
export function checkPutRequest(req: PutRequest, now: number): number {
  validateKey(req.key);
  checkSize(req.size);
  if (req.size > MAX_SINGLE_PUT_BYTES) {
    throw new IotaError(
      'E_TOO_LARGE',
      `${req.size} bytes is over the single-PUT limit of ${MAX_SINGLE_PUT_BYTES}`,
      'upload it as multipart',
    );
  }
  checkSha256(req.sha256);
  checkChunkHashes(req.size, req.sha256, req.chunkHashes);
  return checkExpiry(req.expiresAt, now);
}

/** Offsets and sizes of the parts of an object: all `partSize` long except the last. */
export function partLayout(
  size: number,
  partSize: number,
): Array<{ number: number; offset: number; size: number }> {
  const parts = [];
  for (let offset = 0, n = 1; offset < size; offset += partSize, n++) {
    parts.push({ number: n, offset, size: Math.min(partSize, size - offset) });
  }
  return parts;
}

/** Validates a multipart declaration; returns the URL's lifetime in seconds. */
export function checkMultipartRequest(req: MultipartRequest, now: number): number {
  validateKey(req.key);
  checkSize(req.size);
  if (req.size === 0)
    throw new IotaError('E_BAD_SIZE', 'an empty object is a single PUT, not a multipart upload');
  if (!Number.isSafeInteger(req.partSize) || req.partSize < MIN_PART_BYTES) {
    throw new IotaError(
      'E_BAD_SIZE',
      `part size must be an integer of at least ${MIN_PART_BYTES} bytes, got ${req.partSize}`,
    );
  }
  const count = Math.ceil(req.size / req.partSize);
  if (count > MAX_PARTS)
    throw new IotaError(
      'E_TOO_LARGE',
      `${count} parts is over the limit of ${MAX_PARTS}`,
      'use larger parts',
    );
  checkSha256(req.sha256);
  checkChunkHashes(req.size, req.sha256, req.chunkHashes);
  if (!Array.isArray(req.partSha256s) || req.partSha256s.length !== count) {
    throw new IotaError(
      'E_BAD_HASH',
      `${count} parts need ${count} part hashes, got ${req.partSha256s?.length}`,
    );
  }
  req.partSha256s.forEach((h, i) => checkSha256(h, `part ${i + 1} sha256`));
  return checkExpiry(req.expiresAt, now);
}

/** Throws E_BAD_RANGE unless [start, end) lies inside an object of `size` bytes. */
export function checkRange(start: number, end: number, size: number, key: string): void {
  if (
    !Number.isSafeInteger(start) ||
    !Number.isSafeInteger(end) ||
    start < 0 ||
    end < start ||
    end > size
  ) {
    throw new IotaError(
      'E_BAD_RANGE',
      `[${start}, ${end}) is not a byte range of ${key} (${size} bytes)`,
    );
  }
}

/** An ETag as S3 and the local store send it, quotes removed. */
export function bareEtag(etag: string): string {
  return etag.replace(/"/g, '');
}

/** The plan of a single-PUT upload: one part, the whole object, at `url` with `headers`. */
export function singlePutPlan(
  req: PutRequest,
  url: string,
  headers: Record<string, string>,
): UploadPlan {
  return {
    key: req.key,
    size: req.size,
    sha256: req.sha256,
    expiresAt: req.expiresAt,
    ...(req.chunkHashes ? { chunkHashes: [...req.chunkHashes] } : {}),
    parts: [{ number: 1, offset: 0, size: req.size, sha256: req.sha256, url, headers }],
  };
}
