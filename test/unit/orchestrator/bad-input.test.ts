import { request } from 'undici';
import { newRequestId } from '../../../src/protocol/client.js';
import { newIdentity, type Identity } from '../../../src/protocol/keys.js';
import { HEADERS, signRequest } from '../../../src/protocol/signing.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storageRoutes } from '../../../src/orchestrator/routes/storage.js';
import { LocalStore, localStoreRoutes } from '../../../src/store/index.js';
import { startTestOrchestrator, type TestOrchestrator } from '../../support/orchestrator.js';
import { SimParticipant } from '../../support/sim-miner.js';
import { keys } from '../../../src/store/keys.js';

interface Attempt {
  name: string;
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  headers: Record<string, string>;
  status: number;
  code: string;
}

const BODY_LIMIT = 4096;

function signed(
  id: Identity,
  method: string,
  path: string,
  body?: string,
  o: { run?: string; now?: number; requestId?: boolean } = {},
): Record<string, string> {
  return {
    ...signRequest(id, method, path, o.run ?? 'test-run', body, o.now ?? Date.now()),
    ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    ...(o.requestId === false ? {} : { [HEADERS.requestId]: newRequestId() }),
  };
}

describe('bad input on every route', () => {
  let o: TestOrchestrator;
  let miner: SimParticipant;
  const stranger = newIdentity();
  let replay: { headers: Record<string, string>; body: string };

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iota-bad-'));
    let base = '';
    const store = await LocalStore.open({ root: join(dir, 'store'), baseUrl: () => base });
    o = await startTestOrchestrator({
      dir,
      bodyLimit: BODY_LIMIT,
      node: { validators: [newIdentity().id], admins: [] },
      plugins: [localStoreRoutes(store), storageRoutes(store)],
    });
    base = o.url;
    miner = new SimParticipant(o.url);
    await miner.register();
    // a request that succeeded, captured for replay
    const body = JSON.stringify({});
    replay = { headers: signed(miner.identity, 'POST', '/v1/heartbeat', body), body };
    expect(
      (await request(`${o.url}/v1/heartbeat`, { method: 'POST', headers: replay.headers, body }))
        .statusCode,
    ).toBe(200);
  });
  afterAll(async () => {
    await miner.close();
    await o.close();
  });

  function attempts(): Attempt[] {
    const m = miner.identity;
    const reg = (body: string, status: number, code: string, name: string): Attempt => ({
      name,
      method: 'POST',
      path: '/v1/register',
      body,
      headers: signed(newIdentity(), 'POST', '/v1/register', body),
      status,
      code,
    });
    const hb = '{}';
    const list: Attempt[] = [
      reg('{"version": ', 400, 'E_BAD_JSON', 'malformed JSON'),
      reg('{"version": 7}', 400, 'E_BAD_REQUEST', 'wrong type'),
      reg('{}', 400, 'E_BAD_REQUEST', 'missing field'),
      reg('{"version": "x", "admin": true}', 400, 'E_BAD_REQUEST', 'unknown field'),
      reg('[1, 2, 3]', 400, 'E_BAD_REQUEST', 'not an object'),
      reg(
        JSON.stringify({ version: 'x', name: 'a'.repeat(BODY_LIMIT) }),
        413,
        'E_TOO_LARGE',
        'oversized body',
      ),
      {
        name: 'missing signature',
        method: 'POST',
        path: '/v1/register',
        body: '{"version":"x"}',
        headers: { 'content-type': 'application/json', [HEADERS.requestId]: newRequestId() },
        status: 401,
        code: 'E_UNSIGNED',
      },
      {
        name: 'bad signature',
        method: 'POST',
        path: '/v1/heartbeat',
        body: hb,
        headers: { ...signed(m, 'POST', '/v1/heartbeat', hb), [HEADERS.signature]: 'A'.repeat(86) },
        status: 401,
        code: 'E_BAD_SIGNATURE',
      },
      {
        name: 'signature of another path',
        method: 'POST',
        path: '/v1/heartbeat',
        body: hb,
        headers: signed(m, 'POST', '/v1/register', hb),
        status: 401,
        code: 'E_BAD_SIGNATURE',
      },
      {
        name: 'replayed signature',
        method: 'POST',
        path: '/v1/heartbeat',
        body: replay.body,
        headers: replay.headers,
        status: 409,
        code: 'E_REPLAY',
      },
      {
        name: 'stale timestamp',
        method: 'POST',
        path: '/v1/heartbeat',
        body: hb,
        headers: signed(m, 'POST', '/v1/heartbeat', hb, { now: Date.now() - 60_000 }),
        status: 401,
        code: 'E_CLOCK_SKEW',
      },
      {
        name: 'future timestamp',
        method: 'GET',
        path: '/v1/status',
        headers: signed(m, 'GET', '/v1/status', undefined, {
          now: Date.now() + 60_000,
          requestId: false,
        }),
        status: 401,
        code: 'E_CLOCK_SKEW',
      },
      {
        name: 'other run',
        method: 'POST',
        path: '/v1/heartbeat',
        body: hb,
        headers: signed(m, 'POST', '/v1/heartbeat', hb, { run: 'other' }),
        status: 409,
        code: 'E_WRONG_RUN',
      },
      {
        name: 'malformed key id',
        method: 'POST',
        path: '/v1/heartbeat',
        body: hb,
        headers: { ...signed(m, 'POST', '/v1/heartbeat', hb), [HEADERS.key]: 'not-a-key' },
        status: 401,
        code: 'E_BAD_KEY_ID',
      },
      {
        name: 'unknown key (heartbeat)',
        method: 'POST',
        path: '/v1/heartbeat',
        body: hb,
        headers: signed(stranger, 'POST', '/v1/heartbeat', hb),
        status: 403,
        code: 'E_UNKNOWN_KEY',
      },
      {
        name: 'unknown key (status)',
        method: 'GET',
        path: '/v1/status',
        headers: signed(stranger, 'GET', '/v1/status', undefined, { requestId: false }),
        status: 403,
        code: 'E_UNKNOWN_KEY',
      },
      {
        name: 'validator-only call by a miner',
        method: 'GET',
        path: '/v1/participants',
        headers: signed(m, 'GET', '/v1/participants', undefined, { requestId: false }),
        status: 403,
        code: 'E_FORBIDDEN',
      },
      {
        name: 'state change without a request id',
        method: 'POST',
        path: '/v1/heartbeat',
        body: hb,
        headers: signed(m, 'POST', '/v1/heartbeat', hb, { requestId: false }),
        status: 400,
        code: 'E_NO_REQUEST_ID',
      },
      {
        name: 'heartbeat with a wrong field',
        method: 'POST',
        path: '/v1/heartbeat',
        body: '{"state": 5}',
        headers: signed(m, 'POST', '/v1/heartbeat', '{"state": 5}'),
        status: 400,
        code: 'E_BAD_REQUEST',
      },
      {
        name: 'wrong content type',
        method: 'POST',
        path: '/v1/heartbeat',
        body: 'x',
        headers: { ...signed(m, 'POST', '/v1/heartbeat', 'x'), 'content-type': 'text/plain' },
        status: 415,
        code: 'E_BAD_CONTENT_TYPE',
      },
      {
        name: 'unknown route',
        method: 'GET',
        path: '/v1/nothing',
        headers: {},
        status: 404,
        code: 'E_NOT_FOUND',
      },
      ...storageAttempts(m),
    ];
    return list;
  }

  function storageAttempts(m: Identity): Attempt[] {
    const sha = 'a'.repeat(64);
    const own = keys.gradient({ run: 'test-run', epoch: 0, stage: 0, owner: m.id });
    const up = (body: string, status: number, code: string, name: string, who = m): Attempt => ({
      name,
      method: 'POST',
      path: '/v1/storage/upload',
      body,
      headers: signed(who, 'POST', '/v1/storage/upload', body),
      status,
      code,
    });
    const get = (path: string, status: number, code: string, name: string): Attempt => ({
      name,
      method: 'GET',
      path,
      headers: signed(m, 'GET', path, undefined, { requestId: false }),
      status,
      code,
    });
    const complete = JSON.stringify({ key: own, upload_id: 'nope', etags: ['x'] });
    return [
      up('{"kind": "gradient", ', 400, 'E_BAD_JSON', 'upload: malformed JSON'),
      up(
        JSON.stringify({ kind: 'gradient', key: own, size: '10', sha256: sha }),
        400,
        'E_BAD_REQUEST',
        'upload: wrong type',
      ),
      up(
        JSON.stringify({ kind: 'gradient', key: own, sha256: sha }),
        400,
        'E_BAD_REQUEST',
        'upload: missing size',
      ),
      up(
        JSON.stringify({ kind: 'weights', key: own, size: 10, sha256: sha }),
        400,
        'E_BAD_REQUEST',
        'upload: unknown kind',
      ),
      up(
        JSON.stringify({ kind: 'gradient', key: own, size: 10, sha256: 'XYZ' }),
        400,
        'E_BAD_REQUEST',
        'upload: malformed sha256',
      ),
      up(
        JSON.stringify({
          kind: 'gradient',
          key: keys.gradient({ run: 'test-run', epoch: 0, stage: 0, owner: stranger.id }),
          size: 10,
          sha256: sha,
        }),
        403,
        'E_NOT_YOUR_PREFIX',
        "upload: another's prefix",
      ),
      up(
        JSON.stringify({ kind: 'gradient', key: own, size: 2 ** 50, sha256: sha }),
        413,
        'E_TOO_LARGE',
        'upload: oversized declaration',
      ),
      up(
        JSON.stringify({ kind: 'gradient', key: own, size: 10, sha256: sha }),
        403,
        'E_UNKNOWN_KEY',
        'upload: unknown key',
        stranger,
      ),
      {
        name: 'complete: unknown upload',
        method: 'POST',
        path: '/v1/storage/complete',
        body: complete,
        headers: signed(m, 'POST', '/v1/storage/complete', complete),
        status: 404,
        code: 'E_NO_UPLOAD',
      },
      get('/v1/storage/download', 400, 'E_BAD_REQUEST', 'download: no key'),
      get('/v1/storage/download?key=runs/other/x', 403, 'E_NOT_YOUR_PREFIX', 'download: other run'),
      get(
        `/v1/storage/download?key=${encodeURIComponent(own)}`,
        404,
        'E_NOT_FOUND',
        'download: missing object',
      ),
      {
        name: 'store: forged URL',
        method: 'GET',
        path: `/store/${own}?m=GET&exp=${Date.now() + 60_000}&sig=AAAA`,
        headers: {},
        status: 403,
        code: 'E_BAD_SIGNATURE',
      },
    ];
  }

  it('refuses each with a 4xx and a machine-readable code, stays up, and changes nothing', async () => {
    const before = o.repo.dump();
    const seen: string[] = [];
    for (const a of attempts()) {
      const r = await request(`${o.url}${a.path}`, {
        method: a.method,
        headers: a.headers,
        body: a.body,
      });
      const body = (await r.body.json()) as { error?: { code: string; message: string } };
      seen.push(`${a.name}: ${r.statusCode} ${body.error?.code}`);
      expect(`${a.name}: ${r.statusCode} ${body.error?.code}`).toBe(
        `${a.name}: ${a.status} ${a.code}`,
      );
      expect(body.error?.message.length).toBeGreaterThan(5);
    }
    expect(seen.length).toBeGreaterThanOrEqual(33);
    expect((await request(`${o.url}/healthz`)).statusCode).toBe(200);
    expect(o.repo.dump()).toBe(before);
  });
});
