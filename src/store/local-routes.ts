/**
 * HTTP face of the local store, as a fastify plugin the orchestrator registers on its server:
 *
 *   PUT  /store/<key>?<signed query>   the body, streamed to disk; 200 with ETag "<sha256>"
 *   GET  /store/<key>?<signed query>   the object, or one `Range: bytes=a-b` of it (206)
 *   HEAD /store/<key>?<signed query>   its headers
 *
 * Requests carry no Ed25519 signature: the URL's HMAC is their authority (`local-url.ts`), so
 * the routes need `config.auth` 'none' (the orchestrator's default). Bodies are not parsed: this
 * plugin replaces the content-type parsers in its own scope with one that hands the raw stream
 * to the handler, so the orchestrator's JSON body limit does not apply and a large object never
 * sits in memory. The length is checked from `content-length` before a byte is read, and
 * counted again while streaming. Refusals reply `{ error: { code, message, hint } }` with a 4xx,
 * the shape of the orchestrator's own errors, and store nothing.
 */
import { createReadStream } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { IotaError, isIotaError } from '../errors.js';
import type { LocalStore } from './local.js';
import { STORE_PATH } from './local-url.js';

const STATUS: Record<string, number> = {
  E_BAD_KEY: 400,
  E_BAD_PART: 400,
  E_LENGTH_MISMATCH: 400,
  E_HASH_MISMATCH: 400,
  E_BAD_SIGNATURE: 403,
  E_URL_EXPIRED: 403,
  E_NOT_FOUND: 404,
  E_NO_UPLOAD: 404,
  E_WRONG_METHOD: 405,
  E_LENGTH_REQUIRED: 411,
  E_TOO_LARGE: 413,
  E_BAD_RANGE: 416,
};

export function storeStatusOf(code: string): number {
  return STATUS[code] ?? 400;
}

/** The single byte range a `Range` header asks for, as [start, end); undefined without one. */
export function parseRangeHeader(
  header: string | undefined,
  size: number,
): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  const bad = () =>
    new IotaError(
      'E_BAD_RANGE',
      `cannot serve "${header}" of a ${size}-byte object`,
      'ask for one range, bytes=first-last, inside the object',
    );
  if (!m || (m[1] === '' && m[2] === '')) throw bad();
  if (m[1] === '') {
    // suffix range: the last n bytes
    const n = Number(m[2]);
    if (n === 0 || size === 0) throw bad();
    return { start: Math.max(0, size - n), end: size };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || last < start) throw bad();
  return { start, end: last + 1 };
}

function refuse(
  reply: FastifyReply,
  req: FastifyRequest,
  e: IotaError,
  size?: number,
): FastifyReply {
  const status = storeStatusOf(e.code);
  // A body we did not read would otherwise be drained to keep the connection; close it instead.
  if (!req.raw.readableEnded) reply.header('connection', 'close');
  if (e.code === 'E_WRONG_METHOD')
    reply.header('allow', req.method === 'PUT' ? 'GET, HEAD' : 'PUT');
  if (e.code === 'E_BAD_RANGE' && size !== undefined)
    reply.header('content-range', `bytes */${size}`);
  return reply
    .code(status)
    .send({ error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } });
}

const READ_CHUNK_BYTES = 1 << 20;

const EMPTY: AsyncIterable<Uint8Array> = { async *[Symbol.asyncIterator]() {} };

/** Receives an upload: checks the URL and the declared length, then streams the body to disk. */
async function putObject(
  store: LocalStore,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const key = (req.params as Record<string, string>)['*'];
  try {
    const grant = store.authorize(req.method, key, req.query as Record<string, unknown>);
    const declared = req.headers['content-length'];
    if (declared === undefined)
      throw new IotaError(
        'E_LENGTH_REQUIRED',
        'send content-length: the URL is for an exact length',
        'do not use chunked transfer encoding',
      );
    const length = Number(declared);
    if (length > grant.length!)
      throw new IotaError(
        'E_TOO_LARGE',
        `${length} bytes is more than the ${grant.length} this URL allows`,
      );
    if (length !== grant.length)
      throw new IotaError(
        'E_LENGTH_MISMATCH',
        `${length} bytes sent, this URL is for exactly ${grant.length}`,
      );
    const body = (req.body as AsyncIterable<Uint8Array> | undefined) ?? EMPTY;
    const etag = await store.receive(grant, body);
    return reply.code(200).header('etag', `"${etag}"`).send();
  } catch (e) {
    if (isIotaError(e)) return refuse(reply, req, e);
    throw e;
  }
}

/** Serves an object, or one range of it, or (HEAD) only its headers. */
async function getObject(
  store: LocalStore,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const key = (req.params as Record<string, string>)['*'];
  let size: number | undefined;
  try {
    store.authorize(req.method, key, req.query as Record<string, unknown>);
    const obj = await store.locate(key);
    size = obj.size;
    const range = parseRangeHeader(req.headers.range, obj.size);
    reply
      .header('accept-ranges', 'bytes')
      .header('content-type', 'application/octet-stream')
      .header('cache-control', 'no-store');
    if (obj.sha256) reply.header('etag', `"${obj.sha256}"`);
    const { start, end } = range ?? { start: 0, end: obj.size };
    if (range) reply.code(206).header('content-range', `bytes ${start}-${end - 1}/${obj.size}`);
    reply.header('content-length', end - start);
    if (req.method === 'HEAD' || end === start) return reply.send();
    // Reads of 1 MiB rather than the default 64 KiB: a sixteenth of the calls for a large object.
    return reply.send(
      createReadStream(obj.path, { start, end: end - 1, highWaterMark: READ_CHUNK_BYTES }),
    );
  } catch (e) {
    if (isIotaError(e)) return refuse(reply, req, e, size);
    throw e;
  }
}

/** The plugin: `app.register(localStoreRoutes(store))`, or pass it in the orchestrator's `plugins`. */
export function localStoreRoutes(store: LocalStore): (app: FastifyInstance) => Promise<void> {
  return async function storeRoutes(app: FastifyInstance): Promise<void> {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    app.put(`${STORE_PATH}*`, (req, reply) => putObject(store, req, reply));
    // HEAD declared rather than derived from GET: fastify's derived HEAD would read the whole
    // file to discard it, and would set content-length to 0.
    app.route({
      method: ['GET', 'HEAD'],
      url: `${STORE_PATH}*`,
      handler: (req, reply) => getObject(store, req, reply),
    });
  };
}
