/** The merge's routes: a merger's jobs, and its step-1 and step-2 reports. */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { replies } from '../../protocol/messages.js';
import {
  AcceptedReply,
  MergeJobsReply,
  ReducedRequest,
  UnavailableRequest,
  UpdatedRequest,
} from '../../protocol/swarm-messages.js';
import type { ObjectStore } from '../../store/index.js';
import type { ServerContext } from '../context.js';
import type { MergeDesk } from '../swarm/merge-desk.js';
import type { MergeReferee } from '../swarm/merge-referee.js';

export async function mergeRoutes(
  app: FastifyInstance,
  ctx: ServerContext,
  merge: MergeDesk,
  referee: MergeReferee,
  store: ObjectStore,
): Promise<void> {
  // A result may complete a partition the orchestrator must now act on (a tie, a publish).
  const kick = () =>
    void referee.pump().catch((e: unknown) => app.log.error({ err: e }, 'merge pump failed'));

  app.get(
    '/v1/merge/jobs',
    {
      config: { auth: 'registered', roles: ['miner'] },
      schema: {
        description: 'your merge jobs now, with read URLs for their inputs',
        querystring: Type.Object({}, { additionalProperties: false }),
        response: replies(MergeJobsReply),
      },
    },
    async (req) => {
      const now = ctx.clock();
      const jobs = await merge.jobsFor(req.auth!.key, now);
      const until = (deadline: number) => Date.now() + Math.max(1000, deadline - now);
      for (const j of jobs) {
        const exp = until(j.deadline);
        const urls = new Map<string, string>();
        for (const i of j.inputs) {
          if (!urls.has(i.key))
            urls.set(i.key, await store.presignGet({ key: i.key, expiresAt: exp }));
          Object.assign(i, { url: urls.get(i.key) });
        }
        if (j.w)
          Object.assign(j.w, { url: await store.presignGet({ key: j.w.key, expiresAt: exp }) });
        if (j.optim)
          Object.assign(j.optim, {
            url: await store.presignGet({ key: j.optim.key, expiresAt: exp }),
          });
      }
      return { jobs };
    },
  );

  app.post<{ Body: ReducedRequest }>(
    '/v1/merge/reduced',
    {
      config: { auth: 'registered', roles: ['miner'] },
      schema: {
        description:
          "step 1 done: the partition's mean gradient's hash and squared norm, and each participant's slice norm",
        body: ReducedRequest,
        response: replies(AcceptedReply),
      },
    },
    async (req) => {
      const r = await ctx.mutate(req, () => merge.reduced(req.auth!.key, req.body, ctx.clock()));
      kick();
      return r;
    },
  );

  app.post<{ Body: UpdatedRequest }>(
    '/v1/merge/updated',
    {
      config: { auth: 'registered', roles: ['miner'] },
      schema: {
        description:
          'step 2 done: the new weights and optimizer state of a partition, uploaded (a ' +
          'writer: its job names outputs) or only hashed (a witness)',
        body: UpdatedRequest,
        response: replies(AcceptedReply),
      },
    },
    async (req) => {
      const b = req.body;
      const me = req.auth!.key;
      const out = merge.outputKeys(b.epoch, b.stage, b.partition, me);
      const [w, optim] = await Promise.all([store.head(out.w), store.head(out.optim)]);
      const r = await ctx.mutate(req, () => merge.updated(me, b, { w, optim }, ctx.clock()));
      kick();
      return r;
    },
  );

  app.post<{ Body: UnavailableRequest }>(
    '/v1/merge/unavailable',
    {
      config: { auth: 'registered', roles: ['miner'] },
      schema: {
        description:
          "E_INPUT_UNAVAILABLE: a participant's slice cannot be read or does not match its " +
          'hash (the orchestrator checks)',
        body: UnavailableRequest,
        response: replies(AcceptedReply),
      },
    },
    async (req) => {
      const r = await ctx.mutate(req, () =>
        merge.unavailable(req.auth!.key, req.body, ctx.clock()),
      );
      kick();
      return r;
    },
  );
}
