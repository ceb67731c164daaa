/**
 * Object store (DESIGN.md sections 1, 6, 7): one interface, `ObjectStore`, two implementations,
 * and the client side of transfers.
 *
 *   types.ts         the contract: ObjectStore, UploadPlan, limits
 *   keys.ts          key syntax, what a key names, who may write it (`authorizeUpload`), size limits
 *   declaration.ts   checks on a declared upload (size, sha256, chunk and part hashes, expiry)
 *   s3.ts            S3Store: AWS S3, R2, MinIO through @aws-sdk/client-s3 and its presigner
 *   local.ts         LocalStore: files on disk, HMAC-signed URLs, secret persisted in a file
 *   local-files.ts   its disk primitives: hashing while writing, fsync, the secret file
 *   local-url.ts     the local store's URL format and its signature
 *   local-routes.ts  fastify plugin serving the local store's URLs
 *   transfer.ts      upload / download for miners and validators, with retries and verification
 *
 * The flow. A participant computes `describeUpload(bytes)` and asks the orchestrator (signed
 * request) for an upload of that size and sha256 under a key. The orchestrator checks
 * `authorizeUpload` (prefix rule and per-kind size limit), then calls `presignPut`, or
 * `createMultipart` above MAX_SINGLE_PUT_BYTES (64 MiB), with the lease end as expiry, and
 * returns the `UploadPlan`. The participant runs `upload(plan, bytes)`; for a multipart plan it
 * reports the ETags and the orchestrator calls `completeMultipart(plan, etags)` with the plan
 * from its own records. Consumers get a `presignGet` URL plus the sha256 (and chunk hashes for
 * Range reads) the orchestrator accepted, and call `download`, which verifies before returning.
 *
 * What each URL binds: one key, one method, an expiry, and for uploads the exact length and
 * sha256 (S3: `content-length` and `x-amz-checksum-sha256` signed as headers; local: all of them
 * in the HMAC). A multipart part binds its own length and sha256.
 */
import type { NodeConfig } from '../config/node.js';
import { LocalStore } from './local.js';
import { S3Store } from './s3.js';
import type { ObjectStore } from './types.js';

export * from './types.js';
export {
  authorizeUpload,
  refusalError,
  parseKey,
  formatKey,
  keys,
  ownerOf,
  validateKey,
  validatePrefix,
  DEFAULT_SIZE_LIMITS,
  OBJECT_KINDS,
} from './keys.js';
export type {
  ObjectKind,
  ParsedKey,
  UploadRequest,
  ScopePolicy,
  UploadDecision,
  ScopeRefusal,
} from './keys.js';
export { partLayout } from './declaration.js';
export { LocalStore, type LocalStoreOptions } from './local.js';
export { loadOrCreateSecret } from './local-files.js';
export { localStoreRoutes, storeStatusOf } from './local-routes.js';
export { STORE_PATH } from './local-url.js';
export { S3Store, type S3StoreOptions } from './s3.js';
export {
  upload,
  download,
  describeUpload,
  DEFAULT_PART_BYTES,
  type TransferOptions,
  type UploadDeclaration,
  type DownloadExpectation,
} from './transfer.js';

export interface OpenStoreOptions {
  /** local store: the orchestrator's public URL, where `localStoreRoutes` is served */
  baseUrl: string | (() => string);
  /** local store: where the HMAC secret lives; the orchestrator passes `<state_dir>/store-secret` */
  secretFile?: string;
  clock?: () => number;
}

/** The store a node config describes (local when `storage` is absent, under `.iota/store`). */
export async function openStore(
  storage: NodeConfig['storage'],
  o: OpenStoreOptions,
): Promise<ObjectStore> {
  if (storage?.kind === 's3') {
    return new S3Store({
      bucket: storage.bucket,
      region: storage.region,
      endpoint: storage.endpoint,
      forcePathStyle: storage.force_path_style,
      prefix: storage.prefix,
      clock: o.clock,
    });
  }
  return LocalStore.open({
    root: storage?.dir ?? '.iota/store',
    baseUrl: o.baseUrl,
    secretFile: o.secretFile,
    clock: o.clock,
  });
}
