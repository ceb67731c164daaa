/**
 * Scoped URLs: a participant declares exactly what it will upload (key, size, sha256, chunk
 * and part hashes) and gets URLs for that one object under its own prefix, one method, with
 * the length and hashes signed; downloads get a URL plus the hashes to verify against.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { replies } from '../../protocol/messages.js';
import {
  MAX_SINGLE_PUT_BYTES,
  OBJECT_KINDS,
  authorizeUpload,
  keys,
  refusalError,
  type ObjectKind,
  type ObjectStore,
  type UploadPlan,
} from '../../store/index.js';
import { HttpError } from '../errors.js';
import type { ServerContext } from '../context.js';

/** How long an upload or download URL stays valid until leases bound it (Orchestrator II). */
export const URL_TTL_MS = 15 * 60 * 1000;

const Hex64 = Type.String({ pattern: '^[0-9a-f]{64}$' });

export const UploadRequestBody = Type.Object(
  {
    kind: Type.Union(OBJECT_KINDS.map((k) => Type.Literal(k))),
    key: Type.String({ minLength: 1, maxLength: 512 }),
    size: Type.Integer({ minimum: 0 }),
    sha256: Hex64,
    chunk_hashes: Type.Optional(Type.Array(Hex64, { maxItems: 1_000_000 })),
    part_size: Type.Optional(Type.Integer({ minimum: 1 })),
    part_sha256s: Type.Optional(Type.Array(Hex64, { maxItems: 10_000 })),
  },
  { additionalProperties: false },
);
type UploadRequestBody = Static<typeof UploadRequestBody>;

const PartSchema = Type.Object({
  number: Type.Integer(),
  offset: Type.Integer(),
  size: Type.Integer(),
  sha256: Type.String(),
  url: Type.String(),
  headers: Type.Record(Type.String(), Type.String()),
});
export const UploadPlanReply = Type.Object({
  key: Type.String(),
  size: Type.Integer(),
  sha256: Type.String(),
  expiresAt: Type.Integer(),
  uploadId: Type.Optional(Type.String()),
  chunkHashes: Type.Optional(Type.Array(Type.String())),
  parts: Type.Array(PartSchema),
});

const CompleteBody = Type.Object(
  {
    key: Type.String({ maxLength: 512 }),
    upload_id: Type.String({ maxLength: 1024 }),
    etags: Type.Array(Type.String({ maxLength: 256 }), { maxItems: 10_000 }),
  },
  { additionalProperties: false },
);
const ObjectReply = Type.Object({
  key: Type.String(),
  size: Type.Integer(),
  sha256: Type.Optional(Type.String()),
  chunk_hashes: Type.Optional(Type.Array(Type.String())),
  url: Type.Optional(Type.String()),
});

/** The state change of a request answered before: never run (mutate returns the stored reply). */
function answeredBefore(): never {
  throw new HttpError('E_INTERNAL', 'a retried request was about to run again');
}

export function storageRoutes(store: ObjectStore) {
  return async (app: FastifyInstance, ctx: ServerContext): Promise<void> => {
    app.post<{ Body: UploadRequestBody }>(
      '/v1/storage/upload',
      {
        config: { auth: 'registered' },
        schema: {
          description: 'URLs to upload one declared object under your own prefix',
          body: UploadRequestBody,
          response: replies(UploadPlanReply),
        },
      },
      async (req) => {
        // A retry gets its stored plan; a replay is refused before anything is written.
        if (ctx.precheck(req) === 'retry') return ctx.mutate(req, answeredBefore);
        const b = req.body;
        const caller = req.auth!.key;
        const decision = authorizeUpload(
          { caller, kind: b.kind as ObjectKind, key: b.key, size: b.size, sha256: b.sha256 },
          { run: ctx.run },
        );
        if (!decision.ok) throw refusalError(decision);
        const now = ctx.clock();
        const declared = { size: b.size, sha256: b.sha256 };
        const bound = ctx.uploadScope?.(caller, decision.key, declared, now, false);
        // The bound is on the orchestrator's clock; the store signs with its own.
        const expiresAt = Date.now() + Math.floor(Math.min(URL_TTL_MS, (bound ?? Infinity) - now));
        const multipart = b.part_sha256s !== undefined || b.size > MAX_SINGLE_PUT_BYTES;
        let plan: UploadPlan;
        if (multipart) {
          if (!b.part_size || !b.part_sha256s)
            throw new HttpError(
              'E_BAD_REQUEST',
              `objects over ${MAX_SINGLE_PUT_BYTES} bytes are uploaded in parts: give part_size and part_sha256s`,
            );
          plan = await store.createMultipart({
            key: b.key,
            size: b.size,
            sha256: b.sha256,
            chunkHashes: b.chunk_hashes,
            partSize: b.part_size,
            partSha256s: b.part_sha256s,
            expiresAt,
          });
        } else {
          plan = await store.presignPut({
            key: b.key,
            size: b.size,
            sha256: b.sha256,
            chunkHashes: b.chunk_hashes,
            expiresAt,
          });
        }
        return ctx.mutate(req, () => {
          ctx.uploadScope?.(caller, decision.key, declared, ctx.clock(), true);
          if (plan.uploadId) ctx.repo.putUpload(plan.key, caller, plan.uploadId, plan, ctx.clock());
          return plan;
        });
      },
    );

    app.post<{ Body: Static<typeof CompleteBody> }>(
      '/v1/storage/complete',
      {
        config: { auth: 'registered' },
        schema: {
          description: 'finish a multipart upload with the ETags of its parts',
          body: CompleteBody,
          response: replies(ObjectReply),
        },
      },
      async (req) => {
        const caller = req.auth!.key;
        // The plan comes from the orchestrator's records, never from the client.
        const plan = ctx.repo.upload(req.body.key, caller, req.body.upload_id) as
          UploadPlan | undefined;
        if (!plan)
          throw new HttpError(
            'E_NO_UPLOAD',
            `no multipart upload ${req.body.upload_id} of ${req.body.key} by this key`,
          );
        const info = await store.completeMultipart(plan, req.body.etags);
        return ctx.mutate(req, () => {
          ctx.repo.deleteUpload(plan.key, caller, req.body.upload_id);
          return {
            key: info.key,
            size: info.size,
            sha256: info.sha256,
            chunk_hashes: info.chunkHashes,
          };
        });
      },
    );

    app.get<{ Querystring: { key: string } }>(
      '/v1/storage/download',
      {
        config: { auth: 'registered' },
        schema: {
          description: 'a URL to read one object of this run, with the hashes to verify it',
          querystring: Type.Object(
            { key: Type.String({ minLength: 1, maxLength: 512 }) },
            { additionalProperties: false },
          ),
          response: replies(ObjectReply),
        },
      },
      async (req) => {
        const key = req.query.key;
        if (!key.startsWith(keys.runPrefix(ctx.run)))
          throw new HttpError('E_NOT_YOUR_PREFIX', `${key} is not an object of run ${ctx.run}`);
        const info = await store.head(key);
        if (!info) throw new HttpError('E_NOT_FOUND', `no object ${key}`);
        const url = await store.presignGet({ key, expiresAt: Date.now() + URL_TTL_MS });
        return { key, size: info.size, sha256: info.sha256, chunk_hashes: info.chunkHashes, url };
      },
    );
  };
}
