/**
 * Object integrity (DESIGN.md section 6): every object has a sha256 and a sha256 per 4 MiB
 * chunk. A whole download is checked against the first; a Range read is widened to whole
 * chunks with `chunkSpan` and checked against the second with `verifyRange`, so no byte is
 * parsed before it is verified.
 */
import { createHash } from 'node:crypto';
import { IotaError } from '../errors.js';

export const CHUNK_BYTES = 4 * 1024 * 1024;

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function checkChunkBytes(chunkBytes: number): void {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0) {
    throw new IotaError('E_BAD_RANGE', `chunk size must be a positive integer, got ${chunkBytes}`);
  }
}

/** sha256 of each chunk in order; the last may be shorter. An empty object has no chunks. */
export function chunkHashes(bytes: Uint8Array, chunkBytes = CHUNK_BYTES): string[] {
  checkChunkBytes(chunkBytes);
  const hashes: string[] = [];
  for (let at = 0; at < bytes.length; at += chunkBytes) {
    hashes.push(sha256Hex(bytes.subarray(at, at + chunkBytes)));
  }
  return hashes;
}

/**
 * Checks `bytes`, downloaded from offset `start` of an object with the given chunk hashes.
 * The range must be whole chunks: `start` on a chunk boundary, every chunk full length except
 * the object's last. Anything else cannot be verified and is refused like a mismatch, since a
 * short or shifted reply is as untrustworthy as a wrong one. Throws `E_HASH_MISMATCH`.
 */
export function verifyRange(
  bytes: Uint8Array,
  start: number,
  hashes: readonly string[],
  chunkBytes = CHUNK_BYTES,
): void {
  checkChunkBytes(chunkBytes);
  const mismatch = (message: string) =>
    new IotaError('E_HASH_MISMATCH', `range at byte ${start} (${bytes.length} bytes): ${message}`);
  if (!Number.isSafeInteger(start) || start < 0 || start % chunkBytes !== 0) {
    throw mismatch(`start is not on a ${chunkBytes}-byte chunk boundary`);
  }
  const first = start / chunkBytes;
  // An empty range verifies only as the whole of an empty object; otherwise an empty reply to
  // a request for data would pass.
  if (bytes.length === 0) {
    if (first === 0 && hashes.length === 0) return;
    throw mismatch('no bytes to verify');
  }
  const count = Math.ceil(bytes.length / chunkBytes);
  if (first + count > hashes.length) {
    throw mismatch(`runs past the object's ${hashes.length} chunks`);
  }
  const lastLength = bytes.length - (count - 1) * chunkBytes;
  if (lastLength !== chunkBytes && first + count !== hashes.length) {
    throw mismatch('ends inside a chunk that is not the last of the object');
  }
  for (let k = 0; k < count; k++) {
    const got = sha256Hex(bytes.subarray(k * chunkBytes, (k + 1) * chunkBytes));
    if (got !== hashes[first + k]) throw mismatch(`chunk ${first + k} does not match its hash`);
  }
}

/**
 * Widens the byte range [start, end) to whole chunks: the range to request so that what comes
 * back can be verified. Pass `objectBytes` to clamp the end to the object's size.
 */
export function chunkSpan(
  start: number,
  end: number,
  chunkBytes = CHUNK_BYTES,
  objectBytes?: number,
): { start: number; end: number } {
  checkChunkBytes(chunkBytes);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new IotaError('E_BAD_RANGE', `[${start}, ${end}) is not a byte range`);
  }
  if (objectBytes !== undefined && end > objectBytes) {
    throw new IotaError(
      'E_BAD_RANGE',
      `[${start}, ${end}) runs past the object's ${objectBytes} bytes`,
    );
  }
  const wideStart = Math.floor(start / chunkBytes) * chunkBytes;
  let wideEnd = Math.ceil(end / chunkBytes) * chunkBytes;
  if (objectBytes !== undefined) wideEnd = Math.min(wideEnd, objectBytes);
  return { start: wideStart, end: wideEnd };
}
