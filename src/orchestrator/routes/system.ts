/** Health, readiness, metrics and the API description: unsigned. */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { HttpError } from '../errors.js';
import { PROTOCOL_VERSION } from '../../protocol/signing.js';
import type { ServerContext } from '../context.js';

export async function systemRoutes(
  app: FastifyInstance,
  ctx: ServerContext,
  openapi: () => object,
): Promise<void> {
  const open = { config: { auth: 'none' as const } };

  app.get(
    '/healthz',
    {
      ...open,
      schema: {
        description: 'the process is up',
        response: { 200: Type.Object({ ok: Type.Boolean() }) },
      },
    },
    async () => ({ ok: true }),
  );

  app.get(
    '/readyz',
    {
      ...open,
      schema: {
        description: 'the state database answers',
        response: { 200: Type.Object({ ok: Type.Boolean() }) },
      },
    },
    async () => {
      try {
        ctx.repo.roleCounts();
      } catch (e) {
        throw new HttpError('E_NOT_READY', `state database unavailable: ${(e as Error).message}`);
      }
      return { ok: true };
    },
  );

  app.get(
    '/metrics',
    { ...open, schema: { description: 'Prometheus metrics' } },
    async (_req, reply) => {
      reply.type(ctx.metrics.registry.contentType);
      return ctx.metrics.registry.metrics();
    },
  );

  app.get(
    '/v1/info',
    {
      ...open,
      schema: {
        description:
          'what a client needs before it signs: the run id, versions, the run config hash',
        response: {
          200: Type.Object({
            run: Type.String(),
            version: Type.String(),
            protocol: Type.Integer(),
            config_hash: Type.Optional(Type.String()),
          }),
        },
      },
    },
    async () => ({
      run: ctx.run,
      version: ctx.version,
      protocol: PROTOCOL_VERSION,
      ...(ctx.configHash ? { config_hash: ctx.configHash } : {}),
    }),
  );

  app.get(
    '/openapi.json',
    { ...open, schema: { description: 'this API, as OpenAPI 3' } },
    async () => openapi(),
  );
}
