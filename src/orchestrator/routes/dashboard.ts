/**
 * The dashboard: `GET /dashboard` (and `/dashboard/miner/<id>`) serve one page whose script and
 * styles come from the package (`dashboard/`, and uPlot from node_modules), nothing from
 * elsewhere; the page reads the public routes and `GET /v1/history`, the run per epoch.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';
import { replies } from '../../protocol/messages.js';
import { HistoryReply } from '../../protocol/history-messages.js';
import { History, HISTORY_PAGE } from '../state/history.js';
import type { DB } from '../state/db.js';
import type { ModelConfig } from '../../config/model.js';
import type { RunConfig } from '../../config/run.js';
import type { ServerContext } from '../context.js';
import { passesToRelease } from '../swarm/validation.js';
import { HttpError } from '../errors.js';
import { PACKAGE_ROOT } from '../../config/shipped.js';

const ASSETS = join(PACKAGE_ROOT, 'dashboard');
const UPLOT = dirname(createRequire(import.meta.url).resolve('uplot/package.json'));

/** Every file the page loads, read once: path -> [content type, bytes]. */
function assets(): Map<string, [string, Buffer]> {
  const js = 'text/javascript; charset=utf-8';
  const css = 'text/css; charset=utf-8';
  return new Map([
    ['app.js', [js, readFileSync(join(ASSETS, 'app.js'))]],
    ['app.css', [css, readFileSync(join(ASSETS, 'app.css'))]],
    ['uplot.js', [js, readFileSync(join(UPLOT, 'dist', 'uPlot.iife.min.js'))]],
    ['uplot.css', [css, readFileSync(join(UPLOT, 'dist', 'uPlot.min.css'))]],
  ]);
}

const Since = Type.String({
  pattern: '^[0-9]{1,9}$',
  description: 'epochs from this one on (0 to 999999999)',
});

export interface DashboardRun {
  run: RunConfig;
  model: ModelConfig;
  params: number[];
}

export function dashboardRoutes(db: DB, cfg: DashboardRun) {
  const config = cfg as unknown as {
    run: Record<string, unknown>;
    model: Record<string, unknown>;
    params: number[];
  };
  const history = new History(db, cfg.params.length);
  const html = readFileSync(join(ASSETS, 'index.html'));
  const files = assets();
  return async (app: FastifyInstance, _ctx: ServerContext): Promise<void> => {
    app.get<{ Querystring: { since?: string; limit?: string; miner?: string } }>(
      '/v1/history',
      {
        config: { auth: 'none' },
        schema: {
          description:
            'the run per epoch (phase times, merged samples, training and held-out loss), ' +
            'and with `miner` that miner’s samples per epoch by ledger state; public',
          querystring: Type.Object(
            {
              since: Type.Optional(Since),
              limit: Type.Optional(
                Type.String({
                  pattern: '^[0-9]{1,4}$',
                  description: `at most this many rows, 1 to ${HISTORY_PAGE} (default ${HISTORY_PAGE})`,
                }),
              ),
              miner: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
            },
            { additionalProperties: false },
          ),
          response: replies(HistoryReply),
        },
      },
      async (req) => {
        const since = Number(req.query.since ?? 0);
        const limit = Math.max(1, Number(req.query.limit ?? HISTORY_PAGE));
        const miner = req.query.miner;
        const standing = miner ? history.standing(miner) : undefined;
        return {
          epochs: history.epochRows(since, limit),
          ...(miner ? { miner: history.minerRows(miner, since, limit) } : {}),
          ...(standing
            ? {
                standing: {
                  ...standing,
                  probation: standing.probation === 1,
                  passes_to_release: passesToRelease(
                    cfg.run.validation.probation_passes,
                    standing.failures,
                  ),
                },
              }
            : {}),
          seq: cfg.model.seq,
          config,
        };
      },
    );

    const page = (description: string) => ({
      config: { auth: 'none' as const },
      schema: { description },
    });
    const send = (reply: FastifyReply) => reply.type('text/html; charset=utf-8').send(html);
    app.get('/dashboard', page('the dashboard: the run, its stages and miners, live'), (_req, r) =>
      send(r),
    );
    app.get('/dashboard/miner/:id', page('the dashboard page of one miner'), (_req, r) => send(r));
    app.get<{ Params: { file: string } }>(
      '/dashboard/assets/:file',
      page('the dashboard’s script, styles and chart library'),
      async (req, reply) => {
        const f = files.get(req.params.file);
        if (!f) throw new HttpError('E_NOT_FOUND', `no dashboard file ${req.params.file}`);
        return reply.type(f[0]).header('cache-control', 'no-cache').send(f[1]);
      },
    );
  };
}
