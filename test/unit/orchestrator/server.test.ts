import { request } from 'undici';
import { newRequestId } from '../../../src/protocol/client.js';
import { newIdentity } from '../../../src/protocol/keys.js';
import { HEADERS, signRequest } from '../../../src/protocol/signing.js';
import {
  refusal,
  startTestOrchestrator,
  type TestOrchestrator,
} from '../../support/orchestrator.js';
import { SimParticipant } from '../../support/sim-miner.js';

describe('orchestrator server', () => {
  let o: TestOrchestrator;
  const validator = newIdentity();
  const admin = newIdentity();
  const people: SimParticipant[] = [];
  const sim = (identity = newIdentity(), clock?: () => number) => {
    const p = new SimParticipant(o.url, 'test-run', identity, clock);
    people.push(p);
    return p;
  };

  beforeAll(async () => {
    o = await startTestOrchestrator({
      node: { validators: [validator.id], admins: [admin.id] },
      rateLimits: { keyPerSecond: 1000, keyBurst: 1000 },
    });
  });
  afterAll(async () => {
    await Promise.all(people.map((p) => p.close()));
    await o.close();
  });

  it('registers miners permissionlessly and validators and admins from the node config', async () => {
    const m = sim();
    expect(await m.register()).toMatchObject({
      id: m.id,
      role: 'miner',
      run: 'test-run',
      new: true,
    });
    expect((await sim(validator).register()).role).toBe('validator');
    expect((await sim(admin).register()).role).toBe('admin');
    const status = await m.status();
    expect(status.participants).toEqual({ miner: 1, validator: 1, admin: 1 });
    expect(o.repo.participant(m.id)?.info).toMatchObject({ name: 'sim', version: 'test' });
  });

  it('answers a repeated request id with the original reply, freshly signed or not', async () => {
    const m = sim();
    const id = newRequestId();
    const first = await m.client.post('/v1/register', { version: 'test', name: 'first' }, id);
    const again = await m.client.post('/v1/register', { version: 'test', name: 'second' }, id);
    expect(again).toEqual(first);
    expect(o.repo.participant(m.id)?.info.name).toBe('first');
    const other = await refusal(m.client.post('/v1/heartbeat', {}, id));
    expect(other.code).toBe('E_REQUEST_ID_REUSED');
  });

  it('lets a validator list participants but not a miner', async () => {
    const v = sim(validator);
    await v.register();
    const list = await v.client.get<{ participants: Array<{ id: string }> }>('/v1/participants');
    expect(list.participants.map((p) => p.id)).toContain(validator.id);
    const m = sim();
    await m.register();
    expect((await refusal(m.client.get('/v1/participants'))).code).toBe('E_FORBIDDEN');
  });

  it('tells a client with a skewed clock the server time, and the client recovers', async () => {
    const skewed = sim(newIdentity(), () => Date.now() - 120_000);
    const raw = await skewed.client.send(
      'POST',
      '/v1/register',
      JSON.stringify({ version: 'test' }),
      newRequestId(),
    );
    expect(raw.status).toBe(401);
    const err = (raw.body as { error: { code: string; server_time: number } }).error;
    expect(err.code).toBe('E_CLOCK_SKEW');
    expect(Math.abs(err.server_time - Date.now())).toBeLessThan(5000);
    expect((await skewed.register()).role).toBe('miner');
  });

  it('gives one clear message on a protocol version mismatch', async () => {
    const m = sim();
    const raw = await m.client.send(
      'POST',
      '/v1/register',
      JSON.stringify({ version: 'test' }),
      newRequestId(),
      { [HEADERS.version]: '99' },
    );
    expect(raw.status).toBe(426);
    expect((raw.body as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'E_VERSION_MISMATCH',
      message: expect.stringMatching(/protocol 99.*speaks 1/),
    });
  });

  it('serves health, readiness, Prometheus metrics and an OpenAPI document of every route', async () => {
    expect((await request(`${o.url}/healthz`)).statusCode).toBe(200);
    expect((await request(`${o.url}/readyz`)).statusCode).toBe(200);
    const metrics = await (await request(`${o.url}/metrics`)).body.text();
    expect(metrics).toMatch(
      /iota_http_request_duration_seconds_bucket\{[^}]*route="\/v1\/register"/,
    );
    expect(metrics).toMatch(/iota_participants\{role="miner"\} \d+/);
    const doc = (await (await request(`${o.url}/openapi.json`)).body.json()) as {
      paths: Record<string, Record<string, { requestBody?: unknown }>>;
    };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/register',
        '/v1/heartbeat',
        '/v1/status',
        '/v1/participants',
        '/healthz',
        '/metrics',
      ]),
    );
    expect(doc.paths['/v1/register'].post.requestBody).toBeDefined();
  });
});

