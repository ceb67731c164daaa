/**
 * The local file store: the embedded default, served by the orchestrator itself through
 * HMAC-signed URLs (`local-url.ts`, routes in `local-routes.ts`), so one machine needs nothing
 * else. Unlike S3 it sees every byte that arrives, so it verifies what S3 cannot: the whole
 * object's sha256 on every PUT and on multipart assembly, and it computes the chunk hashes
 * itself rather than trusting declared ones.
 *
 * Layout under `root`:
 *   objects/<key>          the bytes
 *   meta/<key>.json        { size, sha256, chunkBytes, chunkHashes }
 *   uploads/<id>/          a multipart upload: upload.json and one file per received part
 *   tmp/                   files being written (renamed into place when complete)
 *   secret                 32 random bytes, mode 0600, created once (unless `secretFile` says elsewhere)
 *
 * Writes are atomic: bytes go to a temp file, fsynced, then renamed over the key; the metadata is
 * renamed into place first, so a crash never leaves an object without its hashes. A key that is
 * a directory of other keys (`a` beside `a/b`) cannot exist here, unlike S3; section 7's keys
 * never need one.
 */
import { randomBytes } from 'node:crypto';
import {
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
  type FileHandle,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { IotaError } from '../errors.js';
import { CHUNK_BYTES } from '../tensor-io/hash.js';
import {
  checkExpiry,
  checkMultipartRequest,
  checkPutRequest,
  checkRange,
  singlePutPlan,
  partLayout,
} from './declaration.js';
import { validateKey, validatePrefix } from './keys.js';
import {
  fsyncDir,
  isErrno,
  loadOrCreateSecret,
  ObjectHasher,
  pruneEmptyDirs,
  receiveInto,
  writeAll,
} from './local-files.js';
import { signedUrl, verifyGrant, type Grant } from './local-url.js';
import {
  assembleParts,
  checkParts,
  readUpload,
  sweepUploads,
  uploadDir,
  writeUpload,
  type Upload,
} from './local-uploads.js';
import type {
  ByteRange,
  GetRequest,
  ListedObject,
  MultipartRequest,
  ObjectInfo,
  ObjectStore,
  PutRequest,
  UploadPlan,
} from './types.js';

export interface LocalStoreOptions {
  /** directory of objects, metadata and uploads (node config `storage.dir`) */
  root: string;
  /**
   * where `localStoreRoutes` is reachable by miners, e.g. the orchestrator's public URL; a function
   * when the port is known only after listen
   */
  baseUrl: string | (() => string);
  /** the HMAC secret's file; default `<root>/secret` */
  secretFile?: string;
  clock?: () => number;
}

interface Meta {
  size: number;
  sha256: string;
  chunkBytes: number;
  chunkHashes: string[];
}

export class LocalStore implements ObjectStore {
  readonly kind = 'local' as const;
  readonly clock: () => number;
  private readonly baseUrl: () => string;

  private constructor(
    readonly root: string,
    private readonly secret: Buffer,
    o: LocalStoreOptions,
  ) {
    this.clock = o.clock ?? Date.now;
    const base = o.baseUrl;
    this.baseUrl = typeof base === 'function' ? base : () => base;
  }

  static async open(o: LocalStoreOptions): Promise<LocalStore> {
    for (const d of ['objects', 'meta', 'uploads', 'tmp'])
      await mkdir(join(o.root, d), { recursive: true });
    const secret = await loadOrCreateSecret(o.secretFile ?? join(o.root, 'secret'));
    return new LocalStore(o.root, secret, o);
  }

  private objectPath(key: string): string {
    return join(this.root, 'objects', ...validateKey(key).split('/'));
  }

  private metaPath(key: string): string {
    return `${join(this.root, 'meta', ...validateKey(key).split('/'))}.json`;
  }

  private uploadDir(uploadId: string | undefined): string {
    return uploadDir(this.root, uploadId);
  }

  private tmpPath(): string {
    return join(this.root, 'tmp', `${randomBytes(12).toString('hex')}`);
  }

  /** Moves a complete, fsynced temp file into place under `key`, metadata first. */
  private async commit(tmp: string, key: string, meta: Meta): Promise<ObjectInfo> {
    const path = this.objectPath(key);
    const metaPath = this.metaPath(key);
    try {
      await mkdir(dirname(path), { recursive: true });
      await mkdir(dirname(metaPath), { recursive: true });
      const metaTmp = this.tmpPath();
      await writeFile(metaTmp, JSON.stringify(meta), { flush: true });
      await rename(metaTmp, metaPath);
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      if (isErrno(e, 'ENOTDIR', 'EISDIR', 'EEXIST'))
        throw new IotaError(
          'E_BAD_KEY',
          `${key} clashes with another object's path in the local store`,
        );
      throw e;
    }
    await fsyncDir(dirname(path));
    return { key, size: meta.size, sha256: meta.sha256, chunkHashes: meta.chunkHashes };
  }

  // ---- used by the routes ------------------------------------------------------------------

  /** Verifies a request against its signed URL (see `verifyGrant`). */
  authorize(method: string, key: string, query: Record<string, unknown>): Grant {
    validateKey(key);
    return verifyGrant(this.secret, method, key, query, this.clock());
  }

  /**
   * Stores the body of an authorized PUT: an object, or one part of a multipart upload. Nothing
   * is stored unless the body has exactly the signed length and sha256. Returns the ETag.
   */
  async receive(grant: Grant, body: AsyncIterable<Uint8Array>): Promise<string> {
    const length = grant.length!;
    const sha256 = grant.sha256!;
    if (grant.uploadId !== undefined) return this.receivePart(grant, body);
    const tmp = this.tmpPath();
    const got = await receiveInto(tmp, body, length);
    if (got.sha256 !== sha256) {
      await rm(tmp, { force: true });
      throw new IotaError(
        'E_HASH_MISMATCH',
        `the body's sha256 is ${got.sha256}, this URL is for ${sha256}`,
      );
    }
    await this.commit(tmp, grant.key, {
      size: length,
      sha256,
      chunkBytes: CHUNK_BYTES,
      chunkHashes: got.chunkHashes,
    });
    return sha256;
  }

  private async receivePart(grant: Grant, body: AsyncIterable<Uint8Array>): Promise<string> {
    const dir = this.uploadDir(grant.uploadId);
    const upload = await readUpload(dir);
    const layout = partLayout(upload.size, upload.partSize);
    const n = grant.part ?? 0;
    // All of this was signed by us; checked again so a bug elsewhere cannot write a stray part.
    if (
      upload.key !== grant.key ||
      n < 1 ||
      n > layout.length ||
      layout[n - 1].size !== grant.length ||
      upload.partSha256s[n - 1] !== grant.sha256
    ) {
      throw new IotaError('E_BAD_PART', `part ${n} does not belong to upload ${grant.uploadId}`);
    }
    const tmp = join(dir, `${n}.${randomBytes(6).toString('hex')}.tmp`);
    const got = await receiveInto(tmp, body, grant.length!);
    if (got.sha256 !== grant.sha256) {
      await rm(tmp, { force: true });
      throw new IotaError(
        'E_HASH_MISMATCH',
        `part ${n}'s sha256 is ${got.sha256}, this URL is for ${grant.sha256}`,
      );
    }
    await rename(tmp, join(dir, String(n)));
    return grant.sha256!;
  }

  /** An object's path and size for streaming it out; E_NOT_FOUND when absent. */
  async locate(key: string): Promise<{ path: string; size: number; sha256?: string }> {
    const path = this.objectPath(key);
    const info = await this.head(key);
    if (!info) throw new IotaError('E_NOT_FOUND', `no object ${key}`);
    return { path, size: info.size, sha256: info.sha256 };
  }

  // ---- ObjectStore ---------------------------------------------------------------------------

  async put(key: string, bytes: Uint8Array): Promise<ObjectInfo> {
    validateKey(key);
    const tmp = this.tmpPath();
    const hasher = new ObjectHasher();
    hasher.update(bytes);
    const { sha256, chunkHashes } = hasher.finish();
    const fh = await open(tmp, 'wx');
    try {
      await writeAll(fh, bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return this.commit(tmp, key, {
      size: bytes.length,
      sha256,
      chunkBytes: CHUNK_BYTES,
      chunkHashes,
    });
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    const path = this.objectPath(key);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR', 'EISDIR'))
        throw new IotaError('E_NOT_FOUND', `no object ${key}`);
      throw e;
    }
    try {
      const size = (await fh.stat()).size;
      const { start, end } = range ?? { start: 0, end: size };
      checkRange(start, end, size, key);
      const out = Buffer.alloc(end - start);
      for (let at = 0; at < out.length;) {
        const { bytesRead } = await fh.read(out, at, out.length - at, start + at);
        if (bytesRead === 0)
          throw new IotaError('E_STORE_FAILED', `${key} shrank while being read`);
        at += bytesRead;
      }
      return new Uint8Array(out.buffer, out.byteOffset, out.length);
    } finally {
      await fh.close();
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    let size: number;
    try {
      const st = await stat(this.objectPath(key));
      if (!st.isFile()) return undefined;
      size = st.size;
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) return undefined;
      throw e;
    }
    try {
      const meta = JSON.parse(await readFile(this.metaPath(key), 'utf8')) as Meta;
      // Metadata of an earlier object under this key would describe other bytes.
      if (meta.size !== size || meta.chunkBytes !== CHUNK_BYTES) return { key, size };
      return { key, size, sha256: meta.sha256, chunkHashes: meta.chunkHashes };
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return { key, size };
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.objectPath(key), { force: true });
    await rm(this.metaPath(key), { force: true });
    await pruneEmptyDirs(dirname(this.objectPath(key)), join(this.root, 'objects'));
    await pruneEmptyDirs(dirname(this.metaPath(key)), join(this.root, 'meta'));
  }

  async list(prefix: string): Promise<ListedObject[]> {
    validatePrefix(prefix);
    const cut = prefix.lastIndexOf('/');
    const top = join(this.root, 'objects');
    const start = cut >= 0 ? join(top, ...prefix.slice(0, cut).split('/')) : top;
    const found: ListedObject[] = [];
    const stack = [start];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (isErrno(e, 'ENOENT', 'ENOTDIR')) continue;
        throw e;
      }
      for (const entry of entries) {
        const path = join(dir, entry.name);
        const key = path
          .slice(top.length + 1)
          .split(/[\\/]/)
          .join('/');
        if (entry.isDirectory()) {
          if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) stack.push(path);
        } else if (entry.isFile() && key.startsWith(prefix)) {
          found.push({ key, size: (await stat(path)).size });
        }
      }
    }
    return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async presignGet(req: GetRequest): Promise<string> {
    validateKey(req.key);
    checkExpiry(req.expiresAt, this.clock());
    return signedUrl(this.baseUrl(), this.secret, {
      method: 'GET',
      key: req.key,
      expiresAt: req.expiresAt,
    });
  }

  async presignPut(req: PutRequest): Promise<UploadPlan> {
    checkPutRequest(req, this.clock());
    const url = signedUrl(this.baseUrl(), this.secret, {
      method: 'PUT',
      key: req.key,
      expiresAt: req.expiresAt,
      length: req.size,
      sha256: req.sha256,
    });
    return singlePutPlan(req, url, {});
  }

  async createMultipart(req: MultipartRequest): Promise<UploadPlan> {
    checkMultipartRequest(req, this.clock());
    const uploadId = randomBytes(16).toString('hex');
    const dir = this.uploadDir(uploadId);
    await mkdir(dir, { recursive: true });
    const upload: Upload = {
      key: req.key,
      size: req.size,
      sha256: req.sha256,
      partSize: req.partSize,
      partSha256s: [...req.partSha256s],
      expiresAt: req.expiresAt,
      ...(req.chunkHashes ? { chunkHashes: [...req.chunkHashes] } : {}),
    };
    await writeUpload(dir, upload);
    const parts = partLayout(req.size, req.partSize).map((p) => {
      const sha256 = req.partSha256s[p.number - 1];
      const url = signedUrl(this.baseUrl(), this.secret, {
        method: 'PUT',
        key: req.key,
        expiresAt: req.expiresAt,
        length: p.size,
        sha256,
        uploadId,
        part: p.number,
      });
      return { ...p, sha256, url, headers: {} };
    });
    return {
      key: req.key,
      size: req.size,
      sha256: req.sha256,
      expiresAt: req.expiresAt,
      uploadId,
      ...(upload.chunkHashes ? { chunkHashes: upload.chunkHashes } : {}),
      parts,
    };
  }

  /**
   * Concatenates the parts in order into the object, checking the whole sha256 on the way (the
   * local store can, S3 cannot). A mismatch discards the upload.
   */
  async completeMultipart(plan: UploadPlan, etags: readonly string[]): Promise<ObjectInfo> {
    const dir = this.uploadDir(plan.uploadId);
    const upload = await readUpload(dir);
    const layout = await checkParts(dir, upload, plan, etags);
    const tmp = this.tmpPath();
    const { sha256, chunkHashes } = await assembleParts(dir, layout, tmp);
    if (sha256 !== upload.sha256) {
      await rm(tmp, { force: true });
      await rm(dir, { recursive: true, force: true });
      throw new IotaError(
        'E_HASH_MISMATCH',
        `the assembled ${plan.key} has sha256 ${sha256}, ${upload.sha256} was declared`,
        'the upload was discarded; start a new one',
      );
    }
    const info = await this.commit(tmp, upload.key, {
      size: upload.size,
      sha256,
      chunkBytes: CHUNK_BYTES,
      chunkHashes,
    });
    await rm(dir, { recursive: true, force: true });
    return info;
  }

  async abortMultipart(plan: UploadPlan): Promise<void> {
    await rm(this.uploadDir(plan.uploadId), { recursive: true, force: true });
  }

  /** Drops multipart uploads whose URLs have expired (call now and then; S3 has lifecycle rules). */
  sweepUploads(): Promise<number> {
    return sweepUploads(this.root, this.clock());
  }
}
