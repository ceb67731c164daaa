/**
 * Reading and writing whole safetensors objects. The header checks live in `header.ts`; this
 * file adds what needs the data: finiteness, and the shapes and dtypes a caller expects.
 *
 * Writing is deterministic (same tensors and metadata -> same bytes) because object hashes are
 * signed and compared across participants.
 */
import { IotaError } from '../errors.js';
import {
  DTYPE_BYTES,
  Dtype,
  TensorEntry,
  bytesOfData,
  dataFromBytes,
  dataMatchesDtype,
  elementCount,
  firstNonFinite,
  isDtype,
} from './dtypes.js';
import { METADATA_KEY, PREFIX_BYTES, readSafetensorsHeader } from './header.js';

export interface ExpectedTensor {
  dtype?: Dtype;
  shape?: number[];
}

export interface DecodeOptions {
  /** Refuse headers longer than this before reading them (default 100 MiB). */
  maxHeaderBytes?: number;
  /**
   * Refuse NaN and infinity in F32, F16 and BF16 tensors. Defaults to true: every read of
   * wire data checks finiteness (DESIGN.md section 6); pass false only to inspect bad files.
   */
  requireFinite?: boolean;
  /** Tensors that must be present, with their dtype and shape. Other tensors are allowed. */
  expect?: Record<string, ExpectedTensor>;
}

export interface DecodedSafetensors {
  tensors: Record<string, TensorEntry>;
  metadata: Record<string, string>;
}

function bad(message: string): IotaError {
  return new IotaError('E_BAD_TENSOR', `bad safetensors: ${message}`);
}

// Plain `<` ordering (UTF-16 code units), never localeCompare: the order must not depend on
// the machine's locale.
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A tensor as the header describes it: what the size of an encoded object depends on. */
export interface TensorSpec {
  dtype: Dtype;
  shape: readonly number[];
}

/**
 * The header of an encoding: entries in name order; in the data buffer the tensors are laid
 * out widest dtype first, then by name, so that with the header padded to a multiple of 8
 * every tensor starts at a multiple of its element size and a reader can view the bytes in
 * place instead of copying them.
 */
function layout(
  tensors: Record<string, TensorSpec>,
  metadata?: Record<string, string>,
): {
  json: Uint8Array;
  headerBytes: number;
  dataBytes: number;
  offsets: Map<string, [number, number]>;
} {
  const names = Object.keys(tensors).sort(byName);
  const order = [...names].sort(
    (a, b) => DTYPE_BYTES[tensors[b].dtype] - DTYPE_BYTES[tensors[a].dtype] || byName(a, b),
  );
  const offsets = new Map<string, [number, number]>();
  let cursor = 0;
  for (const name of order) {
    const count = elementCount(tensors[name].shape as number[]);
    if (count === null)
      throw bad(`tensor '${name}': shape must be an array of non-negative safe integers`);
    const size = count * DTYPE_BYTES[tensors[name].dtype];
    offsets.set(name, [cursor, cursor + size]);
    cursor += size;
  }

  // Null-prototype records, so that a tensor or metadata key named `__proto__` is just a key.
  const header: Record<string, unknown> = Object.create(null);
  const metaKeys = Object.keys(metadata ?? {}).sort(byName);
  if (metaKeys.length > 0) {
    const meta: Record<string, string> = Object.create(null);
    for (const key of metaKeys) {
      const value = metadata![key];
      if (typeof value !== 'string') throw bad(`metadata value for '${key}' is not a string`);
      meta[key] = value;
    }
    header[METADATA_KEY] = meta;
  }
  for (const name of names) {
    const { dtype, shape } = tensors[name];
    header[name] = { dtype, shape: [...shape], data_offsets: offsets.get(name) };
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  return { json, headerBytes: Math.ceil(json.length / 8) * 8, dataBytes: cursor, offsets };
}

/**
 * The exact size of the encoding of tensors of these dtypes and shapes with this metadata,
 * without their data: what an upload of such an object must declare.
 */
export function encodedSize(
  tensors: Record<string, TensorSpec>,
  metadata?: Record<string, string>,
): number {
  for (const name of Object.keys(tensors)) {
    if (name === METADATA_KEY) throw bad(`'${METADATA_KEY}' is reserved and cannot name a tensor`);
    if (!isDtype(tensors[name].dtype))
      throw bad(`tensor '${name}': unknown dtype ${String(tensors[name].dtype)}`);
  }
  const l = layout(tensors, metadata);
  return PREFIX_BYTES + l.headerBytes + l.dataBytes;
}

/** Encodes tensors as safetensors (the layout above). */
export function encodeSafetensors(
  tensors: Record<string, TensorEntry>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = Object.keys(tensors).sort(byName);
  for (const name of names) checkEntry(name, tensors[name]);
  const { json, headerBytes, dataBytes, offsets } = layout(tensors, metadata);
  const out = new Uint8Array(PREFIX_BYTES + headerBytes + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes), true);
  out.set(json, PREFIX_BYTES);
  out.fill(0x20, PREFIX_BYTES + json.length, PREFIX_BYTES + headerBytes);
  const dataStart = PREFIX_BYTES + headerBytes;
  for (const name of names) {
    out.set(bytesOfData(tensors[name].data), dataStart + offsets.get(name)![0]);
  }
  return out;
}

