/**
 * Signed requests. A request is signed over its method, path with query, run id, timestamp
 * (ms), nonce and the sha256 of its raw body, so nothing of it can be changed or replayed
 * into another run. The server refuses a skew over 30 s and a nonce it has seen.
 */
import { createHash } from 'node:crypto';
import { randomToken } from './random.js';
import { signBytes, publicKeyFromId, type Identity } from './keys.js';

export const PROTOCOL_VERSION = 1;
export const MAX_SKEW_MS = 30_000;

export const HEADERS = {
  key: 'x-iota-key',
  timestamp: 'x-iota-ts',
  nonce: 'x-iota-nonce',
  run: 'x-iota-run',
  signature: 'x-iota-sig',
  version: 'x-iota-version',
  requestId: 'x-iota-request-id',
  /** not signed: a consistency check that client and server train the same run config */
  runHash: 'x-iota-run-hash',
} as const;

export interface SignedParts {
  method: string;
  pathWithQuery: string;
  run: string;
  timestamp: number;
  nonce: string;
  bodySha256: string;
}

export function canonical(p: SignedParts): Buffer {
  return Buffer.from(
    [
      'IOTA-REQUEST-1',
      p.method.toUpperCase(),
      p.pathWithQuery,
      p.run,
      String(p.timestamp),
      p.nonce,
      p.bodySha256,
    ].join('\n'),
  );
}

export function bodyHash(body: Uint8Array | string | undefined): string {
  return createHash('sha256')
    .update(body ?? '')
    .digest('hex');
}

/** Headers that sign one request. */
export function signRequest(
  identity: Identity,
  method: string,
  pathWithQuery: string,
  run: string,
  body: string | undefined,
  now: number,
): Record<string, string> {
  const parts: SignedParts = {
    method,
    pathWithQuery,
    run,
    timestamp: Math.round(now),
    nonce: randomToken(16),
    bodySha256: bodyHash(body),
  };
  return {
    [HEADERS.key]: identity.id,
    [HEADERS.timestamp]: String(parts.timestamp),
    [HEADERS.nonce]: parts.nonce,
    [HEADERS.run]: run,
    [HEADERS.signature]: signBytes(identity, canonical(parts)),
    [HEADERS.version]: String(PROTOCOL_VERSION),
  };
}

export type VerifyFailure = {
  code: 'E_UNSIGNED' | 'E_BAD_SIGNATURE' | 'E_CLOCK_SKEW' | 'E_BAD_KEY_ID' | 'E_WRONG_RUN';
  message: string;
};

export interface SignedRequest {
  key: string;
  nonce: string;
  timestamp: number;
  /** the canonical bytes the signature must cover */
  message: Buffer;
  signature: string;
}

/** Checks the signed headers (presence, clock, run, key id) and rebuilds the signed message. */
export function readSignedRequest(
  headers: Record<string, string | string[] | undefined>,
  method: string,
  pathWithQuery: string,
  rawBody: Buffer | string | undefined,
  run: string,
  now: number,
): SignedRequest | VerifyFailure {
  const h = (n: string) => {
    const v = headers[n];
    return Array.isArray(v) ? v[0] : v;
  };
  const key = h(HEADERS.key);
  const ts = h(HEADERS.timestamp);
  const nonce = h(HEADERS.nonce);
  const signature = h(HEADERS.signature);
  const reqRun = h(HEADERS.run) ?? '';
  if (!key || !ts || !nonce || !signature)
    return {
      code: 'E_UNSIGNED',
      message:
        `missing signature headers (${HEADERS.key}, ${HEADERS.timestamp}, ` +
        `${HEADERS.nonce}, ${HEADERS.signature})`,
    };
  const timestamp = Number(ts);
  if (!Number.isSafeInteger(timestamp))
    return { code: 'E_BAD_SIGNATURE', message: 'timestamp is not an integer of milliseconds' };
  if (Math.abs(now - timestamp) > MAX_SKEW_MS)
    return {
      code: 'E_CLOCK_SKEW',
      message:
        `request time is ${Math.round((timestamp - now) / 1000)} s off the server's ` +
        `clock (at most ${MAX_SKEW_MS / 1000} s allowed)`,
    };
  if (nonce.length < 16 || nonce.length > 64)
    return { code: 'E_BAD_SIGNATURE', message: 'nonce must be 16 to 64 characters' };
  if (reqRun !== run)
    return {
      code: 'E_WRONG_RUN',
      message: `request is for run "${reqRun}", this orchestrator serves "${run}"`,
    };
  try {
    publicKeyFromId(key);
  } catch {
    return { code: 'E_BAD_KEY_ID', message: `${HEADERS.key} is not a key id` };
  }
  return {
    key,
    nonce,
    timestamp,
    signature,
    message: canonical({
      method,
      pathWithQuery,
      run,
      timestamp,
      nonce,
      bodySha256: bodyHash(rawBody),
    }),
  };
}
