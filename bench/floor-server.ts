/**
 * The orchestrator benchmark's floor (`npm run bench -- orchestrator --floor`): the real
 * server setup (buildOrchestrator: auth, signature verification on its worker, rate limits,
 * schemas, metrics, error handling; registration through the real route) whose /v1/join,
 * /v1/work and /v1/report do no database work and return canned replies of the real size.
 * What the real server costs above this is the scheduler and its state.
 *
 * Usage: node floor-server.js STATE_DIR; prints {"event": "listening", "url": ...}.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildOrchestrator } from '../src/orchestrator/server.js';
import { Repository } from '../src/orchestrator/state/repository.js';
import { replies } from '../src/protocol/messages.js';
import {
  JoinReply,
  JoinRequest,
  ReportReply,
  ReportRequest,
  WorkReply,
  WorkRequest,
} from '../src/protocol/swarm-messages.js';

const sha = (s: string) => s.repeat(64).slice(0, 64);
const url = (key: string) =>
  `http://127.0.0.1:36851/store/${key}?m=GET&exp=1795632744493&sig=${'s'.repeat(43)}`;
const manifestKey = 'runs/bench/e0/stage/0.json';
const shardKey = 'runs/bench/data/shard-00000.bin';

const repo = Repository.open(join(process.argv[2], 'state.db'));
const view = () => ({
  stage: 0,
  epoch: 0,
  phase: 'training' as const,
  since: 1795631844078,
  manifest: {
    key: manifestKey,
    size: 361,
    sha256: sha('e'),
    epoch: 0,
    step: 0,
    url: url(manifestKey),
  },
});
let item = 0;

const canned = async (app: FastifyInstance) => {
  const miner = { config: { auth: 'registered' as const, roles: ['miner' as const] } };
  app.post(
    '/v1/join',
    { ...miner, schema: { body: JoinRequest, response: replies(JoinReply) } },
    async () => view(),
  );
  app.post(
    '/v1/work',
    { ...miner, schema: { body: WorkRequest, response: replies(WorkReply) } },
    async () => {
      const now = Date.now();
      const n = item++;
      const window = {
        key: shardKey,
        start: 223014,
        end: 223144,
        sha256: sha('1'),
        url: url(shardKey),
      };
      return {
        ...view(),
        server_time: now,
        items: [
          {
            lease: randomBytes(12).toString('hex'),
            item: n,
            epoch: 0,
            stage: 0,
            kind: 'tail',
            samples: [n],
            expires_at: now + 300_000,
            windows: [window],
          },
        ],
      };
    },
  );
  app.post(
    '/v1/report',
    { ...miner, schema: { body: ReportRequest, response: replies(ReportReply) } },
    async () => ({ item: 0, stage: 0, kind: 'tail', credited: 1 }),
  );
};

const verifyThreads =
  process.env.IOTA_VERIFY_THREADS === undefined
    ? undefined
    : Number(process.env.IOTA_VERIFY_THREADS);
const { app } = await buildOrchestrator({
  run: 'bench',
  version: 'bench',
  repo,
  node: { validators: [], admins: [] },
  rateLimits: { exemptLoopback: true, keyPerSecond: 1000, keyBurst: 1000 },
  plugins: [canned],
  verifyThreads,
});
process.stdout.write(
  `${JSON.stringify({ event: 'listening', url: await app.listen({ host: '127.0.0.1', port: 0 }) })}\n`,
);
process.on('SIGTERM', () => {
  void app.close().then(() => {
    repo.close();
    process.exit(0);
  });
});
