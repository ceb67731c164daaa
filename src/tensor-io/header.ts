/**
 * The safetensors header: an 8-byte little-endian u64 length N, then N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": { key: string } }`,
 * then the data buffer, which the offsets index from its own start.
 *
 * Everything that can be checked without reading tensor data is checked here, so a reader
 * that fetches only the header (a Range read) learns whether the object is well formed before
 * it fetches any tensor. Input comes from other participants, so each check names what is
 * wrong; the length prefix is checked before anything is allocated or decoded.
 */
import { IotaError } from '../errors.js';
import { DTYPES, DTYPE_BYTES, Dtype, elementCount, isDtype } from './dtypes.js';

export const DEFAULT_MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Bytes before the header JSON: the u64 length prefix. */
export const PREFIX_BYTES = 8;

export const METADATA_KEY = '__metadata__';

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** [begin, end) relative to the start of the data buffer. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** Null-prototype record, so a tensor named `__proto__` is just a name. */
  tensors: Record<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Absolute offset of the data buffer in the file: 8 + header length. */
  dataStart: number;
}

export interface HeaderOptions {
  maxHeaderBytes?: number;
  /**
   * Size of the whole object when `bytes` holds only its beginning (a Range read of the
   * header). Defaults to `bytes.length`.
   */
  fileBytes?: number;
}

function bad(message: string, hint?: string): IotaError {
  return new IotaError('E_BAD_TENSOR', `bad safetensors: ${message}`, hint);
}

/** A short rendering of an untrusted JSON value for messages. */
function preview(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The header length N from the first 8 bytes, refused when over `maxHeaderBytes`. Lets a
 * Range reader learn how many bytes to fetch next without trusting an absurd length.
 */
export function readHeaderLength(
  bytes: Uint8Array,
  maxHeaderBytes = DEFAULT_MAX_HEADER_BYTES,
): number {
  if (bytes.length < PREFIX_BYTES) {
    throw bad(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  }
  // A hostile u64 may not fit a double exactly, but rounding cannot carry it across a limit
  // or file size below 2^53, so comparing as a number is safe and allows an infinite limit.
  const n = Number(
    new DataView(bytes.buffer, bytes.byteOffset, PREFIX_BYTES).getBigUint64(0, true),
  );
  if (n > maxHeaderBytes) {
    throw bad(
      `header length ${n} is beyond the limit of ${maxHeaderBytes} bytes`,
      'raise maxHeaderBytes only for files from a trusted source',
    );
  }
  return n;
}

/** Parses and checks the header without touching the tensor data. */
export function readSafetensorsHeader(
  bytes: Uint8Array,
  opts: HeaderOptions = {},
): SafetensorsHeader {
  const n = readHeaderLength(bytes, opts.maxHeaderBytes);
  const fileBytes = opts.fileBytes ?? bytes.length;
  if (PREFIX_BYTES + n > bytes.length || PREFIX_BYTES + n > fileBytes) {
    throw bad(
      `header length ${n} is beyond the file ` +
        `(${Math.min(bytes.length, fileBytes) - PREFIX_BYTES} bytes follow the length)`,
    );
  }
  const dataStart = PREFIX_BYTES + n;

  let json: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(
      bytes.subarray(PREFIX_BYTES, dataStart),
    );
    // Duplicate names cannot be detected here: JSON.parse keeps the last one. The earlier
    // entry's bytes then belong to no tensor, which the coverage check below refuses, unless
    // both entries describe the same bytes, which is harmless.
    json = JSON.parse(text);
  } catch {
    throw bad('header is not valid UTF-8 JSON');
  }
  if (!isObject(json)) throw bad('header is not a JSON object');

  const bufferBytes = fileBytes - dataStart;
  const metadata = parseMetadata(json[METADATA_KEY]);
  const tensors: Record<string, TensorInfo> = Object.create(null);
  for (const name of Object.keys(json)) {
    if (name === METADATA_KEY) continue;
    tensors[name] = parseTensorInfo(name, json[name], bufferBytes);
  }
  checkCoverage(tensors, bufferBytes);
  return { tensors, metadata, dataStart };
}

function parseMetadata(raw: unknown): Record<string, string> {
  const metadata: Record<string, string> = Object.create(null);
  if (raw === undefined) return metadata;
  if (!isObject(raw)) throw bad(`${METADATA_KEY} is not an object`);
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== 'string')
      throw bad(`metadata value for '${key}' is not a string: ${preview(value)}`);
    metadata[key] = value;
  }
  return metadata;
}

const ENTRY_FIELDS = new Set(['dtype', 'shape', 'data_offsets']);

function parseTensorInfo(name: string, raw: unknown, bufferBytes: number): TensorInfo {
  if (!isObject(raw)) throw bad(`tensor '${name}': entry is not an object`);
  // Unknown fields are refused rather than ignored: no writer we read adds any, and a reader
  // that ignores fields it does not understand can be told two different stories.
  for (const key of Object.keys(raw)) {
    if (!ENTRY_FIELDS.has(key)) throw bad(`tensor '${name}': unknown field '${key}'`);
  }
  const { dtype, shape, data_offsets: offsets } = raw;
  if (!isDtype(dtype)) {
    throw bad(
      `tensor '${name}': unknown dtype ${preview(dtype)} (supported: ${DTYPES.join(', ')})`,
    );
  }
  const count = elementCount(shape);
  if (count === null) {
    throw bad(
      `tensor '${name}': shape must be an array of non-negative safe integers, got ${preview(shape)}`,
    );
  }
  const byteSize = count * DTYPE_BYTES[dtype];
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !Number.isSafeInteger(offsets[0]) ||
    !Number.isSafeInteger(offsets[1]) ||
    !(0 <= offsets[0] && offsets[0] <= offsets[1] && offsets[1] <= bufferBytes)
  ) {
    throw bad(
      `tensor '${name}': data_offsets must be [begin, end] with 0 <= begin <= end <= ${bufferBytes} ` +
        `(the data buffer's length), got ${preview(offsets)}`,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (end - begin !== byteSize) {
    throw bad(
      `tensor '${name}': byte size ${end - begin} does not match ${dtype} ` +
        `${preview(shape)}, which needs ${byteSize} bytes`,
    );
  }
  return { dtype, shape: shape as number[], dataOffsets: [begin, end] };
}

/**
 * The tensors must tile the data buffer exactly: no overlaps (two names, one set of bytes)
 * and no holes (bytes that no check covers, where anything could hide).
 */
function checkCoverage(tensors: Record<string, TensorInfo>, bufferBytes: number): void {
  const spans = Object.entries(tensors)
    .map(([name, t]) => ({ name, begin: t.dataOffsets[0], end: t.dataOffsets[1] }))
    .sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous = '';
  for (const s of spans) {
    if (s.begin < cursor) throw bad(`tensors '${previous}' and '${s.name}' overlap`);
    if (s.begin > cursor)
      throw bad(`bytes ${cursor}..${s.begin} of the data buffer belong to no tensor`);
    cursor = s.end;
    previous = s.name;
  }
  if (cursor !== bufferBytes) {
    throw bad(`bytes ${cursor}..${bufferBytes} of the data buffer belong to no tensor`);
  }
}
