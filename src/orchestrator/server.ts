/**
 * The orchestrator's HTTP server: fastify with a JSON schema on every route's body and reply
 * (validated before a handler runs), signed requests, rate limits, idempotent mutations, and
 * errors as `{ error: { code, message, hint } }` with a 4xx, never a crash.
 */
import { availableParallelism } from 'node:os';
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type RouteOptions,
} from 'fastify';
import { isIotaError } from '../errors.js';
import { HEADERS, MAX_SKEW_MS } from '../protocol/signing.js';
import { installAuth, isLoopback, rateLimited } from './auth.js';
import type { OrchestratorOptions, RateLimits, ServerContext } from './context.js';
import { HttpError, statusOf } from './errors.js';
import { GroupCommitter } from './commit.js';
import { Metrics } from './metrics.js';
import { SignatureVerifier } from './verifier.js';
import { openApiDocument } from './openapi.js';
import { RateLimiter } from './ratelimit.js';
import { participantRoutes } from './routes/participants.js';
import { systemRoutes } from './routes/system.js';
import type { Repository, StoredReply } from './state/repository.js';

export type { OrchestratorOptions, RateLimits, ServerContext } from './context.js';

const DEFAULT_LIMITS: RateLimits = {
  ipPerSecond: 1000,
  ipBurst: 2000,
  keyPerSecond: 200,
  keyBurst: 400,
  newKeysPerMinute: 30,
  newKeysBurst: 60,
  exemptLoopback: false,
};

export async function buildOrchestrator(
  o: OrchestratorOptions,
): Promise<{ app: FastifyInstance; ctx: ServerContext }> {
  const clock = o.clock ?? Date.now;
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: o.bodyLimit ?? 256 * 1024,
    trustProxy: false,
    return503OnClosing: true,
    // A path the router cannot decode (`%ff`) is refused in the API's own shape.
    frameworkErrors: (err, _req, reply) =>
      void sendError(
        reply,
        metrics,
        new HttpError('E_BAD_URL', `${err.message}`, 'percent-encode paths as UTF-8'),
      ),
    // Strict: no type coercion, unknown fields refused rather than silently dropped.
    ajv: {
      customOptions: {
        coerceTypes: false,
        removeAdditional: false,
        useDefaults: true,
        allErrors: false,
      },
    },
  });
  const metrics = new Metrics(o.repo);
  const routes: RouteOptions[] = [];
  app.addHook('onRoute', (r) => {
    routes.push(r);
  });

  // JSON only (other types get 415), keeping the raw bytes: the signature covers them as sent.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(req.headers['content-type'] ?? '')?.[1];
    if (charset !== undefined && !/^utf-?8$/i.test(charset))
      return done(
        new HttpError('E_BAD_CONTENT_TYPE', `bodies are UTF-8 JSON, not ${charset}`),
        undefined,
      );
    req.rawBody = body as Buffer;
    if ((body as Buffer).length === 0) return done(null, undefined);
    try {
      done(null, JSON.parse((body as Buffer).toString('utf8')));
    } catch {
      done(new HttpError('E_BAD_JSON', 'request body is not valid JSON'), undefined);
    }
  });

  const committer = o.committer ?? new GroupCommitter(o.repo);
  const inFlight = new Map<string, number>();
  const limits = { ...DEFAULT_LIMITS, ...o.rateLimits };
  const newKeys = new RateLimiter(limits.newKeysPerMinute / 60, limits.newKeysBurst);
  const ctx: ServerContext = {
    run: o.run,
    version: o.version,
    repo: o.repo,
    node: o.node,
    clock,
    metrics,
    configHash: o.configHash,
    mutate: (req, fn) => committer.run(() => mutate(o.repo, clock, req, fn)),
    commit: (fn) => committer.run(fn),
    precheck: (req) => precheck(o.repo, inFlight, clock(), req),
    admitNewKey: (req) => {
      if (limits.exemptLoopback && isLoopback(req.ip)) return;
      const now = clock();
      if (!newKeys.take(req.ip, now))
        throw rateLimited('too many new keys from this address', newKeys.retryAfterMs(req.ip, now));
    },
  };

  const verifier = new SignatureVerifier(o.verifyThreads ?? (availableParallelism() > 1 ? 1 : 0));
  app.addHook('onClose', async () => verifier.close());
  installAuth(
    app,
    ctx,
    verifier,
    new RateLimiter(limits.ipPerSecond, limits.ipBurst),
    new RateLimiter(limits.keyPerSecond, limits.keyBurst),
    limits.exemptLoopback,
  );

  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unknown';
    metrics.requestSeconds.observe(
      { method: req.method, route, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    done();
  });

  app.setErrorHandler(
    (err: Error & { code?: string; validation?: unknown; statusCode?: number }, req, reply) =>
      sendError(reply, metrics, toHttpError(err, clock, req)),
  );
  app.setNotFoundHandler((req, reply) =>
    sendError(
      reply,
      metrics,
      new HttpError(
        'E_NOT_FOUND',
        `no route ${req.method} ${req.url.split('?')[0]}`,
        'see /openapi.json for the routes',
      ),
    ),
  );

  await app.register(async (scoped) =>
    systemRoutes(scoped, ctx, () => openApiDocument(routes, o.version)),
  );
  await app.register(async (scoped) => participantRoutes(scoped, ctx));
  for (const plugin of o.plugins ?? []) await app.register(async (scoped) => plugin(scoped, ctx));
  return { app, ctx };
}

