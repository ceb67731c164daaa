/**
 * The signed client every participant uses to talk to the orchestrator (undici). It signs each
 * attempt afresh, keeps one request id across retries of a state change (so a retry after a
 * lost reply gets the original answer), learns the server's clock from E_CLOCK_SKEW, waits as
 * long as the server says when it is rate limited (never giving up on that), and turns error
 * replies into IotaErrors with the server's code.
 */
import { randomToken } from './random.js';
import { Pool } from 'undici';
import { IotaError } from '../errors.js';
import type { Identity } from './keys.js';
import { HEADERS, signRequest } from './signing.js';

export interface ClientOptions {
  baseUrl: string;
  identity: Identity;
  run: string;
  clock?: () => number;
  /** attempts after the first for network failures and 5xx (default 3) */
  retries?: number;
  connections?: number;
  /** a pool shared with other clients (a load generator); closed by its owner, not by close() */
  pool?: Pool;
  /** the run config hash this client trains with (GET /v1/run); a different run's server refuses it */
  runHash?: string;
  /** told each time the server rate-limits a call and the client waits */
  onRateLimited?: (waitMs: number, path: string) => void;
}

export interface RawReply {
  status: number;
  body: unknown;
}

export class ApiError extends IotaError {
  constructor(
    code: string,
    message: string,
    hint: string | undefined,
    readonly status: number,
    readonly details: Record<string, unknown>,
  ) {
    super(code, message, hint);
  }
}

export class SignedClient {
  private pool: Pool;
  private clockOffset = 0;
  private readonly clock: () => number;
  /** sent as x-iota-run-hash once known, so a changed run is refused with one clear message */
  runHash?: string;

  constructor(readonly o: ClientOptions) {
    this.pool = o.pool ?? new Pool(new URL(o.baseUrl).origin, { connections: o.connections ?? 4 });
    this.clock = o.clock ?? Date.now;
    this.runHash = o.runHash;
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  /** A state change: one request id for every attempt. */
  post<T>(path: string, body: unknown, requestId = newRequestId()): Promise<T> {
    return this.call<T>('POST', path, body, requestId);
  }

  async call<T>(method: string, path: string, body?: unknown, requestId?: string): Promise<T> {
    const retries = this.o.retries ?? 3;
    for (let attempt = 0; ; attempt++) {
      let reply: RawReply;
      try {
        reply = await this.send(
          method,
          path,
          body === undefined ? undefined : JSON.stringify(body),
          requestId,
        );
      } catch (e) {
        if (attempt >= retries)
          throw new IotaError(
            'E_UNREACHABLE',
            `cannot reach the orchestrator at ${this.o.baseUrl}: ${(e as Error).message}`,
            'check --orchestrator and that the server is running',
          );
        await backoff(attempt);
        continue;
      }
      if (reply.status < 400) return reply.body as T;
      const err = (
        reply.body as {
          error?: {
            code?: string;
            message?: string;
            hint?: string;
            server_time?: number;
            retry_after_ms?: number;
          };
        }
      )?.error;
      const code = err?.code ?? `E_HTTP_${reply.status}`;
      if (reply.status === 429) {
        // Rate limited: wait as asked (with jitter, so a crowd does not return at once), again
        // and again; it is never a reason to fail. A state change keeps its request id.
        const asked = typeof err?.retry_after_ms === 'number' ? err.retry_after_ms : 1000;
        const wait = Math.min(30_000, asked) * (1 + 0.25 * Math.random());
        this.o.onRateLimited?.(wait, path);
        await new Promise((r) => setTimeout(r, wait));
        attempt--;
        continue;
      }
      if (code === 'E_CLOCK_SKEW' && typeof err?.server_time === 'number' && attempt === 0) {
        this.clockOffset = err.server_time - this.clock();
        continue;
      }
      if (reply.status >= 500 && attempt < retries) {
        await backoff(attempt);
        continue;
      }
      throw new ApiError(
        code,
        err?.message ?? `HTTP ${reply.status}`,
        err?.hint,
        reply.status,
        (err ?? {}) as Record<string, unknown>,
      );
    }
  }

  /** One signed attempt, reply as is (tests use it to send malformed requests). */
  async send(
    method: string,
    path: string,
    rawBody?: string,
    requestId?: string,
    extraHeaders: Record<string, string> = {},
  ): Promise<RawReply> {
    const headers: Record<string, string> = {
      ...signRequest(
        this.o.identity,
        method,
        path,
        this.o.run,
        rawBody,
        this.clock() + this.clockOffset,
      ),
      ...(rawBody !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(requestId ? { [HEADERS.requestId]: requestId } : {}),
      ...(this.runHash ? { [HEADERS.runHash]: this.runHash } : {}),
      ...extraHeaders,
    };
    const r = await this.pool.request({ method: method as 'GET', path, headers, body: rawBody });
    const text = await r.body.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (metrics, errors from a proxy): keep the text
    }
    return { status: r.statusCode, body: parsed };
  }

  close(): Promise<void> {
    if (this.o.pool) return Promise.resolve();
    return this.pool.close();
  }
}

/**
 * A request id: the time in ms (hex), then 12 random base64url characters. Time first, so the
 * orchestrator's index of stored replies grows at its end instead of on a random page per call.
 */
export function newRequestId(): string {
  return Date.now().toString(16).padStart(12, '0') + randomToken(9);
}

function backoff(attempt: number): Promise<void> {
  const ms = Math.min(2000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
  return new Promise((r) => setTimeout(r, ms));
}
