/**
 * Holes a hostile participant could use over HTTP, closed: each test reproduces one attack on
 * a real orchestrator (in this process, real store, signed clients) and checks that a refused
 * request changes nothing, the store included. The defect numbers are those of the security
 * issue.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { encodeActivation } from '../../../src/compute/tensors.js';
import { gradientSize } from '../../../src/merge/gradient.js';
import { newRequestId, SignedClient } from '../../../src/protocol/client.js';
import { HEADERS, signRequest } from '../../../src/protocol/signing.js';
import type { WorkItemMessage } from '../../../src/protocol/swarm-messages.js';
import {
  describeUpload,
  keys,
  parseKey,
  upload,
  type UploadPlan,
} from '../../../src/store/index.js';
import { refusal, startTestOrchestrator } from '../../support/orchestrator.js';
import { SimMiner, SimParticipant } from '../../support/sim-miner.js';
import { startSwarmServer, type SwarmServer } from '../../support/swarm-server.js';

const RUN = 'swarm-test';

/** A JSON reply: an upload plan, or an error. */
type Reply = { uploadId?: string; key?: string; error: { code: string } };

/** Everything a refused request could have touched: the database and the store's files. */
async function snapshot(o: SwarmServer): Promise<string> {
  const files = (dir: string): string[] => {
    try {
      return readdirSync(dir, { recursive: true }) as string[];
    } catch {
      return [];
    }
  };
  return JSON.stringify({
    db: o.repo.dump(),
    store: files(join(o.dir, 'store')).sort(),
  });
}

async function miners(o: SwarmServer, n: number): Promise<SimMiner[]> {
  const out: SimMiner[] = [];
  for (let i = 0; i < n; i++) {
    const m = new SimMiner(o.url, RUN, undefined, () => o.clock.now);
    await m.register(`m${i}`);
    m.client.runHash = o.configHash;
    await m.join(i);
    out.push(m);
  }
  return out;
}

describe('defect 3: an upload URL is for the one object a task may write', () => {
  let o: SwarmServer;
  let head: SimMiner;
  let item: WorkItemMessage;
  beforeAll(async () => {
    o = await startSwarmServer();
    [head] = await miners(o, 1);
    item = (await head.work(1)).items[0];
    expect(item.kind).toBe('fwd');
  });
  afterAll(async () => {
    await head.close();
    await o.close();
  });

  const ask = (key: string, size: number) =>
    head.client.post<UploadPlan>('/v1/storage/upload', {
      kind: parseKey(key)!.kind,
      key,
      size,
      sha256: 'a'.repeat(64),
    });

  it('refuses another sample, stage or epoch under the same lease, and any other size', async () => {
    const own = parseKey(item.output_key!) as Extract<
      ReturnType<typeof parseKey>,
      { kind: 'activation' }
    >;
    const size = encodeActivation(new Float32Array(64 * 16), [1, 64, 16], 'bf16').length;
    const before = await snapshot(o);
    for (const other of [
      { ...own, sample: own.sample + 1 },
      { ...own, stage: 2 },
      { ...own, epoch: 7 },
      { ...own, direction: 'bwd' as const },
    ]) {
      expect((await refusal(ask(keys.activation(other), size))).code).toBe('E_NOT_YOUR_PREFIX');
    }
    for (const wrong of [size - 1, size + 1, 64 * 2 ** 20, 512 * 2 ** 20])
      expect((await refusal(ask(item.output_key!, wrong))).code).toBe('E_BAD_SIZE');
    expect(await snapshot(o)).toBe(before);
    const plan = await ask(item.output_key!, size);
    expect(plan.size).toBe(size);
  });
});

