/** Registration, heartbeat and the run's status. */
import type { FastifyInstance } from 'fastify';
import {
  HeartbeatReply,
  HeartbeatRequest,
  ParticipantsReply,
  RegisterReply,
  RegisterRequest,
  StatusReply,
  replies,
} from '../../protocol/messages.js';
import { PROTOCOL_VERSION } from '../../protocol/signing.js';
import { HttpError } from '../errors.js';
import type { ServerContext } from '../context.js';
import type { Role } from '../state/repository.js';

export async function participantRoutes(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  app.post<{ Body: RegisterRequest }>(
    '/v1/register',
    {
      config: { auth: 'signed' },
      schema: {
        description:
          'register a key: miners permissionlessly (unless an allow-list is set), ' +
          'validators and admins as the node config lists them',
        body: RegisterRequest,
        response: replies(RegisterReply),
      },
    },
    async (req) => {
      const key = req.auth!.key;
      const role: Role = ctx.node.admins.includes(key)
        ? 'admin'
        : ctx.node.validators.includes(key)
          ? 'validator'
          : 'miner';
      if (role === 'miner' && ctx.node.allow_list && !ctx.node.allow_list.includes(key)) {
        throw new HttpError(
          'E_NOT_ALLOWED',
          'this run only admits listed miner keys',
          'ask the operator to add your key id to the allow-list',
        );
      }
      if (!ctx.repo.participant(key)) ctx.admitNewKey(req);
      const info = {
        name: req.body.name,
        version: req.body.version,
        backend: req.body.backend,
        threads: req.body.threads,
      };
      return ctx.mutate(req, () => {
        const now = ctx.clock();
        const isNew = ctx.repo.putParticipant(key, role, info, now);
        return { id: key, role, run: ctx.run, new: isNew, server_time: now };
      });
    },
  );

  app.post(
    '/v1/heartbeat',
    {
      config: { auth: 'registered' },
      schema: {
        description: 'I am alive (renews leases once they exist)',
        body: HeartbeatRequest,
        response: replies(HeartbeatReply),
      },
    },
    async (req) =>
      ctx.mutate(req, () => {
        const now = ctx.clock();
        ctx.repo.touch(req.auth!.key, now);
        return { server_time: now, ...ctx.onHeartbeat?.(req.auth!.key, now) };
      }),
  );

  app.get(
    '/v1/status',
    {
      config: { auth: 'registered' },
      schema: { description: 'the run at a glance', response: replies(StatusReply) },
    },
    async () => ({
      run: ctx.run,
      version: ctx.version,
      protocol: PROTOCOL_VERSION,
      server_time: ctx.clock(),
      participants: ctx.repo.roleCounts(),
    }),
  );

  app.get(
    '/v1/participants',
    {
      config: { auth: 'registered', roles: ['validator', 'admin'] },
      schema: {
        description: 'every registered key (validators and admins)',
        response: replies(ParticipantsReply),
      },
    },
    async () => ({
      participants: ctx.repo.participants().map((p) => ({
        id: p.id,
        role: p.role,
        registered_at: p.registeredAt,
        last_seen: p.lastSeen,
        ...(typeof p.info.name === 'string' ? { name: p.info.name } : {}),
      })),
    }),
  );
}
