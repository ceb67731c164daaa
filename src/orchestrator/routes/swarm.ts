/**
 * The swarm's routes: the run, joining a stage, work and reports, gradient uploads, status.
 * Object checks (does the reported output exist, with that hash?) run before the state change;
 * the change itself runs in the group commit through `ctx.mutate`, so a repeated request id
 * gets the original reply and a refused call changes nothing.
 */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { replies } from '../../protocol/messages.js';
import {
  GradientReply,
  GradientRequest,
  JoinReply,
  JoinRequest,
  RefuseRequest,
  ReportReply,
  ReportRequest,
  RunReply,
  SwarmStatus,
  WorkReply,
  WorkRequest,
} from '../../protocol/swarm-messages.js';
import type { ObjectStore } from '../../store/index.js';
import type { WorkReply as Work } from '../swarm/contracts.js';
import type { Coordinator } from '../swarm/coordinator.js';
import { checkTaskInputs, type InputCheck } from '../swarm/input-check.js';
import type { ServerContext } from '../context.js';
import { registerSwarmMetrics } from '../metrics.js';
import { URL_TTL_MS } from './storage.js';
import { mergeRoutes } from './merge.js';
import { validationRoutes } from './validate.js';
import type { ValidationCoordinator } from '../swarm/validation.js';
import type { MergeCoordinator } from '../swarm/merge.js';
import type { MergeReferee } from '../swarm/merge-referee.js';
import type { MergeDesk } from '../swarm/merge-desk.js';

/** How long a probe object's upload URL lives. */
const PROBE_TTL_MS = 60_000;

/** The swarm's parts the routes serve (assemble.ts builds them). */
export interface SwarmServices {
  coordinator: Coordinator;
  configHash: string;
  /** the sharded merge and the orchestrator's own merger, when the swarm merges */
  merge?: { coordinator: MergeCoordinator; desk: MergeDesk; referee: MergeReferee };
  validation?: ValidationCoordinator;
}

