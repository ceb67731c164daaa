/**
 * Random tokens (nonces, request ids, leases) from a pool refilled by the CSPRNG 4 KiB at a
 * time: a `randomBytes` call per token cost several microseconds each, and every signed
 * request takes two (a load generator's and a server's hot path). No byte is handed out twice.
 */
import { randomFillSync } from 'node:crypto';

const pool = Buffer.alloc(4096);
let offset = pool.length;

function take(n: number): number {
  if (n > pool.length) throw new RangeError(`at most ${pool.length} random bytes at a time`);
  if (offset + n > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const at = offset;
  offset += n;
  return at;
}

/** `n` random bytes as base64url. */
export function randomToken(n: number): string {
  const at = take(n);
  return pool.toString('base64url', at, at + n);
}

/** `n` random bytes as hex. */
export function randomHex(n: number): string {
  const at = take(n);
  return pool.toString('hex', at, at + n);
}