describe('defect 6a: an accepted output cannot be swapped through a second URL', () => {
  it('refuses a second declaration of other bytes for the same output', async () => {
    const o = await startSwarmServer();
    const [head] = await miners(o, 1);
    try {
      const it = (await head.work(1)).items[0];
      const shape: [number, number, number] = [1, 64, 16];
      const good = encodeActivation(new Float32Array(64 * 16).fill(0.5), shape, 'bf16');
      const evil = encodeActivation(new Float32Array(64 * 16).fill(-9), shape, 'bf16');
      const declare = (bytes: Uint8Array) => {
        const d = describeUpload(bytes);
        return head.client.post<UploadPlan>('/v1/storage/upload', {
          kind: 'activation',
          key: it.output_key,
          size: d.size,
          sha256: d.sha256,
        });
      };
      const first = await declare(good);
      // The same bytes again (a retry after a failed upload) are fine.
      await declare(good);
      const before = await snapshot(o);
      expect((await refusal(declare(evil))).code).toBe('E_ALREADY_DECLARED');
      expect(await snapshot(o)).toBe(before);
      await upload(first, good);
      await head.client.post('/v1/report', {
        lease: it.lease,
        output: { size: good.length, sha256: describeUpload(good).sha256 },
      });
      expect(Buffer.from(await o.store.get(it.output_key!)).equals(Buffer.from(good))).toBe(true);
    } finally {
      await head.close();
      await o.close();
    }
  });
});

describe('defect 4: a gradient of the wrong size', () => {
  it('is refused at the URL and at POST /v1/gradient, so it never reaches a merge', async () => {
    const o = await startSwarmServer({ stages: '[[-1, -1]]', runOver: { samples_per_epoch: 1 } });
    const [m] = await miners(o, 1);
    try {
      await m.round(1);
      const w = await m.work(1);
      expect(w.phase).toBe('uploading');
      const key = w.duty!.key;
      const right = gradientSize(o.coord.cfg.params[0]);
      const bytes = new Uint8Array(right + 4096);
      const d = describeUpload(bytes);
      const before = await snapshot(o);
      const e = await refusal(
        m.client.post('/v1/storage/upload', {
          kind: 'gradient',
          key,
          size: d.size,
          sha256: d.sha256,
        }),
      );
      expect(e.code).toBe('E_BAD_SIZE');
      expect(e.message).toContain(String(right));
      expect(await snapshot(o)).toBe(before);
      // Written behind the orchestrator's back (an S3 bucket's owner could): still refused.
      await o.store.put(key, bytes);
      const g = await refusal(
        m.client.post('/v1/gradient', {
          epoch: 0,
          stage: 0,
          size: d.size,
          sha256: d.sha256,
          partitions: ['0'.repeat(64)],
        }),
      );
      expect(g.code).toBe('E_BAD_SIZE');
      expect(o.coord.state.gradients(0, 0)).toEqual([]);
    } finally {
      await m.close();
      await o.close();
    }
  });
});

describe('defect 6b: a replayed multipart-plan request', () => {
  it('is refused before anything is written to the store', async () => {
    const o = await startSwarmServer({ stages: '[[-1, -1]]', runOver: { samples_per_epoch: 1 } });
    const [m] = await miners(o, 1);
    try {
      await m.round(1);
      const w = await m.work(1);
      const size = gradientSize(o.coord.cfg.params[0]);
      const partSize = 5 * 2 ** 20; // one part, the last (and only) one may be shorter
      const d = describeUpload(new Uint8Array(size), { partSize });
      const body = JSON.stringify({
        kind: 'gradient',
        key: w.duty!.key,
        size,
        sha256: d.sha256,
        part_size: partSize,
        part_sha256s: d.partSha256s,
      });
      const headers = {
        ...signRequest(m.identity, 'POST', '/v1/storage/upload', RUN, body, Date.now()),
        'content-type': 'application/json',
        [HEADERS.requestId]: newRequestId(),
        [HEADERS.runHash]: o.configHash,
      };
      const send = () =>
        request(`${o.url}/v1/storage/upload`, { method: 'POST', headers, body }).then(
          async (r) => ({
            status: r.statusCode,
            body: (await r.body.json()) as Reply,
          }),
        );
      const first = await send();
      expect(first.body).toMatchObject({ key: w.duty!.key });
      expect(first.status).toBe(200);
      expect(first.body.uploadId).toBeDefined();
      const before = await snapshot(o);
      const again = await send();
      expect(again.status).toBe(409);
      expect(again.body.error.code).toBe('E_REPLAY');
      expect(await snapshot(o)).toBe(before);
    } finally {
      await m.close();
      await o.close();
    }
  });
});

