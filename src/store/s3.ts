/**
 * The S3 store (AWS S3, Cloudflare R2, MinIO; s3rver in tests) through @aws-sdk/client-s3 and
 * its presigner. Credentials come from the SDK's usual chain (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, profiles) unless given; only the orchestrator has them.
 *
 * What a presigned upload URL binds (SigV4 signs the header, so S3 refuses a request without the
 * exact value): `content-length` (via `signableHeaders`), `x-amz-checksum-sha256` (S3 verifies
 * the body against it) and the metadata headers below (via `unhoistableHeaders`, so they stay
 * headers the client must send rather than query parameters). The client gets them in
 * `PartUpload.headers`.
 *
 * Metadata: `x-amz-meta-iota-sha256` (hex sha256 of the object) and `x-amz-meta-iota-chunks`:
 * the chunk hashes concatenated as hex when they fit (single PUTs: at most 16 chunks, 1 KiB of
 * S3's 2 KiB metadata), or the word `sidecar` when they are in `<prefix>.iota/chunks/<key>.json`
 * (multipart uploads and large server-side puts). The sidecar is written by the orchestrator
 * (on `completeMultipart` or `put`), so a large object's hash list costs one small object and
 * never an oversized header; no valid key starts with `.`, so sidecars never collide with or
 * show up among keys.
 *
 * Limits of what S3 verifies: a single PUT's sha256 (checksum header), each part's sha256 in a
 * multipart upload, never the whole multipart object's sha256 nor declared chunk hashes.
 * Downloads verify both (`transfer.ts`), so a lie costs the liar, never a consumer.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { IotaError } from '../errors.js';
import { s3Error } from './s3-errors.js';
import { CHUNK_BYTES, chunkHashes as hashChunks, sha256Hex } from '../tensor-io/hash.js';
import {
  checkExpiry,
  checkMultipartRequest,
  checkPutRequest,
  checkRange,
  singlePutPlan,
  isSha256Hex,
  partLayout,
} from './declaration.js';
import { validateKey, validatePrefix } from './keys.js';
import {
  MAX_SINGLE_PUT_BYTES,
  type ByteRange,
  type GetRequest,
  type ListedObject,
  type MultipartRequest,
  type ObjectInfo,
  type ObjectStore,
  type PartUpload,
  type PutRequest,
  type UploadPlan,
} from './types.js';

export interface S3StoreOptions {
  bucket: string;
  /** `auto` for R2; default us-east-1 */
  region?: string;
  /** R2, MinIO or another S3-compatible endpoint */
  endpoint?: string;
  /** `bucket` in the path rather than the host name (MinIO, s3rver) */
  forcePathStyle?: boolean;
  /** every key lives under this prefix in the bucket; a trailing `/` is added */
  prefix?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  clock?: () => number;
  /** keys per listing request (S3 returns at most 1000) */
  listPageSize?: number;
}

const META_SHA = 'iota-sha256';
const META_CHUNKS = 'iota-chunks';
const SIDECAR = 'sidecar';
/** S3's limit for one PutObject. */
const MAX_PUT_OBJECT_BYTES = 5 * 1024 ** 3;

const b64 = (hex: string): string => Buffer.from(hex, 'hex').toString('base64');

export class S3Store implements ObjectStore {
  readonly kind = 's3' as const;
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  private readonly clock: () => number;
  private readonly pageSize: number;

