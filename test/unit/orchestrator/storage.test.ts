import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ApiError } from '../../../src/protocol/client.js';
import { storageRoutes } from '../../../src/orchestrator/routes/storage.js';
import {
  LocalStore,
  describeUpload,
  download,
  localStoreRoutes,
  upload,
  type UploadPlan,
} from '../../../src/store/index.js';
import { startTestOrchestrator, type TestOrchestrator } from '../../support/orchestrator.js';
import { SimParticipant } from '../../support/sim-miner.js';
import { keys } from '../../../src/store/keys.js';

describe('scoped storage URLs through the orchestrator', () => {
  let o: TestOrchestrator;
  let a: SimParticipant;
  let b: SimParticipant;
  let base = '';

  beforeAll(async () => {
    const dir = (await import('node:fs')).mkdtempSync(
      join((await import('node:os')).tmpdir(), 'iota-st-'),
    );
    const store = await LocalStore.open({ root: join(dir, 'store'), baseUrl: () => base });
    o = await startTestOrchestrator({
      dir,
      plugins: [localStoreRoutes(store), storageRoutes(store)],
    });
    base = o.url;
    a = new SimParticipant(o.url);
    b = new SimParticipant(o.url);
    await a.register();
    await b.register();
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await o.close();
  });

  const gradKey = (id: string) => keys.gradient({ run: 'test-run', epoch: 0, stage: 1, owner: id });

  it('issues an upload URL for a declared object under the caller’s prefix, and a verified download', async () => {
    const bytes = randomBytes(100_000);
    const d = describeUpload(bytes);
    const plan = await a.client.post<UploadPlan>('/v1/storage/upload', {
      kind: 'gradient',
      key: gradKey(a.id),
      size: d.size,
      sha256: d.sha256,
      chunk_hashes: d.chunkHashes,
    });
    expect(plan.parts).toHaveLength(1);
    await upload(plan, bytes);
    const info = await b.client.get<{ url: string; sha256: string; size: number }>(
      `/v1/storage/download?key=${encodeURIComponent(gradKey(a.id))}`,
    );
    expect(info).toMatchObject({ size: bytes.length, sha256: d.sha256 });
    expect(Buffer.from(await download(info.url, { sha256: info.sha256, size: info.size }))).toEqual(
      bytes,
    );
  });

  it('runs a multipart upload whose plan the orchestrator keeps and completes', async () => {
    const bytes = randomBytes(11 * 1024 * 1024);
    const d = describeUpload(bytes, { partSize: 5 * 1024 * 1024 });
    const key = keys.gradient({ run: 'test-run', epoch: 1, stage: 0, owner: a.id });
    const plan = await a.client.post<UploadPlan>('/v1/storage/upload', {
      kind: 'gradient',
      key,
      size: d.size,
      sha256: d.sha256,
      chunk_hashes: d.chunkHashes,
      part_size: d.partSize,
      part_sha256s: d.partSha256s,
    });
    expect(plan.parts).toHaveLength(3);
    const { etags } = await upload(plan, bytes);
    await expect(
      b.client.post('/v1/storage/complete', { key, upload_id: plan.uploadId, etags }),
    ).rejects.toMatchObject({ code: 'E_NO_UPLOAD' });
    const done = await a.client.post<{ size: number; sha256: string }>('/v1/storage/complete', {
      key,
      upload_id: plan.uploadId,
      etags,
    });
    expect(done).toMatchObject({ size: bytes.length, sha256: d.sha256 });
    const info = await b.client.get<{ url: string; sha256: string; chunk_hashes: string[] }>(
      `/v1/storage/download?key=${encodeURIComponent(key)}`,
    );
    const tail = await download(info.url, {
      sha256: info.sha256,
      chunkHashes: info.chunk_hashes,
      range: { start: 9 * 1024 * 1024, end: 9 * 1024 * 1024 + 10 },
    });
    expect(Buffer.from(tail)).toEqual(bytes.subarray(9 * 1024 * 1024, 9 * 1024 * 1024 + 10));
  });

  it('refuses another miner’s prefix, an oversized declaration and a malformed key', async () => {
    const d = describeUpload(randomBytes(10));
    const refuse = async (body: object) => {
      try {
        await b.client.post('/v1/storage/upload', body);
      } catch (e) {
        return (e as ApiError).code;
      }
      return 'accepted';
    };
    expect(
      await refuse({ kind: 'gradient', key: gradKey(a.id), size: d.size, sha256: d.sha256 }),
    ).toBe('E_NOT_YOUR_PREFIX');
    expect(
      await refuse({
        kind: 'activation',
        key: keys.activation({
          run: 'test-run',
          epoch: 0,
          sample: 1,
          stage: 0,
          direction: 'fwd',
          owner: b.id,
          lease: 'L1',
        }),
        size: 2 ** 40,
        sha256: d.sha256,
      }),
    ).toBe('E_TOO_LARGE');
    expect(
      await refuse({ kind: 'gradient', key: 'runs/test-run/../x', size: d.size, sha256: d.sha256 }),
    ).toBe('E_BAD_KEY');
    expect(
      await refuse({
        kind: 'gradient',
        key: keys.gradient({ run: 'other-run', epoch: 0, stage: 1, owner: b.id }),
        size: d.size,
        sha256: d.sha256,
      }),
    ).toBe('E_NOT_YOUR_PREFIX');
  });

  it('refuses downloads outside the run and of missing objects', async () => {
    await expect(a.client.get('/v1/storage/download?key=runs/other/x')).rejects.toMatchObject({
      code: 'E_NOT_YOUR_PREFIX',
    });
    await expect(
      a.client.get(`/v1/storage/download?key=${encodeURIComponent(gradKey(b.id))}`),
    ).rejects.toMatchObject({ code: 'E_NOT_FOUND', status: 404 });
  });
});
