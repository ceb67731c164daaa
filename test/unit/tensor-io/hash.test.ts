import { isIotaError } from '../../../src/errors.js';
import {
  CHUNK_BYTES,
  chunkHashes,
  chunkSpan,
  sha256Hex,
  verifyRange,
} from '../../../src/tensor-io/index.js';

function expectCode(fn: () => unknown, code: string, fragment: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(isIotaError(caught)).toBe(true);
  expect((caught as { code: string }).code).toBe(code);
  expect((caught as Error).message).toContain(fragment);
}

function bytesOf(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

describe('sha256', () => {
  it('gives the known digests of "abc" and of nothing', () => {
    expect(sha256Hex(new TextEncoder().encode('abc'))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    expect(sha256Hex(new Uint8Array(0))).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
  });
});

describe('chunk hashes', () => {
  it('cuts 2 chunks + 5 bytes into 3 chunks, the last 5 bytes long', () => {
    const bytes = bytesOf(2 * CHUNK_BYTES + 5);
    const hashes = chunkHashes(bytes);
    expect(hashes).toHaveLength(3);
    expect(hashes[1]).toBe(sha256Hex(bytes.subarray(CHUNK_BYTES, 2 * CHUNK_BYTES)));
    expect(hashes[2]).toBe(sha256Hex(bytes.subarray(2 * CHUNK_BYTES)));
    expect(() => verifyRange(bytes, 0, hashes)).not.toThrow();
  });

  it('gives no chunks for an empty object', () => {
    expect(chunkHashes(new Uint8Array(0))).toEqual([]);
    expect(() => verifyRange(new Uint8Array(0), 0, [])).not.toThrow();
  });
});

describe('verifyRange', () => {
  const chunk = 16;
  const object = bytesOf(3 * chunk + 5);
  const hashes = chunkHashes(object, chunk);

  it('accepts whole-chunk ranges anywhere in the object, including the short last chunk', () => {
    expect(() => verifyRange(object.slice(chunk, 2 * chunk), chunk, hashes, chunk)).not.toThrow();
    expect(() => verifyRange(object.slice(chunk), chunk, hashes, chunk)).not.toThrow();
    expect(() => verifyRange(object.slice(3 * chunk), 3 * chunk, hashes, chunk)).not.toThrow();
  });

  it('catches a flipped byte', () => {
    const copy = object.slice(chunk, 3 * chunk);
    copy[chunk + 3] ^= 0x01;
    expectCode(
      () => verifyRange(copy, chunk, hashes, chunk),
      'E_HASH_MISMATCH',
      'chunk 2 does not match its hash',
    );
  });

  it('refuses ranges that cannot be verified: misaligned, cut short, past the end, or empty', () => {
    expectCode(
      () => verifyRange(object.slice(3, chunk + 3), 3, hashes, chunk),
      'E_HASH_MISMATCH',
      'not on a 16-byte chunk boundary',
    );
    expectCode(
      () => verifyRange(object.slice(0, chunk + 4), 0, hashes, chunk),
      'E_HASH_MISMATCH',
      'ends inside a chunk',
    );
    expectCode(
      () => verifyRange(object.slice(3 * chunk, 3 * chunk + 2), 3 * chunk, hashes, chunk),
      'E_HASH_MISMATCH',
      'chunk 3 does not match',
    );
    expectCode(
      () => verifyRange(bytesOf(2 * chunk), 3 * chunk, hashes, chunk),
      'E_HASH_MISMATCH',
      "runs past the object's 4 chunks",
    );
    expectCode(
      () => verifyRange(new Uint8Array(0), chunk, hashes, chunk),
      'E_HASH_MISMATCH',
      'no bytes to verify',
    );
  });
});

describe('chunkSpan', () => {
  it('widens a byte range to chunk boundaries', () => {
    expect(chunkSpan(5, 10)).toEqual({ start: 0, end: CHUNK_BYTES });
    expect(chunkSpan(CHUNK_BYTES - 1, CHUNK_BYTES + 1)).toEqual({ start: 0, end: 2 * CHUNK_BYTES });
    expect(chunkSpan(CHUNK_BYTES, 2 * CHUNK_BYTES)).toEqual({
      start: CHUNK_BYTES,
      end: 2 * CHUNK_BYTES,
    });
    expect(chunkSpan(0, 0)).toEqual({ start: 0, end: 0 });
  });

  it('clamps to the object size, and the widened range verifies', () => {
    const chunk = 16;
    const object = bytesOf(3 * chunk + 5);
    const span = chunkSpan(40, 50, chunk, object.length);
    expect(span).toEqual({ start: 32, end: 53 });
    expect(() =>
      verifyRange(
        object.slice(span.start, span.end),
        span.start,
        chunkHashes(object, chunk),
        chunk,
      ),
    ).not.toThrow();
  });

  it('refuses ranges that are not ranges or run past the object', () => {
    expectCode(() => chunkSpan(10, 5), 'E_BAD_RANGE', '[10, 5) is not a byte range');
    expectCode(() => chunkSpan(-1, 5), 'E_BAD_RANGE', 'is not a byte range');
    expectCode(() => chunkSpan(0, 60, 16, 53), 'E_BAD_RANGE', "runs past the object's 53 bytes");
  });
});