  constructor(o: S3StoreOptions) {
    this.bucket = o.bucket;
    this.prefix = o.prefix ? `${o.prefix.replace(/\/+$/, '')}/` : '';
    if (this.prefix) validateKey(this.prefix.slice(0, -1));
    this.clock = o.clock ?? Date.now;
    this.pageSize = o.listPageSize ?? 1000;
    this.client = new S3Client({
      region: o.region ?? 'us-east-1',
      endpoint: o.endpoint,
      forcePathStyle: o.forcePathStyle ?? false,
      credentials: o.credentials,
      // Otherwise the SDK adds a CRC32 of an empty body to every presigned PUT (and S3 refuses
      // the upload); checksums here are the sha256s we set ourselves.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  private full(key: string): string {
    return this.prefix + validateKey(key);
  }

  private sidecar(key: string): string {
    return `${this.prefix}.iota/chunks/${validateKey(key)}.json`;
  }

  private async send<T>(op: string, key: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      throw s3Error(e, op, key);
    }
  }

  async put(key: string, bytes: Uint8Array): Promise<ObjectInfo> {
    validateKey(key);
    if (bytes.length > MAX_PUT_OBJECT_BYTES)
      throw new IotaError('E_TOO_LARGE', `${bytes.length} bytes is over S3's single PUT limit`);
    const sha256 = sha256Hex(bytes);
    const chunkHashes = hashChunks(bytes);
    const inline = bytes.length <= MAX_SINGLE_PUT_BYTES;
    if (!inline) await this.putSidecar(key, chunkHashes);
    await this.send('PutObject', key, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.full(key),
          Body: bytes,
          ContentLength: bytes.length,
          ChecksumSHA256: b64(sha256),
          Metadata: { [META_SHA]: sha256, [META_CHUNKS]: inline ? chunkHashes.join('') : SIDECAR },
        }),
      ),
    );
    return { key, size: bytes.length, sha256, chunkHashes };
  }

  private async putSidecar(key: string, chunkHashes: readonly string[]): Promise<void> {
    const body = Buffer.from(JSON.stringify({ chunkBytes: CHUNK_BYTES, chunkHashes }));
    await this.send('PutObject', key, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.sidecar(key),
          Body: body,
          ContentLength: body.length,
          ContentType: 'application/json',
        }),
      ),
    );
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    if (range && range.start === range.end) {
      // S3 cannot express an empty range; check the bounds against the object instead.
      const info = await this.head(key);
      if (!info) throw new IotaError('E_NOT_FOUND', `no object ${key}`);
      checkRange(range.start, range.end, info.size, key);
      return new Uint8Array(0);
    }
    if (range) checkRange(range.start, range.end, Number.MAX_SAFE_INTEGER, key);
    const out = await this.send('GetObject', key, async () => {
      const res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.full(key),
          ...(range ? { Range: `bytes=${range.start}-${range.end - 1}` } : {}),
        }),
      );
      return res.Body ? await res.Body.transformToByteArray() : new Uint8Array(0);
    });
    // S3 serves a range that runs past the end as far as the end; the local store refuses it.
    if (range && out.length !== range.end - range.start) {
      throw new IotaError(
        'E_BAD_RANGE',
        `[${range.start}, ${range.end}) runs past the end of ${key}`,
      );
    }
    return out;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    let res;
    try {
      res = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.full(key) }),
      );
    } catch (e) {
      const err = s3Error(e, 'HeadObject', key);
      if (err.code === 'E_NOT_FOUND') return undefined;
      throw err;
    }
    const size = res.ContentLength ?? 0;
    const info: ObjectInfo = { key, size };
    const sha256 = res.Metadata?.[META_SHA];
    if (isSha256Hex(sha256)) info.sha256 = sha256;
    const chunks = await this.readChunkHashes(key, res.Metadata?.[META_CHUNKS]);
    if (chunks && chunks.length === Math.ceil(size / CHUNK_BYTES) && chunks.every(isSha256Hex))
      info.chunkHashes = chunks;
    return info;
  }

  private async readChunkHashes(
    key: string,
    meta: string | undefined,
  ): Promise<string[] | undefined> {
    if (meta === undefined) return undefined;
    if (meta !== SIDECAR) return meta.match(/.{64}/g) ?? [];
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.sidecar(key) }),
      );
      const doc = JSON.parse(await res.Body!.transformToString()) as {
        chunkBytes?: number;
        chunkHashes?: string[];
      };
      return doc.chunkBytes === CHUNK_BYTES ? doc.chunkHashes : undefined;
    } catch (e) {
      const err = s3Error(e, 'GetObject', key);
      if (err.code === 'E_NOT_FOUND') return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.send('DeleteObject', key, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.full(key) })),
    );
    await this.send('DeleteObject', key, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.sidecar(key) })),
    );
  }

  async list(prefix: string): Promise<ListedObject[]> {
    validatePrefix(prefix);
    const found: ListedObject[] = [];
    let token: string | undefined;
    do {
      const page: ListObjectsV2CommandOutput = await this.send('ListObjectsV2', prefix, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            MaxKeys: this.pageSize,
            ContinuationToken: token,
          }),
        ),
      );
      for (const o of page.Contents ?? []) {
        const key = o.Key?.slice(this.prefix.length);
        if (key && !key.startsWith('.')) found.push({ key, size: o.Size ?? 0 });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async presignGet(req: GetRequest): Promise<string> {
    validateKey(req.key);
    const now = this.clock();
    const expiresIn = checkExpiry(req.expiresAt, now);
    return getSignedUrl(
      this.client,
      new GetObjectCommand({ Bucket: this.bucket, Key: this.full(req.key) }),
      { expiresIn, signingDate: new Date(now) },
    );
  }

  async presignPut(req: PutRequest): Promise<UploadPlan> {
    const now = this.clock();
    const expiresIn = checkPutRequest(req, now);
    const headers: Record<string, string> = {
      'x-amz-checksum-sha256': b64(req.sha256),
      [`x-amz-meta-${META_SHA}`]: req.sha256,
    };
    const metadata: Record<string, string> = { [META_SHA]: req.sha256 };
    if (req.chunkHashes) {
      headers[`x-amz-meta-${META_CHUNKS}`] = metadata[META_CHUNKS] = req.chunkHashes.join('');
    }
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key: this.full(req.key),
      ContentLength: req.size,
      ChecksumSHA256: b64(req.sha256),
      Metadata: metadata,
    });
    const url = await getSignedUrl(this.client, command, {
      expiresIn,
      signingDate: new Date(now),
      signableHeaders: new Set(['content-length']),
      unhoistableHeaders: new Set(Object.keys(headers)),
    });
    return singlePutPlan(req, url, headers);
  }

  /** One part's URL, signing its exact length and sha256. */
  async presignPart(
    key: string,
    uploadId: string,
    part: { number: number; offset: number; size: number; sha256: string },
    expiresAt: number,
  ): Promise<PartUpload> {
    const now = this.clock();
    const expiresIn = checkExpiry(expiresAt, now);
    const headers = { 'x-amz-checksum-sha256': b64(part.sha256) };
    const command = new UploadPartCommand({
      Bucket: this.bucket,
      Key: this.full(key),
      UploadId: uploadId,
      PartNumber: part.number,
      ContentLength: part.size,
      ChecksumSHA256: headers['x-amz-checksum-sha256'],
    });
    const url = await getSignedUrl(this.client, command, {
      expiresIn,
      signingDate: new Date(now),
      signableHeaders: new Set(['content-length']),
      unhoistableHeaders: new Set(Object.keys(headers)),
    });
    return { ...part, url, headers };
  }

  async createMultipart(req: MultipartRequest): Promise<UploadPlan> {
    checkMultipartRequest(req, this.clock());
    const metadata: Record<string, string> = { [META_SHA]: req.sha256 };
    if (req.chunkHashes) metadata[META_CHUNKS] = SIDECAR;
    const created = await this.send('CreateMultipartUpload', req.key, () =>
      this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.full(req.key),
          Metadata: metadata,
          ChecksumAlgorithm: 'SHA256',
        }),
      ),
    );
    const uploadId = created.UploadId;
    if (!uploadId) throw new IotaError('E_STORE_FAILED', `S3 gave no upload id for ${req.key}`);
    const parts = await Promise.all(
      partLayout(req.size, req.partSize).map((p) =>
        this.presignPart(
          req.key,
          uploadId,
          { ...p, sha256: req.partSha256s[p.number - 1] },
          req.expiresAt,
        ),
      ),
    );
    return {
      key: req.key,
      size: req.size,
      sha256: req.sha256,
      expiresAt: req.expiresAt,
      uploadId,
      ...(req.chunkHashes ? { chunkHashes: [...req.chunkHashes] } : {}),
      parts,
    };
  }

  /**
   * Completes with the parts' ETags (as the client received them). `plan` must come from the
   * orchestrator's own records of `createMultipart`, not from the client.
   */
  async completeMultipart(plan: UploadPlan, etags: readonly string[]): Promise<ObjectInfo> {
    if (!plan.uploadId) throw new IotaError('E_NO_UPLOAD', `${plan.key} is not a multipart upload`);
    if (etags.length !== plan.parts.length)
      throw new IotaError(
        'E_INCOMPLETE_UPLOAD',
        `${plan.parts.length} parts, ${etags.length} ETags given`,
      );
    if (plan.chunkHashes) await this.putSidecar(plan.key, plan.chunkHashes);
    await this.send('CompleteMultipartUpload', plan.key, () =>
      this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.full(plan.key),
          UploadId: plan.uploadId,
          MultipartUpload: {
            Parts: plan.parts.map((p, i) => ({
              PartNumber: p.number,
              ETag: etags[i],
              ChecksumSHA256: b64(p.sha256),
            })),
          },
        }),
      ),
    );
    const info = await this.head(plan.key);
    if (!info || info.size !== plan.size) {
      throw new IotaError(
        'E_INCOMPLETE_UPLOAD',
        `${plan.key} assembled to ${info?.size} bytes, ${plan.size} were planned`,
      );
    }
    return {
      key: plan.key,
      size: plan.size,
      sha256: plan.sha256,
      ...(plan.chunkHashes ? { chunkHashes: [...plan.chunkHashes] } : {}),
    };
  }

  async abortMultipart(plan: UploadPlan): Promise<void> {
    if (!plan.uploadId) return;
    await this.send('AbortMultipartUpload', plan.key, () =>
      this.client.send(
        new AbortMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.full(plan.key),
          UploadId: plan.uploadId,
        }),
      ),
    );
  }
}