describe('defect 6c: a retry answered from the stored reply', () => {
  it('records its own nonce, so that exact retry cannot be replayed', async () => {
    const o = await startSwarmServer();
    const [m] = await miners(o, 1);
    try {
      const requestId = newRequestId();
      const body = '{}';
      const headersFor = () => ({
        ...signRequest(m.identity, 'POST', '/v1/heartbeat', RUN, body, Date.now()),
        'content-type': 'application/json',
        [HEADERS.requestId]: requestId,
      });
      const send = (headers: Record<string, string>) =>
        request(`${o.url}/v1/heartbeat`, { method: 'POST', headers, body }).then(async (r) => ({
          status: r.statusCode,
          body: (await r.body.json()) as Reply,
        }));
      const original = await send(headersFor());
      const retry = headersFor(); // same request id, a fresh nonce
      const answered = await send(retry);
      expect(answered).toEqual(original);
      const replayed = await send(retry);
      expect(replayed.status).toBe(409);
      expect(replayed.body.error.code).toBe('E_REPLAY');
    } finally {
      await m.close();
      await o.close();
    }
  });
});

describe('defect 6e: a body in another charset', () => {
  it('is refused with 415, not read as UTF-8', async () => {
    const o = await startSwarmServer();
    const [m] = await miners(o, 1);
    try {
      const body = '{}';
      const r = await request(`${o.url}/v1/heartbeat`, {
        method: 'POST',
        headers: {
          ...signRequest(m.identity, 'POST', '/v1/heartbeat', RUN, body, Date.now()),
          'content-type': 'application/json; charset=utf-16',
          [HEADERS.requestId]: newRequestId(),
        },
        body,
      });
      expect(r.statusCode).toBe(415);
      expect(((await r.body.json()) as { error: { code: string } }).error.code).toBe(
        'E_BAD_CONTENT_TYPE',
      );
    } finally {
      await m.close();
      await o.close();
    }
  });
});

describe('defect 6d: registration from one address', () => {
  it('is capped per address over time; a known key registering again is not counted', async () => {
    const o = await startTestOrchestrator({
      rateLimits: { newKeysPerMinute: 6, newKeysBurst: 5, exemptLoopback: false },
    });
    const clients: SimParticipant[] = [];
    try {
      const codes: Array<number> = [];
      for (let i = 0; i < 8; i++) {
        const p = new SimParticipant(o.url);
        clients.push(p);
        const body = JSON.stringify({ version: 'test' });
        const r = await p.client.send('POST', '/v1/register', body, newRequestId());
        codes.push(r.status);
      }
      expect(codes).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
      expect(o.repo.participants()).toHaveLength(5);
      // A registered key is not new: it may register again.
      await clients[0].register('again');
      expect(o.repo.participants()).toHaveLength(5);
    } finally {
      for (const c of clients) await c.close();
      await o.close();
    }
  });
});

