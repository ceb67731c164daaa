/**
 * Activations and activation gradients on the wire: safetensors with one tensor `a` of shape
 * [batch, seq, width] (bf16, f32, or 8-bit rows with `scale` and `offset`), the codec in the
 * metadata. Every read checks dtype, shape, size and finiteness before a value is used.
 */
import { IotaError } from '../errors.js';
import {
  bf16ToFloat32,
  dequantizeRows8,
  float32ToBf16,
  quantizeRows8,
} from '../tensor-io/codecs.js';
import { decodeSafetensors, encodedSize, encodeSafetensors } from '../tensor-io/safetensors.js';

export type Codec = 'bf16' | 'f32' | 'int8';

export function encodeActivation(
  data: Float32Array,
  shape: [number, number, number],
  codec: Codec,
): Uint8Array {
  const n = shape[0] * shape[1] * shape[2];
  if (data.length !== n)
    throw new IotaError(
      'E_BAD_TENSOR',
      `an activation of shape [${shape}] has ${n} elements, not ${data.length}`,
    );
  const meta = { codec };
  if (codec === 'f32') return encodeSafetensors({ a: { dtype: 'F32', shape, data } }, meta);
  if (codec === 'bf16')
    return encodeSafetensors({ a: { dtype: 'BF16', shape, data: float32ToBf16(data) } }, meta);
  const rows = shape[0] * shape[1];
  const q = quantizeRows8(data, rows, shape[2]);
  return encodeSafetensors(
    {
      a: { dtype: 'U8', shape, data: q.q },
      scale: { dtype: 'F32', shape: [rows], data: q.scale },
      offset: { dtype: 'F32', shape: [rows], data: q.offset },
    },
    meta,
  );
}

/** The exact size of `encodeActivation` of this shape and codec (what its upload must declare). */
export function activationSize(shape: [number, number, number], codec: Codec): number {
  const meta = { codec };
  if (codec === 'f32') return encodedSize({ a: { dtype: 'F32', shape } }, meta);
  if (codec === 'bf16') return encodedSize({ a: { dtype: 'BF16', shape } }, meta);
  const rows = [shape[0] * shape[1]];
  return encodedSize(
    {
      a: { dtype: 'U8', shape },
      scale: { dtype: 'F32', shape: rows },
      offset: { dtype: 'F32', shape: rows },
    },
    meta,
  );
}

/** The float32 values of an activation, refused (E_BAD_TENSOR) unless it has exactly `shape` and is finite. */
export function decodeActivation(bytes: Uint8Array, shape: [number, number, number]): Float32Array {
  const d = decodeSafetensors(bytes, { requireFinite: true });
  const a = d.tensors.a;
  if (!a) throw new IotaError('E_BAD_TENSOR', 'the activation has no tensor "a"');
  if (a.shape.length !== 3 || a.shape.some((v, i) => v !== shape[i]))
    throw new IotaError(
      'E_BAD_TENSOR',
      `the activation has shape [${a.shape}], expected [${shape}]`,
    );
  let out: Float32Array;
  if (a.dtype === 'F32') out = Float32Array.from(a.data as Float32Array);
  else if (a.dtype === 'BF16') out = bf16ToFloat32(a.data as Uint16Array);
  else if (a.dtype === 'U8') {
    const rows = shape[0] * shape[1];
    const scale = d.tensors.scale;
    const offset = d.tensors.offset;
    if (
      !scale ||
      !offset ||
      scale.dtype !== 'F32' ||
      offset.dtype !== 'F32' ||
      scale.data.length !== rows ||
      offset.data.length !== rows
    )
      throw new IotaError('E_BAD_TENSOR', 'an 8-bit activation needs F32 scale and offset per row');
    out = dequantizeRows8(
      {
        q: a.data as Uint8Array,
        scale: scale.data as Float32Array,
        offset: offset.data as Float32Array,
      },
      rows,
      shape[2],
    );
  } else throw new IotaError('E_BAD_TENSOR', `activations are F32, BF16 or U8, not ${a.dtype}`);
  for (let i = 0; i < out.length; i++)
    if (!Number.isFinite(out[i]))
      throw new IotaError('E_BAD_TENSOR', `activation element ${i} is not finite`);
  return out;
}
