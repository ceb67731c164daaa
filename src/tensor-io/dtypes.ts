/**
 * The element types iota stores in safetensors, and the bridge between raw little-endian bytes
 * and typed arrays. F16 and BF16 have no typed array in Node 20, so they travel as their raw
 * 16-bit patterns in a Uint16Array; `codecs.ts` converts them to and from float32.
 */
import { types } from 'node:util';
import { IotaError } from '../errors.js';

export type Dtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'U8';

export const DTYPES: readonly Dtype[] = ['F32', 'F16', 'BF16', 'I32', 'U8'];

export const DTYPE_BYTES: Readonly<Record<Dtype, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I32: 4,
  U8: 1,
};

/** F32 -> Float32Array, I32 -> Int32Array, F16/BF16 -> Uint16Array (raw bits), U8 -> Uint8Array. */
export type TensorData = Float32Array | Int32Array | Uint16Array | Uint8Array;

export interface TensorEntry {
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

export function isDtype(x: unknown): x is Dtype {
  return typeof x === 'string' && (DTYPES as readonly string[]).includes(x);
}

/**
 * Whether `data` is the typed array that carries `dtype`. Uses `util.types` rather than
 * `instanceof`, which fails for arrays made in another realm (jest sandboxes, worker threads).
 */
export function dataMatchesDtype(dtype: Dtype, data: unknown): data is TensorData {
  switch (dtype) {
    case 'F32':
      return types.isFloat32Array(data);
    case 'I32':
      return types.isInt32Array(data);
    case 'F16':
    case 'BF16':
      return types.isUint16Array(data);
    case 'U8':
      return types.isUint8Array(data);
  }
}

/**
 * Element count of `shape`, or null when the shape is not an array of non-negative safe
 * integers or its product is not a safe integer. A scalar (`[]`) has one element.
 */
export function elementCount(shape: unknown): number | null {
  if (!Array.isArray(shape)) return null;
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return null;
  // A zero anywhere empties the tensor even if the other dimensions multiply past 2^53.
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape as number[]) {
    n *= d;
    if (!Number.isSafeInteger(n)) return null;
  }
  return n;
}

// Typed arrays use the host's byte order and safetensors is little-endian; every host Node 20
// runs on in practice is little-endian, so the swap below exists only to stay correct elsewhere.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function swapCopy(bytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += size) {
    for (let j = 0; j < size; j++) out[i + j] = bytes[i + size - 1 - j];
  }
  return out;
}

/**
 * A typed array over `bytes` (one tensor's little-endian bytes). It is a view sharing memory
 * with `bytes` when the start is aligned to the element size, otherwise an aligned copy.
 */
export function dataFromBytes(dtype: Dtype, bytes: Uint8Array): TensorData {
  const size = DTYPE_BYTES[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new IotaError(
      'E_BAD_TENSOR',
      `${bytes.byteLength} bytes is not a whole number of ${dtype} elements`,
    );
  }
  if (dtype === 'U8') return bytes;
  let src = bytes;
  if (!LITTLE_ENDIAN) src = swapCopy(bytes, size);
  // A fresh copy: Buffer's slice() would be another unaligned view (downloads are Buffers).
  else if (bytes.byteOffset % size !== 0) src = new Uint8Array(bytes);
  const n = bytes.byteLength / size;
  if (dtype === 'F32') return new Float32Array(src.buffer, src.byteOffset, n);
  if (dtype === 'I32') return new Int32Array(src.buffer, src.byteOffset, n);
  return new Uint16Array(src.buffer, src.byteOffset, n);
}

/** The little-endian bytes of `data`: a view on little-endian hosts. */
export function bytesOfData(data: TensorData): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return LITTLE_ENDIAN || data.BYTES_PER_ELEMENT === 1
    ? view
    : swapCopy(view, data.BYTES_PER_ELEMENT);
}

/**
 * Index of the first NaN or infinity in a float tensor, or -1. F16 and BF16 are checked on their
 * bit patterns (exponent all ones) so no conversion is needed; integer dtypes are always finite.
 */
export function firstNonFinite(dtype: Dtype, data: TensorData): number {
  if (dtype === 'F32') {
    for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return i;
  } else if (dtype === 'F16' || dtype === 'BF16') {
    const mask = dtype === 'F16' ? 0x7c00 : 0x7f80;
    for (let i = 0; i < data.length; i++) if ((data[i] & mask) === mask) return i;
  }
  return -1;
}
