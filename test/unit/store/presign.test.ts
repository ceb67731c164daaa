/**
 * What the S3 presigner signs. s3rver does not check SigV4 signatures, so this is where the
 * guarantee "S3 refuses any other length, hash or metadata" is proven: the headers are in
 * X-Amz-SignedHeaders, stay headers (not query parameters) and change the signature.
 */
import { sha256Hex } from '../../../src/tensor-io/hash.js';
import { S3Store, type UploadPlan } from '../../../src/store/index.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const T = Date.UTC(2030, 0, 2, 3, 4, 5);
const key = 'runs/r1/e0/act/7/1/fwd/minerA-lease1.safetensors';
const sha256 = sha256Hex('activation bytes');

function store(o: Partial<ConstructorParameters<typeof S3Store>[0]> = {}): S3Store {
  return new S3Store({
    bucket: 'iota-bucket',
    region: 'us-east-1',
    endpoint: 'https://minio.example.test:9000',
    forcePathStyle: true,
    prefix: 'deploy',
    credentials: {
      accessKeyId: 'AKIDEXAMPLE',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    },
    clock: () => T,
    ...o,
  });
}

const signedHeaders = (url: string) =>
  new URL(url).searchParams.get('X-Amz-SignedHeaders')!.split(';');
const signature = (url: string) => new URL(url).searchParams.get('X-Amz-Signature');
const queryNames = (url: string) =>
  [...new URL(url).searchParams.keys()].map((k) => k.toLowerCase());

describe('S3 presigned URLs', () => {
  let plan: UploadPlan;
  beforeAll(async () => {
    plan = await store().presignPut({
      key,
      size: 1234,
      sha256,
      chunkHashes: [sha256],
      expiresAt: T + 600_000,
    });
  });

  it('sign content-length, the sha256 checksum and the hash metadata of a PUT', () => {
    const url = plan.parts[0].url;
    expect(signedHeaders(url).sort()).toEqual([
      'content-length',
      'host',
      'x-amz-checksum-sha256',
      'x-amz-meta-iota-chunks',
      'x-amz-meta-iota-sha256',
    ]);
    expect(plan.parts[0].headers).toEqual({
      'x-amz-checksum-sha256': Buffer.from(sha256, 'hex').toString('base64'),
      'x-amz-meta-iota-sha256': sha256,
      'x-amz-meta-iota-chunks': sha256,
    });
  });

  it('keep those as headers the client must send, and add no checksum of their own', () => {
    const names = queryNames(plan.parts[0].url);
    for (const h of [
      'x-amz-checksum-sha256',
      'x-amz-meta-iota-sha256',
      'x-amz-meta-iota-chunks',
      'x-amz-checksum-crc32',
      'x-amz-sdk-checksum-algorithm',
      'content-length',
    ]) {
      expect(names).not.toContain(h);
    }
  });

  it('address one key of one bucket, with the expiry asked for, for PUT only', () => {
    const url = new URL(plan.parts[0].url);
    expect(url.origin).toBe('https://minio.example.test:9000');
    expect(url.pathname).toBe(`/iota-bucket/deploy/${key}`);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('600');
    expect(url.searchParams.get('X-Amz-Date')).toBe('20300102T030405Z');
    expect(url.searchParams.get('x-id')).toBe('PutObject');
  });

  it('change their signature with the length, the hash or the key', async () => {
    const base = { key, size: 1234, sha256, expiresAt: T + 600_000 };
    const s = store();
    const a = (await s.presignPut(base)).parts[0].url;
    expect((await s.presignPut(base)).parts[0].url).toBe(a);
    expect(signature((await s.presignPut({ ...base, size: 1235 })).parts[0].url)).not.toBe(
      signature(a),
    );
    expect(
      signature((await s.presignPut({ ...base, sha256: sha256Hex('other') })).parts[0].url),
    ).not.toBe(signature(a));
    expect(
      signature(
        (await s.presignPut({ ...base, key: key.replace('minerA', 'minerB') })).parts[0].url,
      ),
    ).not.toBe(signature(a));
  });

  it('sign each multipart part with its own length and sha256', async () => {
    const partSha = sha256Hex('part 2');
    const part = await store().presignPart(
      key,
      'upload-123',
      { number: 2, offset: 5 << 20, size: 5 << 20, sha256: partSha },
      T + 600_000,
    );
    const url = new URL(part.url);
    expect(signedHeaders(part.url).sort()).toEqual([
      'content-length',
      'host',
      'x-amz-checksum-sha256',
    ]);
    expect([
      url.searchParams.get('partNumber'),
      url.searchParams.get('uploadId'),
      url.searchParams.get('x-id'),
    ]).toEqual(['2', 'upload-123', 'UploadPart']);
    expect(part.headers).toEqual({
      'x-amz-checksum-sha256': Buffer.from(partSha, 'hex').toString('base64'),
    });
    const longer = await store().presignPart(
      key,
      'upload-123',
      { number: 2, offset: 5 << 20, size: (5 << 20) + 1, sha256: partSha },
      T + 600_000,
    );
    expect(signature(longer.url)).not.toBe(signature(part.url));
  });

  it('sign only the host of a GET, so a Range header may be added', async () => {
    const url = await store().presignGet({ key, expiresAt: T + 60_000 });
    expect(signedHeaders(url)).toEqual(['host']);
    expect(new URL(url).searchParams.get('X-Amz-Expires')).toBe('60');
  });

  it('use virtual-hosted AWS addresses without an endpoint, and R2 endpoints as given', async () => {
    const aws = await store({
      endpoint: undefined,
      forcePathStyle: false,
      region: 'eu-west-1',
    }).presignGet({ key, expiresAt: T + 60_000 });
    expect(new URL(aws).host).toBe('iota-bucket.s3.eu-west-1.amazonaws.com');
    expect(new URL(aws).pathname).toBe(`/deploy/${key}`);
    const r2 = await store({
      endpoint: 'https://acct.r2.cloudflarestorage.com',
      forcePathStyle: true,
      region: 'auto',
    }).presignGet({ key, expiresAt: T + 60_000 });
    expect(new URL(r2).host).toBe('acct.r2.cloudflarestorage.com');
    expect(new URL(r2).searchParams.get('X-Amz-Credential')).toContain('/auto/s3/aws4_request');
  });

  it('are refused past 7 days or in the past', async () => {
    await expect(
      store().presignGet({ key, expiresAt: T + 8 * 24 * 3600_000 }),
    ).rejects.toMatchObject({ code: 'E_BAD_EXPIRY' });
    await expect(store().presignGet({ key, expiresAt: T })).rejects.toMatchObject({
      code: 'E_BAD_EXPIRY',
    });
  });
});
