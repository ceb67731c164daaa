/**
 * The local store's signed URLs (pure functions). A URL grants one method on one key until an
 * expiry; a PUT also fixes the body's exact length and sha256, and a multipart part its upload
 * id and part number:
 *
 *   GET  <base>/store/<key>?m=GET&exp=<ms>&sig=<hmac>
 *   PUT  <base>/store/<key>?m=PUT&exp=<ms>&len=<bytes>&sha=<hex>&sig=<hmac>
 *   part <base>/store/<key>?m=PUT&exp=<ms>&len=<bytes>&sha=<hex>&up=<upload id>&part=<n>&sig=<hmac>
 *
 * sig = base64url(HMAC-SHA256(secret, "iota-store-v1\n" + m, key, exp, len, sha, up, part
 * joined by "\n", absent fields empty)). Changing any of them, or using the URL on another
 * path, breaks the signature; using it with another HTTP method is refused on its own.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { IotaError } from '../errors.js';
import { validateKey } from './keys.js';

export const STORE_PATH = '/store/';

export interface Grant {
  method: 'GET' | 'PUT';
  key: string;
  expiresAt: number;
  /** PUT only: exact body length and sha256 */
  length?: number;
  sha256?: string;
  /** multipart part only */
  uploadId?: string;
  part?: number;
}

function canonical(g: Grant): string {
  return [
    'iota-store-v1',
    g.method,
    g.key,
    g.expiresAt,
    g.length ?? '',
    g.sha256 ?? '',
    g.uploadId ?? '',
    g.part ?? '',
  ].join('\n');
}

function mac(secret: Uint8Array, g: Grant): Buffer {
  return createHmac('sha256', secret).update(canonical(g)).digest();
}

/** The URL for a grant, under `baseUrl` (the orchestrator's public address). */
export function signedUrl(baseUrl: string, secret: Uint8Array, g: Grant): string {
  const q = new URLSearchParams({ m: g.method, exp: String(g.expiresAt) });
  if (g.length !== undefined) q.set('len', String(g.length));
  if (g.sha256 !== undefined) q.set('sha', g.sha256);
  if (g.uploadId !== undefined) q.set('up', g.uploadId);
  if (g.part !== undefined) q.set('part', String(g.part));
  q.set('sig', mac(secret, g).toString('base64url'));
  return `${baseUrl.replace(/\/+$/, '')}${STORE_PATH}${validateKey(g.key)}?${q}`;
}

const DIGITS = /^(0|[1-9][0-9]{0,15})$/;

/**
 * Checks a request against its URL's signature. `query` is the parsed query string (a repeated
 * parameter arrives as an array and is refused). Order matters for the reply: a URL that is not
 * genuine is E_BAD_SIGNATURE whatever else is wrong with it; a genuine one may be E_URL_EXPIRED
 * or E_WRONG_METHOD. HEAD is allowed where GET is.
 */
export function verifyGrant(
  secret: Uint8Array,
  method: string,
  key: string,
  query: Record<string, unknown>,
  now: number,
): Grant {
  const forged = (why: string) =>
    new IotaError(
      'E_BAD_SIGNATURE',
      `not a valid store URL: ${why}`,
      'ask the orchestrator for a new URL',
    );
  const param = (name: string): string | undefined => {
    const v = query[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw forged(`parameter ${name} is repeated`);
    return v;
  };
  const m = param('m');
  if (m !== 'GET' && m !== 'PUT') throw forged('no method');
  const exp = param('exp');
  if (exp === undefined || !DIGITS.test(exp)) throw forged('no expiry');
  const g: Grant = { method: m, key, expiresAt: Number(exp) };
  const len = param('len');
  const sha = param('sha');
  const up = param('up');
  const part = param('part');
  if (len !== undefined) {
    if (!DIGITS.test(len)) throw forged('bad length');
    g.length = Number(len);
  }
  if (sha !== undefined) g.sha256 = sha;
  if (up !== undefined) g.uploadId = up;
  if (part !== undefined) {
    if (!DIGITS.test(part)) throw forged('bad part number');
    g.part = Number(part);
  }
  const sig = param('sig');
  if (sig === undefined) throw forged('no signature');
  const given = Buffer.from(sig, 'base64url');
  const want = mac(secret, g);
  if (given.length !== want.length || !timingSafeEqual(given, want))
    throw forged('the signature does not match');
  // Genuine from here on: the fields are ours, only time and method can still be wrong.
  if (m === 'PUT' && (g.length === undefined || g.sha256 === undefined))
    throw forged('a PUT URL without length and sha256');
  if (now > g.expiresAt) {
    throw new IotaError(
      'E_URL_EXPIRED',
      `this URL expired at ${new Date(g.expiresAt).toISOString()}`,
      'ask the orchestrator for a new URL',
    );
  }
  const allowed = m === 'GET' ? method === 'GET' || method === 'HEAD' : method === 'PUT';
  if (!allowed) throw new IotaError('E_WRONG_METHOD', `this URL is for ${m}, not ${method}`);
  return g;
}
