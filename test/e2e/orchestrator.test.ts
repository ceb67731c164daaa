import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { newIdentity, readKeyFile } from '../../src/protocol/keys.js';
import { newRequestId } from '../../src/protocol/client.js';
import { HEADERS, signRequest } from '../../src/protocol/signing.js';
import { IotaProcess, killAll, runIota } from '../support/cli.js';

afterAll(killAll);
import { SimParticipant } from '../support/sim-miner.js';
import { describeUpload, download, upload, type UploadPlan } from '../../src/store/index.js';
import { keys } from '../../src/store/keys.js';

describe('iota keys', () => {
  it('creates a 0600 key file, shows its id, and never overwrites one', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'iota-keys-')), 'miner.key');
    const made = await runIota(['keys', 'new', '--out', file]);
    expect(made.code).toBe(0);
    const id = made.stdout.trim();
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readKeyFile(file).id).toBe(id);
    expect((await runIota(['keys', 'show', file])).stdout.trim()).toBe(id);
    const again = await runIota(['keys', 'new', '--out', file]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/E_KEY_EXISTS/);
  });
});

describe('iota orchestrator serve', () => {
  it('keeps every acknowledged write and still refuses replays after a SIGKILL', async () => {
    const state = mkdtempSync(join(tmpdir(), 'iota-kill-'));
    const admin = newIdentity();
    const args = [
      'orchestrator',
      'serve',
      '--port',
      '0',
      '--state-dir',
      state,
      '--run-id',
      'kill-test',
      '--json',
      '--set',
      `admins=[${admin.id}]`,
    ];
    const first = new IotaProcess(args);
    const { url } = (await first.waitFor((e) => e.event === 'listening')) as { url: string };

    // A captured, acknowledged request to replay after the restart.
    const captured = newIdentity();
    const body = JSON.stringify({ version: 'test' });
    const headers = {
      ...signRequest(captured, 'POST', '/v1/register', 'kill-test', body, Date.now()),
      'content-type': 'application/json',
      [HEADERS.requestId]: newRequestId(),
    };
    expect(
      (await request(`${url}/v1/register`, { method: 'POST', headers, body })).statusCode,
    ).toBe(200);

    // A burst of registrations; the process is killed once half are acknowledged.
    const miners = Array.from({ length: 60 }, () => new SimParticipant(url, 'kill-test'));
    const acked: string[] = [];
    let killed: Promise<unknown> | undefined;
    await Promise.allSettled(
      miners.map((m) =>
        m.register().then(() => {
          acked.push(m.id);
          if (acked.length === 30) killed = first.kill('SIGKILL');
        }),
      ),
    );
    await killed;
    expect(acked.length).toBeGreaterThanOrEqual(30);
    await Promise.all(miners.map((m) => m.close()));

    const second = new IotaProcess(args);
    const { url: url2 } = (await second.waitFor((e) => e.event === 'listening')) as { url: string };
    const a = new SimParticipant(url2, 'kill-test', admin);
    await a.register();
    const list = await a.client.get<{ participants: Array<{ id: string }> }>('/v1/participants');
    const present = new Set(list.participants.map((p) => p.id));
    expect(acked.filter((id) => !present.has(id))).toEqual([]);
    expect(present.has(captured.id)).toBe(true);

    const replay = await request(`${url2}/v1/register`, { method: 'POST', headers, body });
    expect(replay.statusCode).toBe(409);
    expect(((await replay.body.json()) as { error: { code: string } }).error.code).toBe('E_REPLAY');
    // The embedded object store is served by the same process: a scoped upload and a verified download.
    const bytes = Buffer.from('gradient bytes '.repeat(1000));
    const d = describeUpload(bytes);
    const key = keys.gradient({ run: 'kill-test', epoch: 0, stage: 0, owner: admin.id });
    const plan = await a.client.post<UploadPlan>('/v1/storage/upload', {
      kind: 'gradient',
      key,
      size: d.size,
      sha256: d.sha256,
      chunk_hashes: d.chunkHashes,
    });
    expect(plan.parts[0].url.startsWith(url2)).toBe(true);
    await upload(plan, bytes);
    const info = await a.client.get<{ url: string; sha256: string }>(
      `/v1/storage/download?key=${encodeURIComponent(key)}`,
    );
    expect(Buffer.from(await download(info.url, { sha256: info.sha256 }))).toEqual(bytes);
    await a.close();
    expect(await second.kill('SIGTERM')).toBe(0);
  });
});
