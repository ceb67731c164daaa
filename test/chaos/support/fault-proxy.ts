/**
 * A fault-injecting HTTP proxy for the chaos scenarios (this kernel has no `tc netem`): it sits
 * between participants and a server (the local store, s3rver, the orchestrator) and, on the
 * requests `affects` selects, injects faults at set rates, drawn from a seeded generator:
 *
 *   error     answers 503 itself, the server never sees the request
 *   reset     destroys the connection without an answer
 *   stall     holds the request `stallMs` before passing it on
 *   truncate  passes the answer's headers and half its body, then cuts the connection
 *   flip      flips one byte: of the request's body on its way in when it has one (an upload),
 *             else of the answer's body on its way out (a download)
 *
 * and shapes the link: `latencyMs` before each request is passed on, `bytesPerSecond` for the
 * bodies both ways (each request alone: a link per request, not a shared pipe). Bodies are buffered whole (objects in the tests are a few MB at most).
 * `outage(ms)` resets every affected request for a while. `loseAnswers` drops the answer of
 * every n-th request to a path after the server has handled it, and then starts an outage: the
 * server applied a change and went away before answering (a crash). `counts` says how many of
 * each fault it injected.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rng } from '../../support/rng.js';

export const FAULTS = ['error', 'reset', 'stall', 'truncate', 'flip'] as const;
export type Fault = (typeof FAULTS)[number];

export interface FaultProxyOptions {
  /** the server's origin (`http://127.0.0.1:PORT`), or a function read per request */
  target: string | (() => string);
  /** per fault, the share of affected requests that get it (their sum at most 1) */
  rates?: Partial<Record<Fault, number>>;
  stallMs?: number;
  /** which requests are affected (faults and link shaping); default all */
  affects?: (method: string, path: string) => boolean;
  latencyMs?: number;
  bytesPerSecond?: number;
  seed?: number;
  /**
   * Rewrites the target's origin to the proxy's in answers' bodies, so the signed store URLs an
   * orchestrator hands out lead back through the proxy (a participant's slow link carries its
   * store traffic too).
   */
  rewriteOrigin?: boolean;
  /** flips only answers (downloads), never uploads: for a server that, unlike S3, does not check
   * an upload's `x-amz-checksum-sha256` (s3rver) and would keep the damaged bytes */
  flipDownloadsOnly?: boolean;
  /** every `every`-th request whose path starts with `path` is handled, its answer dropped, and
   * an outage of `outageMs` follows */
  loseAnswers?: { path: string; every: number; outageMs: number };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function body(stream: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export class FaultProxy {
  readonly counts: Record<Fault, number> = { error: 0, reset: 0, stall: 0, truncate: 0, flip: 0 };
  /** requests seen, and those the proxy was told to affect */
  requests = 0;
  affected = 0;
  /** requests the server behind could not be asked (connection refused, reset): what and why */
  readonly upstreamErrors: string[] = [];
  /** answers dropped after the server handled the request (`loseAnswers`) */
  answersLost = 0;
  private answerable = 0;
  private readonly server: Server;
  private readonly random: () => number;
  /** where a flip lands: a generator of its own, so positions do not shift the faults drawn */
  private readonly position: () => number;
  url = '';

  constructor(private o: FaultProxyOptions) {
    this.random = rng(o.seed ?? 1);
    this.position = rng((o.seed ?? 1) + 0x9e3779b9);
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: Error) => {
        this.upstreamErrors.push(`${req.method} ${req.url?.slice(0, 80)}: ${e.message}`);
        res.destroy();
      });
    });
    this.server.keepAliveTimeout = 5000;
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  private downUntil = 0;

  /** Every affected request is refused (its connection reset) for the next `ms`: an outage. */
  outage(ms: number): void {
    this.downUntil = Date.now() + ms;
  }

  /** Changes the rates, the stall or the link's shape from the next request on. */
  configure(o: Omit<Partial<FaultProxyOptions>, 'target' | 'seed'>): void {
    this.o = { ...this.o, ...o };
  }

  get injected(): number {
    return FAULTS.reduce((a, f) => a + this.counts[f], 0);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private draw(): Fault | undefined {
    let x = this.random();
    for (const f of FAULTS) {
      x -= this.o.rates?.[f] ?? 0;
      if (x < 0) return f;
    }
    return undefined;
  }

  /** Waits as long as `bytes` take on the shaped link. */
  private async carry(bytes: number): Promise<void> {
    if (this.o.bytesPerSecond) await sleep((1000 * bytes) / this.o.bytesPerSecond);
  }

  private async handle(
    req: IncomingMessage,
    res: import('node:http').ServerResponse,
  ): Promise<void> {
    this.requests++;
    const method = req.method ?? 'GET';
    const affected = this.o.affects?.(method, req.url ?? '/') ?? true;
    const input = await body(req);
    const fault = !affected ? undefined : Date.now() < this.downUntil ? 'reset' : this.draw();
    if (affected) {
      this.affected++;
      if (this.o.latencyMs) await sleep(this.o.latencyMs);
      await this.carry(input.length);
    }
    if (fault) this.counts[fault]++;
    if (fault === 'error') {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'E_INJECTED', message: 'injected by the proxy' } }));
      return;
    }
    if (fault === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault === 'stall') await sleep(this.o.stallMs ?? 2000);
    let flipOut = false;
    if (fault === 'flip') {
      if (input.length > 0 && !this.o.flipDownloadsOnly)
        input[Math.floor(this.position() * input.length)] ^= 0x20;
      else flipOut = true;
    }
    const target = new URL(typeof this.o.target === 'string' ? this.o.target : this.o.target());
    const up = await new Promise<IncomingMessage>((resolve, reject) => {
      const headers = { ...req.headers, 'content-length': String(input.length) };
      const r = request(
        {
          host: target.hostname,
          port: target.port,
          method,
          path: req.url,
          headers,
        },
        resolve,
      );
      r.on('error', reject);
      r.end(input);
    });
    let out = await body(up);
    const lose = this.o.loseAnswers;
    if (lose && req.url?.startsWith(lose.path) && ++this.answerable % lose.every === 0) {
      this.answersLost++;
      this.outage(lose.outageMs);
      req.socket.destroy();
      return;
    }
    if (this.o.rewriteOrigin && /json/.test(String(up.headers['content-type'])))
      out = Buffer.from(out.toString().split(target.origin).join(this.url));
    if (flipOut && out.length > 0) out[Math.floor(this.position() * out.length)] ^= 0x20;
    else if (flipOut) this.counts.flip--; // nothing to flip: not a fault after all
    if (affected) await this.carry(out.length);
    const headers = { ...up.headers };
    delete headers['transfer-encoding'];
    // a HEAD's answer has no body but says the object's length: passed on as the server gave it
    if (method !== 'HEAD') headers['content-length'] = String(out.length);
    res.writeHead(up.statusCode ?? 502, headers);
    if (fault === 'truncate' && out.length > 1) {
      res.write(out.subarray(0, out.length >> 1), () => res.destroy());
      return;
    }
    if (fault === 'truncate') this.counts.truncate--;
    res.end(out);
  }
}