export function swarmRoutes(swarm: SwarmServices, store: ObjectStore) {
  const { coordinator, configHash, merge, validation } = swarm;
  const uploads = coordinator.uploads;
  const lastIdle = new Map<string, { reason: string; message: string }>();
  return async (app: FastifyInstance, ctx: ServerContext): Promise<void> => {
    ctx.onHeartbeat = (key, now) => coordinator.heartbeat(key, now);
    registerSwarmMetrics(ctx.metrics.registry, coordinator, ctx.clock, merge?.coordinator.traffic);
    // Only what the swarm expects from the caller now: exact keys and sizes (a refusal otherwise).
    ctx.uploadScope = (caller, key, declared, now, record) => {
      if (key.kind === 'activation')
        return coordinator.outputUpload(caller, key, declared, now, record);
      if (key.kind === 'gradient')
        return uploads.expiry(caller, key.epoch, key.stage, declared.size, now);
      if ((key.kind === 'merged' || key.kind === 'optimizer') && merge)
        return merge.desk.uploadExpiry(caller, key, declared.size, now);
      // A scratch object for measuring the link (iota doctor): its own, one per key, replaced.
      if (key.kind === 'probe') return now + PROBE_TTL_MS;
      return undefined;
    };
    if (merge) await mergeRoutes(app, ctx, merge.desk, merge.referee, store);
    if (validation) await validationRoutes(app, ctx, validation, store);

    app.get(
      '/v1/run',
      {
        config: { auth: 'registered' },
        schema: {
          description: 'the run and model configs, and their hash (send it as x-iota-run-hash)',
          response: replies(RunReply),
        },
      },
      async () => ({
        name: coordinator.cfg.name,
        config_hash: configHash,
        stages: coordinator.stages,
        params: coordinator.cfg.params,
        run: coordinator.cfg.run as unknown as Record<string, unknown>,
        model: coordinator.cfg.model as unknown as Record<string, unknown>,
      }),
    );

    app.post<{ Body: JoinRequest }>(
      '/v1/join',
      {
        config: { auth: 'registered', roles: ['miner'] },
        schema: {
          description: "join a stage: 'auto' picks the pipeline's bottleneck from measured rates",
          body: JoinRequest,
          response: replies(JoinReply),
        },
      },
      async (req) =>
        withUrls(
          store,
          await ctx.mutate(req, () => coordinator.join(req.auth!.key, req.body.layer, ctx.clock())),
          ctx.clock(),
        ),
    );

    app.post<{ Body: WorkRequest }>(
      '/v1/work',
      {
        config: { auth: 'registered', roles: ['miner'] },
        schema: {
          description:
            'lease up to `max` work items of your stage, or learn why there is none and when ' +
            'that changes; with `wait_ms`, wait that long at most for something to change ' +
            'before answering (a long poll)',
          body: WorkRequest,
          response: replies(WorkReply),
        },
      },
      async (req) => {
        // A long poll waits before its state change, so a request changes state once.
        if (req.body.wait_ms)
          await coordinator.waits.wait(req.auth!.key, req.body.wait_ms, ctx.clock());
        const reply = await ctx.mutate(req, () =>
          coordinator.work(req.auth!.key, req.body.max ?? 1, ctx.clock()),
        );
        // What it was last told, for the status (why a miner is idle), kept in memory only.
        if (reply.idle) lastIdle.set(req.auth!.key, reply.idle);
        else lastIdle.delete(req.auth!.key);
        return withUrls(store, reply, ctx.clock());
      },
    );

    app.post<{ Body: ReportRequest }>(
      '/v1/report',
      {
        config: { auth: 'registered', roles: ['miner'] },
        schema: {
          description:
            'report a leased item done: its uploaded output, and per-sample losses at the tail',
          body: ReportRequest,
          response: replies(ReportReply),
        },
      },
      async (req) => {
        // Only a report with an output has an object to check (a tail's losses have none).
        const key = req.body.output ? coordinator.expectedOutput(req.body.lease) : undefined;
        const info = key ? await store.head(key) : undefined;
        return ctx.mutate(req, () =>
          coordinator.report(req.auth!.key, req.body, info, ctx.clock()),
        );
      },
    );

    app.post<{ Body: RefuseRequest }>(
      '/v1/refuse',
      {
        config: { auth: 'registered', roles: ['miner'] },
        schema: {
          description:
            'refuse a leased item whose input is bad (hash, shape, size, NaN): the ' +
            'orchestrator checks the input; if it is bad the item is dropped and its ' +
            'producer recorded, if it is good the refusal is your fault and the item goes to ' +
            'another miner',
          body: RefuseRequest,
          response: replies(Type.Object({ dropped: Type.Integer(), upheld: Type.Boolean() })),
        },
      },
      async (req) => {
        // The claim is checked before anyone is blamed: the orchestrator reads the inputs itself.
        const t = coordinator.state.taskByLease(req.body.lease);
        const found: InputCheck =
          t && t.miner === req.auth!.key && t.state === 'leased'
            ? await checkTaskInputs(store, coordinator.cfg.model, t)
            : { ok: true };
        return ctx.mutate(req, () =>
          coordinator.refuse(
            req.auth!.key,
            req.body.lease,
            req.body.code,
            req.body.message,
            found,
            ctx.clock(),
          ),
        );
      },
    );

    app.post<{ Body: GradientRequest }>(
      '/v1/gradient',
      {
        config: { auth: 'registered', roles: ['miner'] },
        schema: {
          description: 'report your uploaded gradient sum for an epoch (UPLOADING only)',
          body: GradientRequest,
          response: replies(GradientReply),
        },
      },
      async (req) => {
        const b = req.body;
        const info = await store.head(uploads.key(b.epoch, b.stage, req.auth!.key));
        return ctx.mutate(req, () =>
          uploads.accept(
            req.auth!.key,
            b.epoch,
            b.stage,
            { size: b.size, sha256: b.sha256, partitions: b.partitions },
            info,
            ctx.clock(),
          ),
        );
      },
    );

    app.get<{ Querystring: { ledger_from?: string } }>(
      '/v1/swarm',
      {
        config: { auth: 'none' },
        schema: {
          description: 'the run at a glance (what `iota status` shows); public, limited by address',
          querystring: Type.Object(
            {
              ledger_from: Type.Optional(
                Type.String({
                  pattern: '^[0-9]{1,9}$',
                  description: 'ledger counts from this epoch on (default: the last four)',
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: replies(SwarmStatus),
        },
      },
      async (req) => {
        const st = coordinator.status(
          ctx.clock(),
          req.query.ledger_from === undefined ? undefined : Number(req.query.ledger_from),
        );
        for (const s of st.stages)
          for (const m of s.miners) {
            const idle = m.state === 'idle' ? lastIdle.get(m.id) : undefined;
            if (idle) m.idle = { reason: idle.reason, message: idle.message };
            // The display name it registered with (`iota miner --name`), if any.
            const name = ctx.repo.participant(m.id)?.info.name;
            if (typeof name === 'string' && name) m.name = name;
          }
        return st;
      },
    );
  };
}

/**
 * Read URLs for everything a reply points at, minted after the commit (a repeated request gets
 * fresh ones): inputs expire with their lease, the manifest after the URL lifetime. Expiries
 * are lengths of time from `now` on the orchestrator's clock, turned into the store's clock.
 */
async function withUrls<T extends { manifest: { key: string }; items?: Work['items'] }>(
  store: ObjectStore,
  r: T,
  now: number,
): Promise<T> {
  const cache = new Map<string, Promise<string>>();
  const url = (key: string, expiresAt: number) => {
    let u = cache.get(key);
    if (!u) cache.set(key, (u = store.presignGet({ key, expiresAt })));
    return u;
  };
  // Copies of what gets URLs: `r` may share objects with the state's in-memory rows.
  const out = { ...r, ...(r.items ? { items: r.items.map((it) => ({ ...it })) } : {}) };
  out.manifest = {
    ...out.manifest,
    url: await url(out.manifest.key, Date.now() + URL_TTL_MS),
  } as T['manifest'];
  for (const it of out.items ?? []) {
    const until = Date.now() + Math.max(1000, it.expires_at - now);
    if (it.windows)
      it.windows = await Promise.all(
        it.windows.map(async (w) => ({ ...w, url: await url(w.key, until) })),
      );
    if (it.x) it.x = { ...it.x, url: await url(it.x.key, until) } as typeof it.x;
    if (it.dy) it.dy = { ...it.dy, url: await url(it.dy.key, until) } as typeof it.dy;
  }
  return out;
}
