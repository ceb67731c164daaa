/** An orchestrator in this process on a temporary database, listening on loopback. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import {
  buildOrchestrator,
  type OrchestratorOptions,
  type ServerContext,
} from '../../src/orchestrator/server.js';
import { Repository } from '../../src/orchestrator/state/repository.js';
import { ApiError } from '../../src/protocol/client.js';

export interface TestOrchestrator {
  url: string;
  app: FastifyInstance;
  ctx: ServerContext;
  repo: Repository;
  dir: string;
  close(): Promise<void>;
}

export async function startTestOrchestrator(
  o: Partial<OrchestratorOptions> & { dir?: string } = {},
): Promise<TestOrchestrator> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'iota-orch-'));
  const repo = o.repo ?? Repository.open(join(dir, 'state.db'));
  const { app, ctx } = await buildOrchestrator({
    run: 'test-run',
    version: 'test',
    node: { validators: [], admins: [] },
    ...o,
    repo,
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    url,
    app,
    ctx,
    repo,
    dir,
    async close() {
      await app.close();
      repo.close();
    },
  };
}

/** Awaits a call that must be refused, and returns the refusal. */
export async function refusal(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    return e as ApiError;
  }
  throw new Error('expected the call to be refused');
}