function checkEntry(name: string, entry: TensorEntry): void {
  if (name === METADATA_KEY) throw bad(`'${METADATA_KEY}' is reserved and cannot name a tensor`);
  if (!isDtype(entry.dtype)) throw bad(`tensor '${name}': unknown dtype ${String(entry.dtype)}`);
  const count = elementCount(entry.shape);
  if (count === null)
    throw bad(`tensor '${name}': shape must be an array of non-negative safe integers`);
  if (!dataMatchesDtype(entry.dtype, entry.data)) {
    throw bad(`tensor '${name}': data is not the typed array for ${entry.dtype}`);
  }
  if (entry.data.length !== count) {
    throw bad(
      `tensor '${name}': shape ${JSON.stringify(entry.shape)} needs ${count} elements, data has ${entry.data.length}`,
    );
  }
}

/**
 * Decodes and checks a whole safetensors object. The returned arrays are views into `bytes`
 * where alignment allows and copies otherwise, so they change if `bytes` is changed.
 */
export function decodeSafetensors(bytes: Uint8Array, opts: DecodeOptions = {}): DecodedSafetensors {
  const header = readSafetensorsHeader(bytes, { maxHeaderBytes: opts.maxHeaderBytes });
  if (opts.expect) checkExpected(header.tensors, opts.expect);
  const requireFinite = opts.requireFinite ?? true;

  const tensors: Record<string, TensorEntry> = Object.create(null);
  for (const name of Object.keys(header.tensors).sort(byName)) {
    const { dtype, shape, dataOffsets } = header.tensors[name];
    const raw = bytes.subarray(
      header.dataStart + dataOffsets[0],
      header.dataStart + dataOffsets[1],
    );
    const data = dataFromBytes(dtype, raw);
    if (requireFinite) {
      const i = firstNonFinite(dtype, data);
      if (i >= 0) throw bad(`tensor '${name}': element ${i} is not finite`);
    }
    tensors[name] = { dtype, shape, data };
  }
  return { tensors, metadata: header.metadata };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function checkExpected(
  tensors: Record<string, { dtype: Dtype; shape: number[] }>,
  expected: Record<string, ExpectedTensor>,
): void {
  for (const [name, want] of Object.entries(expected)) {
    const got = tensors[name];
    if (got === undefined) throw bad(`missing tensor '${name}'`);
    if (want.dtype !== undefined && got.dtype !== want.dtype) {
      throw bad(`tensor '${name}': expected dtype ${want.dtype}, got ${got.dtype}`);
    }
    if (want.shape !== undefined && !sameShape(got.shape, want.shape)) {
      throw bad(
        `tensor '${name}': expected shape ${JSON.stringify(want.shape)}, got ${JSON.stringify(got.shape)}`,
      );
    }
  }
}
