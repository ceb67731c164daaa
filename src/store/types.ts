/**
 * The object store's contract, shared by both implementations (S3 and the local file store) and
 * by the client-side transfers. Everything here is plain data: an `UploadPlan` is JSON the
 * orchestrator hands to a miner, keeps in its database and passes back to `completeMultipart`.
 */
import { CHUNK_BYTES } from '../tensor-io/hash.js';

/** A byte range [start, end): `end` is exclusive, as in `chunkSpan`. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ObjectInfo {
  key: string;
  size: number;
  /** hex sha256 of the whole object, from its metadata (absent for objects written outside the store) */
  sha256?: string;
  /** hex sha256 of each CHUNK_BYTES chunk, when the object's metadata records them */
  chunkHashes?: string[];
}

/** What a client declares before it may upload: the exact size and hash of the bytes. */
export interface PutRequest {
  key: string;
  size: number;
  sha256: string;
  /** per-chunk hashes; recorded as declared (S3) or computed and stored (local) */
  chunkHashes?: readonly string[];
  /** epoch ms after which the URL is refused; the orchestrator uses the lease's end */
  expiresAt: number;
}

export interface MultipartRequest extends PutRequest {
  /** every part is this long except the last; at least MIN_PART_BYTES */
  partSize: number;
  /** hex sha256 of each part, in order; each part's URL signs its own length and hash */
  partSha256s: readonly string[];
}

export interface GetRequest {
  key: string;
  expiresAt: number;
}

/** One signed PUT: its URL, and the headers the client must send exactly (they are signed). */
export interface PartUpload {
  /** 1-based, as in S3 */
  number: number;
  offset: number;
  size: number;
  sha256: string;
  url: string;
  headers: Record<string, string>;
}

/**
 * How to upload one object: a single PUT is a plan with one part and no `uploadId`; a multipart
 * upload has several and must be completed by the orchestrator with the parts' ETags.
 */
export interface UploadPlan {
  key: string;
  size: number;
  sha256: string;
  expiresAt: number;
  uploadId?: string;
  chunkHashes?: string[];
  parts: PartUpload[];
}

export interface ListedObject {
  key: string;
  size: number;
}

/**
 * Server side of the store, held by the orchestrator only (it alone has credentials). Keys are
 * relative to the store (no bucket, no prefix) and follow DESIGN.md section 7; every method
 * validates them (`E_BAD_KEY`). Expected failures are `IotaError`s: `E_NOT_FOUND`, `E_BAD_RANGE`,
 * `E_TOO_LARGE`, `E_BAD_HASH`, `E_BAD_EXPIRY`, `E_HASH_MISMATCH`, `E_INCOMPLETE_UPLOAD`,
 * `E_STORE_FAILED` (the backend said no for a reason of its own).
 */
export interface ObjectStore {
  readonly kind: 'local' | 's3';
  /** Writes an object with its sha256 and chunk hashes recorded in its metadata. */
  put(key: string, bytes: Uint8Array): Promise<ObjectInfo>;
  /** The object, or the bytes [start, end) of it; `E_NOT_FOUND`, `E_BAD_RANGE` past its end. */
  get(key: string, range?: ByteRange): Promise<Uint8Array>;
  /** Size and recorded hashes, or undefined when there is no such object. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Removes the object and its metadata; removing a missing object is not an error. */
  delete(key: string): Promise<void>;
  /** Every object whose key starts with `prefix` (a plain string prefix), sorted by key. */
  list(prefix: string): Promise<ListedObject[]>;
  /** A URL that accepts exactly these bytes at this key until `expiresAt`. */
  presignPut(req: PutRequest): Promise<UploadPlan>;
  /** A URL that reads this key (whole or with one `Range`) until `expiresAt`. */
  presignGet(req: GetRequest): Promise<string>;
  /** Starts a multipart upload; each part's URL signs that part's exact length and sha256. */
  createMultipart(req: MultipartRequest): Promise<UploadPlan>;
  /** Assembles the parts, given the ETags the client got back for them, in part order. */
  completeMultipart(plan: UploadPlan, etags: readonly string[]): Promise<ObjectInfo>;
  abortMultipart(plan: UploadPlan): Promise<void>;
}

/**
 * A single PUT carries at most this much. S3 metadata (2 KiB in all) then holds every chunk
 * hash of the object: 16 x 64 hex characters. Larger objects go multipart.
 */
export const MAX_SINGLE_PUT_BYTES = 16 * CHUNK_BYTES;
/** S3's smallest part (except the last); the local store keeps the same rule so one client fits both. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const MAX_PARTS = 10_000;
/** SigV4 presigned URLs live at most 7 days. */
export const MAX_URL_TTL_MS = 7 * 24 * 3600 * 1000;
