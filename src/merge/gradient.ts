/**
 * A miner's gradient sum for an epoch: a safetensors object with one float32 tensor `g` of the
 * stage's flat length and no metadata, so its header is known in advance and a merger reads
 * exactly one partition's bytes with a Range request. Each partition's bytes have their own
 * sha256, declared with the upload, which the Range read is checked against.
 */
import { IotaError } from '../errors.js';
import { sha256Hex } from '../tensor-io/hash.js';
import { partitionBounds } from './manifest.js';

const PREFIX_BYTES = 8;

/** The exact header bytes (length prefix + JSON padded to 8) of a gradient of `params` elements. */
export function gradientPrefix(params: number): Uint8Array {
  const json = new TextEncoder().encode(
    JSON.stringify({ g: { dtype: 'F32', shape: [params], data_offsets: [0, 4 * params] } }),
  );
  const headerBytes = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(PREFIX_BYTES + headerBytes).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes), true);
  out.set(json, PREFIX_BYTES);
  return out;
}

export function encodeGradient(g: Float32Array): Uint8Array {
  const prefix = gradientPrefix(g.length);
  const out = new Uint8Array(prefix.length + g.byteLength);
  out.set(prefix);
  out.set(new Uint8Array(g.buffer, g.byteOffset, g.byteLength), prefix.length);
  return out;
}

/** The exact size of the gradient object of a stage of `params` elements. */
export function gradientSize(params: number): number {
  return gradientPrefix(params).length + 4 * params;
}

/** Bytes [start, end) of a partition's elements within the gradient object. */
export function sliceRange(
  params: number,
  offset: number,
  length: number,
): { start: number; end: number } {
  const base = gradientPrefix(params).length;
  return { start: base + 4 * offset, end: base + 4 * (offset + length) };
}

/** sha256 of each partition's bytes of an encoded gradient. */
export function partitionHashes(
  encoded: Uint8Array,
  params: number,
  partitionElements: number,
): string[] {
  const base = gradientPrefix(params).length;
  if (encoded.length !== base + 4 * params)
    throw new IotaError(
      'E_BAD_TENSOR',
      `a gradient of ${params} elements is ${base + 4 * params} bytes, not ${encoded.length}`,
    );
  return partitionBounds(params, partitionElements).map(([o, n]) =>
    sha256Hex(encoded.subarray(base + 4 * o, base + 4 * (o + n))),
  );
}

/** The float32 values of a partition's bytes (copied, little-endian), refused unless finite. */
export function decodeSlice(bytes: Uint8Array, length: number): Float32Array {
  if (bytes.length !== 4 * length)
    throw new IotaError(
      'E_BAD_TENSOR',
      `a slice of ${length} float32 is ${4 * length} bytes, got ${bytes.length}`,
    );
  const out = new Float32Array(length);
  new Uint8Array(out.buffer).set(bytes);
  for (let i = 0; i < length; i++)
    if (!Number.isFinite(out[i]))
      throw new IotaError('E_BAD_TENSOR', `gradient slice element ${i} is not finite`);
  return out;
}