describe('rate limits', () => {
  it('refuses a key beyond its budget with E_RATE_LIMITED and an address beyond its own', async () => {
    const o = await startTestOrchestrator({
      rateLimits: { keyPerSecond: 0.001, keyBurst: 3, ipPerSecond: 0.001, ipBurst: 6 },
    });
    const m = new SimParticipant(o.url);
    await m.register();
    await m.heartbeat();
    await m.heartbeat();
    // (a raw call: the client itself would wait as told, and never give up)
    const limited = await m.client.send('POST', '/v1/heartbeat', '{}', newRequestId());
    expect(limited.status).toBe(429);
    expect((limited.body as { error: { code: string } }).error.code).toBe('E_RATE_LIMITED');
    // the address has 6 tokens: 4 used above; two more unsigned calls, then refused
    await request(`${o.url}/healthz`);
    await request(`${o.url}/healthz`);
    const r = await request(`${o.url}/healthz`);
    expect(r.statusCode).toBe(429);
    expect(((await r.body.json()) as { error: { code: string } }).error.code).toBe(
      'E_RATE_LIMITED',
    );
    await m.close();
    await o.close();
  });
});

describe.each([0, 1])('signatures verified on %i worker threads', (threads) => {
  it('accepts a signed call and refuses a changed body', async () => {
    const o = await startTestOrchestrator({ verifyThreads: threads });
    const m = new SimParticipant(o.url);
    expect((await m.register()).role).toBe('miner');
    const id = newIdentity();
    const headers = signRequest(
      id,
      'POST',
      '/v1/register',
      'test-run',
      JSON.stringify({ version: 'a' }),
      Date.now(),
    );
    const r = await request(`${o.url}/v1/register`, {
      method: 'POST',
      headers: {
        ...headers,
        'content-type': 'application/json',
        [HEADERS.requestId]: newRequestId(),
      },
      body: JSON.stringify({ version: 'b' }),
    });
    expect(r.statusCode).toBe(401);
    expect(((await r.body.json()) as { error: { code: string } }).error.code).toBe(
      'E_BAD_SIGNATURE',
    );
    await m.close();
    await o.close();
  });
});

describe('allow-list', () => {
  it('admits only listed miner keys when an allow-list is set, and still admits validators', async () => {
    const listed = newIdentity();
    const validator = newIdentity();
    const o = await startTestOrchestrator({
      node: { allow_list: [listed.id], validators: [validator.id], admins: [] },
    });
    const ok = new SimParticipant(o.url, 'test-run', listed);
    const v = new SimParticipant(o.url, 'test-run', validator);
    const stranger = new SimParticipant(o.url);
    expect((await ok.register()).role).toBe('miner');
    expect((await v.register()).role).toBe('validator');
    const e = await refusal(stranger.register());
    expect(e.code).toBe('E_NOT_ALLOWED');
    expect(e.status).toBe(403);
    expect(o.repo.participant(stranger.id)).toBeUndefined();
    await Promise.all([ok.close(), v.close(), stranger.close()]);
    await o.close();
  });
});