function toHttpError(
  err: Error & { code?: string; validation?: unknown; statusCode?: number },
  clock: () => number,
  req: FastifyRequest,
): HttpError {
  if (err instanceof HttpError) return err;
  if (isIotaError(err)) return new HttpError(err.code, err.message, err.hint);
  if (err.validation)
    return new HttpError(
      'E_BAD_REQUEST',
      err.message.replace(/^body\//, 'body.'),
      'see /openapi.json for the request schema',
    );
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HttpError('E_TOO_LARGE', 'request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new HttpError('E_BAD_CONTENT_TYPE', 'send bodies as application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new HttpError('E_BAD_JSON', 'request body is not valid JSON');
  }
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
    return new HttpError('E_BAD_REQUEST', err.message);
  req.log.error({ err }, 'internal error');
  return Object.assign(new HttpError('E_INTERNAL', 'internal error; the orchestrator logged it'), {
    internal: true,
    at: clock(),
  });
}

function sendError(reply: FastifyReply, metrics: Metrics, e: HttpError): FastifyReply {
  metrics.refused.inc({ code: e.code });
  const status = (e as HttpError & { internal?: boolean }).internal ? 500 : statusOf(e.code);
  // A limited client waits this long (HTTP's Retry-After, in seconds; the body has the ms).
  const wait = e.extra.retry_after_ms;
  if (typeof wait === 'number')
    reply.header('retry-after', String(Math.max(1, Math.ceil(wait / 1000))));
  return reply.code(status).send({
    error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}), ...e.extra },
  });
}

/**
 * A state change keyed by the request id: a repeat (same key and request id, freshly signed)
 * gets the original reply; the nonce, the change and the reply commit together or not at all
 * (the caller runs this inside a savepoint of a group commit).
 */
function mutate<T>(repo: Repository, clock: () => number, req: FastifyRequest, fn: () => T): T {
  const auth = req.auth;
  if (!auth) throw new HttpError('E_UNSIGNED', 'this call must be signed');
  const requestId = req.headers[HEADERS.requestId];
  if (typeof requestId !== 'string' || !/^[A-Za-z0-9_-]{8,64}$/.test(requestId)) {
    throw new HttpError(
      'E_NO_REQUEST_ID',
      `state-changing calls carry ${HEADERS.requestId} (8-64 base64url characters)`,
    );
  }
  const path = req.url;
  // A byte-for-byte replay is refused; a retry is signed afresh and gets the stored reply.
  if (repo.nonceSeen(auth.key, auth.nonce))
    throw new HttpError('E_REPLAY', 'this signed request was already received');
  const stored: StoredReply | undefined = repo.storedReply(auth.key, requestId);
  if (stored) {
    if (stored.method !== req.method || stored.path !== path)
      throw new HttpError(
        'E_REQUEST_ID_REUSED',
        `request id ${requestId} was used for ${stored.method} ${stored.path}`,
      );
    // The retry's own nonce is now used too: the exact retry cannot be replayed either.
    repo.rememberNonce(auth.key, auth.nonce, auth.timestamp, clock());
    return stored.reply as T;
  }
  const reply = (fn() ?? null) as T; // a stored reply is JSON: "nothing" is null
  repo.storeReply(auth.key, requestId, { method: req.method, path, status: 200, reply }, clock(), {
    nonce: auth.nonce,
    ts: auth.timestamp,
  });
  return reply;
}

/**
 * For a state change with side effects outside the database (a multipart plan in the store):
 * refuses a replay before them, and a second copy of a request still in flight; says whether
 * the request id was answered before (a retry: the caller returns `mutate`'s stored reply).
 */
function precheck(
  repo: Repository,
  inFlight: Map<string, number>,
  now: number,
  req: FastifyRequest,
): 'retry' | 'new' {
  const auth = req.auth;
  if (!auth) throw new HttpError('E_UNSIGNED', 'this call must be signed');
  const k = `${auth.key} ${auth.nonce}`;
  if (repo.nonceSeen(auth.key, auth.nonce) || inFlight.has(k))
    throw new HttpError('E_REPLAY', 'this signed request was already received');
  for (const [n, at] of inFlight) if (at < now - 2 * MAX_SKEW_MS) inFlight.delete(n);
  inFlight.set(k, now);
  const requestId = req.headers[HEADERS.requestId];
  return typeof requestId === 'string' && repo.storedReply(auth.key, requestId) ? 'retry' : 'new';
}

/**
 * How long a state change's reply is kept for a retry of it: three times as long as a miner
 * keeps asking again after a lost answer (60 failures, at most 5 s apart: miner/refusals.ts).
 */
export const REPLY_KEEP_MS = 15 * 60 * 1000;

/** Forget what can no longer matter: nonces outside the clock window, replies a retry no longer needs. */
export function pruneState(repo: Repository, now: number): void {
  repo.prune(now - 2 * MAX_SKEW_MS, now - REPLY_KEEP_MS);
}
