/**
 * Who is calling: IP rate limit before anything is verified, then the version, the signature
 * (skew, run), the per-key rate limit, replay, registration and role. Routes say what they
 * need in `config.auth`: 'none', 'signed' (any valid key: registration) or 'registered'.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HEADERS, MAX_SKEW_MS, PROTOCOL_VERSION, readSignedRequest } from '../protocol/signing.js';
import type { SignatureVerifier } from './verifier.js';
import { HttpError } from './errors.js';
import type { RateLimiter } from './ratelimit.js';
import type { AuthInfo, ServerContext } from './context.js';

export type { AuthInfo, RouteAuth } from './context.js';

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

export function isLoopback(ip: string): boolean {
  return LOOPBACK.test(ip);
}

/** E_RATE_LIMITED with how long to wait (a header and a body field; clients honour both). */
export function rateLimited(message: string, retryAfterMs: number): HttpError {
  return new HttpError('E_RATE_LIMITED', message, 'wait for retry_after_ms, then try again', {
    retry_after_ms: Math.max(1, retryAfterMs),
  });
}

export function installAuth(
  app: FastifyInstance,
  ctx: ServerContext,
  verifier: SignatureVerifier,
  byIp: RateLimiter,
  byKey: RateLimiter,
  exemptLoopback: boolean,
): void {
  // Reads are not stored, so their nonces are remembered in memory for the clock window.
  const readNonces = new Map<string, number>();
  let lastPrune = 0;

  app.addHook('onRequest', async (req) => {
    if (exemptLoopback && LOOPBACK.test(req.ip)) return;
    const now = ctx.clock();
    if (!byIp.take(req.ip, now))
      throw rateLimited('too many requests from this address', byIp.retryAfterMs(req.ip, now));
  });

  app.addHook('preValidation', async (req: FastifyRequest) => {
    const need = req.routeOptions.config?.auth ?? 'none';
    if (need === 'none') return;
    const version = req.headers[HEADERS.version];
    if (version !== undefined && version !== String(PROTOCOL_VERSION)) {
      throw new HttpError(
        'E_VERSION_MISMATCH',
        `client speaks protocol ${version}, this orchestrator speaks ${PROTOCOL_VERSION}`,
        'install the iota version the run uses (see GET /v1/status)',
      );
    }
    const runHash = req.headers[HEADERS.runHash];
    if (runHash !== undefined && ctx.configHash !== undefined && runHash !== ctx.configHash) {
      throw new HttpError(
        'E_VERSION_MISMATCH',
        `this orchestrator runs ${ctx.run} with config ${ctx.configHash.slice(0, 12)}, ` +
          `the client was started for ${String(runHash).slice(0, 12)}`,
        'restart the client: it reads the run config again (GET /v1/run)',
      );
    }
    const now = ctx.clock();
    const v = readSignedRequest(req.headers, req.method, req.url, req.rawBody, ctx.run, now);
    if ('code' in v) {
      const hint =
        v.code === 'E_CLOCK_SKEW'
          ? "set the machine's clock (NTP); server_time is the orchestrator's time in ms"
          : undefined;
      throw new HttpError(
        v.code,
        v.message,
        hint,
        v.code === 'E_CLOCK_SKEW' ? { server_time: now } : {},
      );
    }
    if (!(await verifier.verify(v.key, v.message, v.signature)))
      throw new HttpError('E_BAD_SIGNATURE', 'signature does not match the request');
    if (!byKey.take(v.key, now))
      throw rateLimited('too many requests from this key', byKey.retryAfterMs(v.key, now));
    const isRead = req.method === 'GET' || req.method === 'HEAD';
    if (isRead) {
      const k = `${v.key} ${v.nonce}`;
      if (readNonces.has(k))
        throw new HttpError('E_REPLAY', 'this signed request was already received');
      readNonces.set(k, v.timestamp);
      if (now - lastPrune > MAX_SKEW_MS) {
        for (const [n, ts] of readNonces) if (ts < now - 2 * MAX_SKEW_MS) readNonces.delete(n);
        lastPrune = now;
      }
    }
    // A state change's nonce is checked and stored inside its transaction (ServerContext.mutate).
    const auth: AuthInfo = { key: v.key, nonce: v.nonce, timestamp: v.timestamp };
    if (need === 'registered') {
      auth.participant = ctx.repo.participant(v.key);
      if (!auth.participant)
        throw new HttpError(
          'E_UNKNOWN_KEY',
          'this key is not registered',
          'register first (POST /v1/register)',
        );
      const roles = req.routeOptions.config?.roles;
      if (roles && !roles.includes(auth.participant.role))
        throw new HttpError(
          'E_FORBIDDEN',
          `this call is for ${roles.join(' or ')} keys; yours is a ${auth.participant.role} key`,
        );
    }
    req.auth = auth;
  });
}
