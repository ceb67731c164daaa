/** Validators' routes (tasks and verdicts) and the public scores. */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { replies } from '../../protocol/messages.js';
import {
  EvalRequest,
  EvalTaskReply,
  ScoresReply,
  ValidationTasksReply,
  VerdictRequest,
  VerdictsReply,
} from '../../protocol/swarm-messages.js';
import type { ObjectStore } from '../../store/index.js';
import type { ServerContext } from '../context.js';
import type { ValidationCoordinator } from '../swarm/validation.js';

export async function validationRoutes(
  app: FastifyInstance,
  ctx: ServerContext,
  v: ValidationCoordinator,
  store: ObjectStore,
): Promise<void> {
  app.post<{ Body: { max?: number } }>(
    '/v1/validate/tasks',
    {
      config: { auth: 'registered', roles: ['validator'] },
      schema: {
        description: 'take up to `max` replay tasks (never of your own work), with read URLs',
        body: Type.Object(
          { max: Type.Optional(Type.Integer({ minimum: 1, maximum: 32 })) },
          { additionalProperties: false },
        ),
        response: replies(ValidationTasksReply),
      },
    },
    async (req) => {
      const now = ctx.clock();
      const tasks = await ctx.mutate(req, () =>
        v.tasksFor(req.auth!.key, req.body.max ?? 1, ctx.clock()),
      );
      const out = structuredClone(tasks);
      for (const t of out) {
        const exp = Date.now() + Math.max(1000, t.expires_at - now);
        const sign = async <T extends { key: string }>(r: T) => ({
          ...r,
          url: await store.presignGet({ key: r.key, expiresAt: exp }),
        });
        t.weights = await sign(t.weights);
        if (t.windows) t.windows = await Promise.all(t.windows.map(sign));
        if (t.x) t.x = await sign(t.x);
        if (t.dy) t.dy = await sign(t.dy);
        if (t.output) t.output = await sign(t.output);
        if (t.gradient) t.gradient = await sign(t.gradient);
        for (const it of t.items ?? []) {
          if (it.windows) it.windows = await Promise.all(it.windows.map(sign));
          if (it.x) it.x = await sign(it.x);
          if (it.dy) it.dy = await sign(it.dy);
        }
      }
      return {
        tasks: out,
        threshold: v.cfg.run.validation.threshold,
        exact_threshold: v.cfg.run.validation.exact_threshold,
      };
    },
  );

  app.post<{ Body: VerdictRequest }>(
    '/v1/validate/verdict',
    {
      config: { auth: 'registered', roles: ['validator'] },
      schema: {
        description: 'the verdict of a replay, with the relative error measured',
        body: VerdictRequest,
        response: replies(Type.Object({ state: Type.String() })),
      },
    },
    async (req) =>
      ctx.mutate(req, () =>
        v.verdict(
          req.auth!.key,
          req.body.id,
          req.body.abstain ? null : req.body.passed,
          req.body.rel_err ?? null,
          req.body.detail,
          ctx.clock(),
        ),
      ),
  );

  app.post(
    '/v1/validate/eval-task',
    {
      config: { auth: 'registered', roles: ['validator'] },
      schema: {
        description:
          'take the newest pending held-out evaluation: every stage’s weights of an epoch and the held-out windows',
        body: Type.Object({}, { additionalProperties: false }),
        response: replies(EvalTaskReply),
      },
    },
    async (req) => {
      const now = ctx.clock();
      const task = await ctx.mutate(req, () => v.evalTask(req.auth!.key, ctx.clock()) ?? null);
      if (!task) return {};
      const exp = Date.now() + Math.max(1000, task.expires_at - now);
      const sign = async <T extends { key: string }>(r: T) => ({
        ...r,
        url: await store.presignGet({ key: r.key, expiresAt: exp }),
      });
      return {
        task: {
          ...task,
          stages: await Promise.all(task.stages.map(sign)),
          windows: await Promise.all(task.windows.map(sign)),
        },
      };
    },
  );

  app.post<{ Body: EvalRequest }>(
    '/v1/validate/eval',
    {
      config: { auth: 'registered', roles: ['validator'] },
      schema: {
        description: 'the mean held-out loss of an epoch’s weights',
        body: EvalRequest,
        response: replies(Type.Object({ epoch: Type.Integer() })),
      },
    },
    async (req) =>
      ctx.mutate(req, () =>
        v.evalDone(req.auth!.key, req.body.epoch, req.body.loss, req.body.windows, ctx.clock()),
      ),
  );

  app.get<{ Querystring: { miner: string; limit?: string } }>(
    '/v1/verdicts',
    {
      config: { auth: 'none' },
      schema: {
        description:
          'a miner’s verdicts, oldest first (why it is on probation, what each check measured); public',
        querystring: Type.Object(
          {
            miner: Type.String({ minLength: 1, maxLength: 64 }),
            limit: Type.Optional(
              Type.String({
                pattern: '^[0-9]{1,4}$',
                description: 'at most this many, 1 to 1000 (default 100)',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: replies(VerdictsReply),
      },
    },
    async (req) => ({
      miner: req.query.miner,
      verdicts: v.verdicts(
        req.query.miner,
        Math.min(1000, Math.max(1, Number(req.query.limit ?? 100))),
      ),
    }),
  );

  app.get(
    '/v1/scores',
    {
      config: { auth: 'none' },
      schema: {
        description:
          'verified work, penalties, scores and incentive weights (what `iota scores` shows); public',
        response: replies(ScoresReply),
      },
    },
    async () => v.scores(),
  );
}