describe('defect 9: a rate-limited client', () => {
  it('is told how long to wait (Retry-After), waits, and never gives up', async () => {
    const o = await startTestOrchestrator({
      rateLimits: { keyPerSecond: 5, keyBurst: 2, exemptLoopback: true },
    });
    const waits: number[] = [];
    const p = new SimParticipant(o.url);
    try {
      await p.register();
      const raw = async () => {
        const body = '{}';
        return p.client.send('POST', '/v1/heartbeat', body, newRequestId());
      };
      // Drain the bucket with raw calls: the refusal says how long to wait.
      let limited = await raw();
      while (limited.status !== 429) limited = await raw();
      const err = (limited.body as { error: { code: string; retry_after_ms: number } }).error;
      expect(err.code).toBe('E_RATE_LIMITED');
      expect(err.retry_after_ms).toBeGreaterThan(0);
      expect(err.retry_after_ms).toBeLessThanOrEqual(200);
      // The client's own calls wait as told and all succeed.
      const client = new SignedClient({
        baseUrl: o.url,
        identity: p.identity,
        run: 'test-run',
        retries: 0,
        onRateLimited: (ms) => waits.push(ms),
      });
      for (let i = 0; i < 6; i++) await client.post('/v1/heartbeat', {});
      await client.close();
      expect(waits.length).toBeGreaterThan(0);
      expect(Math.max(...waits)).toBeLessThan(1000);
    } finally {
      await p.close();
      await o.close();
    }
  });

  it('sends Retry-After with a 429', async () => {
    const o = await startTestOrchestrator({
      rateLimits: { ipPerSecond: 1, ipBurst: 1, exemptLoopback: false },
    });
    try {
      await request(`${o.url}/healthz`);
      const r = await request(`${o.url}/healthz`);
      expect(r.statusCode).toBe(429);
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      await r.body.text();
    } finally {
      await o.close();
    }
  });
});

describe('defect 2: a refusal is checked before anyone is blamed', () => {
  it('a false refusal is the refuser’s fault and the item goes to another miner; a true one blames the producer', async () => {
    const o = await startSwarmServer();
    const [producer, refuser] = await miners(o, 2);
    const honest = new SimMiner(o.url, RUN, undefined, () => o.clock.now);
    await honest.register('honest');
    honest.client.runHash = o.configHash;
    await honest.join(1);
    const faults = () =>
      o.repo.db.prepare('SELECT miner, kind FROM faults ORDER BY id').all() as Array<{
        miner: string;
        kind: string;
      }>;
    try {
      // A good output refused as bad.
      await producer.complete((await producer.work(1)).items[0]);
      const it = (await refuser.work(1)).items[0];
      const r = await refuser.client.post<{ dropped: number; upheld: boolean }>('/v1/refuse', {
        lease: it.lease,
        code: 'E_BAD_TENSOR',
        message: 'it has NaN (it does not)',
      });
      expect(r).toEqual({ dropped: 0, upheld: false });
      expect(faults()).toEqual([{ miner: refuser.id, kind: 'false_refusal' }]);
      expect(o.coord.state.ledger.counts(0).some((l) => l.state === 'dropped:bad_input')).toBe(
        false,
      );
      // The item was not dropped: the next miner of the stage takes it and does it.
      const again = (await honest.work(1)).items[0];
      expect(again.item).toBe(it.item);
      await honest.complete(again);

      // A bad output (NaN inside the exact size) refused: upheld, and its producer is blamed.
      producer.outputFor = () =>
        encodeActivation(new Float32Array(64 * 16).fill(Number.NaN), [1, 64, 16], 'bf16');
      await producer.complete((await producer.work(1)).items[0]);
      const bad = (await honest.work(1)).items[0];
      const upheld = await honest.client.post<{ dropped: number; upheld: boolean }>('/v1/refuse', {
        lease: bad.lease,
        code: 'E_BAD_TENSOR',
        message: 'NaN',
      });
      expect(upheld.upheld).toBe(true);
      expect(upheld.dropped).toBeGreaterThan(0);
      expect(faults()).toEqual([
        { miner: refuser.id, kind: 'false_refusal' },
        { miner: producer.id, kind: 'bad_output' },
      ]);
    } finally {
      for (const m of [producer, refuser, honest]) await m.close();
      await o.close();
    }
  });
});
