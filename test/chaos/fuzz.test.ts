/**
 * Chaos, hostile input: over 10,000 malformed, oversized, unsigned, badly signed, replayed,
 * schema-breaking, wrong-role and out-of-state requests at every route of a real orchestrator
 * (HTTP, SQLite, the local store) holding a swarm mid-epoch, and malformed tensors, safetensors
 * headers, partitions and manifests to every decoder a miner, validator or merger reads with.
 * No crash, no 5xx, every refusal coded, and the database and the store unchanged.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { newRequestId } from '../../src/protocol/client.js';
import { newIdentity } from '../../src/protocol/keys.js';
import { signRequest, HEADERS } from '../../src/protocol/signing.js';
import { keys } from '../../src/store/keys.js';
import { SimMiner, SimParticipant } from '../support/sim-miner.js';
import { startSwarmServer, type SwarmServer } from '../support/swarm-server.js';
import { fuzz, KINDS, type FuzzTally, type FuzzTarget } from './support/fuzzer.js';
import { fuzzDecoders } from './support/tensor-fuzz.js';

const RUN = 'swarm-test';
let o: SwarmServer;
let tally: FuzzTally;
let before: string;
let miner: SimMiner;

function snapshot(): string {
  const files = (dir: string): string[] => {
    try {
      return readdirSync(dir, { recursive: true }) as string[];
    } catch {
      return [];
    }
  };
  return JSON.stringify({ db: o.repo.dump(), store: files(join(o.dir, 'store')).sort() });
}

beforeAll(async () => {
  const validator = newIdentity();
  o = await startSwarmServer({ validators: [validator.id], merge: 'real' });
  miner = new SimMiner(o.url, RUN, undefined, () => o.clock.now);
  await miner.register('fuzz-miner');
  miner.client.runHash = o.configHash;
  await miner.join(0);
  await miner.work(1); // it holds a lease: the swarm is mid-epoch
  const v = new SimParticipant(o.url, RUN, validator, () => o.clock.now);
  await v.register('fuzz-validator');
  // Valid signed calls, sent once here: their replays must be refused.
  const sent: FuzzTarget['sent'] = [];
  for (const [id, method, path, body] of [
    [miner.identity, 'POST', '/v1/heartbeat', '{}'],
    [validator, 'POST', '/v1/heartbeat', '{}'],
    [validator, 'GET', '/v1/status', undefined],
    [miner.identity, 'GET', '/v1/run', undefined],
  ] as const) {
    const headers = {
      ...signRequest(id, method, path, RUN, body, o.clock.now),
      [HEADERS.requestId]: newRequestId(),
      ...(body ? { 'content-type': 'application/json' } : {}),
    };
    const res = await request(`${o.url}${path}`, { method, headers, body });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    sent.push({ method, path, headers, body });
  }
  const probe = keys.probe({ run: RUN, owner: miner.id });
  const plan = await o.store.presignPut({
    key: probe,
    size: 100,
    sha256: 'a'.repeat(64),
    expiresAt: Date.now() + 600_000,
  });
  before = snapshot();
  tally = await fuzz(
    {
      url: o.url,
      run: RUN,
      keys: { miner: miner.identity, validator },
      sent,
      storeUrl: plan.parts[0].url,
    },
    10_000,
  );
  process.stderr.write(
    `fuzz: ${tally.requests} requests over ${tally.routes.length} of ${tally.listed.length} routes; statuses ${JSON.stringify(tally.byStatus)}; codes ${JSON.stringify(tally.codes)}\n`,
  );
}, 240_000);
afterAll(async () => {
  await miner.close();
  await o.close();
});

describe('a fuzzer against the orchestrator', () => {
  it('sent over 10,000 requests of every kind across every route', () => {
    expect(tally.requests).toBeGreaterThanOrEqual(10_000);
    for (const k of KINDS) expect(tally.byKind[k]).toBeGreaterThan(100);
    expect(tally.routes).toEqual(tally.listed);
    expect(tally.listed.length).toBeGreaterThanOrEqual(35);
  });

  it('got no 5xx and a coded refusal for everything it was refused', () => {
    expect(tally.failures).toEqual([]);
  });

  it('was refused every hostile call (only public reads of unsigned calls answer)', () => {
    const { unsigned, 'bad-path': badPath, ...rest } = tally.accepted;
    expect(rest).toEqual({});
    expect((unsigned ?? 0) + (badPath ?? 0)).toBeLessThan(tally.byKind.unsigned);
    for (const code of [
      'E_REPLAY',
      'E_BAD_SIGNATURE',
      'E_UNSIGNED',
      'E_FORBIDDEN',
      'E_BAD_REQUEST',
    ])
      expect(tally.codes[code]).toBeGreaterThan(0);
  });

  it('changed nothing in the database or the store, and the orchestrator still serves', async () => {
    expect(snapshot()).toBe(before);
    await expect(miner.heartbeat()).resolves.toHaveProperty('server_time');
  });
});

describe('malformed tensors to every decoder a participant reads the store with', () => {
  it('each refuses with a code or returns a well-formed result: no other error', () => {
    const t = fuzzDecoders(8_000);
    process.stderr.write(`decoders: ${t.inputs} inputs; codes ${JSON.stringify(t.codes)}\n`);
    expect(t.failures).toEqual([]);
    for (const name of Object.keys(t.returned).concat(Object.keys(t.refused)))
      expect(t.refused[name]).toBeGreaterThan(100);
  });
});
