/** Safetensors, wire codecs and integrity hashes: what every role reads and writes objects with. */
export {
  DTYPES,
  DTYPE_BYTES,
  isDtype,
  elementCount,
  firstNonFinite,
  dataFromBytes,
  bytesOfData,
  dataMatchesDtype,
} from './dtypes.js';
export type { Dtype, TensorData, TensorEntry } from './dtypes.js';
export {
  DEFAULT_MAX_HEADER_BYTES,
  PREFIX_BYTES,
  METADATA_KEY,
  readHeaderLength,
  readSafetensorsHeader,
} from './header.js';
export type { HeaderOptions, SafetensorsHeader, TensorInfo } from './header.js';
export { encodeSafetensors, decodeSafetensors } from './safetensors.js';
export type { DecodeOptions, DecodedSafetensors, ExpectedTensor } from './safetensors.js';
export {
  BF16_MAX_REL_ERROR,
  BF16_SUBNORMAL_ABS_ERROR,
  F16_MAX_REL_ERROR,
  F16_SUBNORMAL_ABS_ERROR,
  float32ToBf16,
  bf16ToFloat32,
  float32ToF16,
  f16ToFloat32,
  quantizeRows8,
  dequantizeRows8,
  rows8ErrorBound,
} from './codecs.js';
export type { Rows8 } from './codecs.js';
export { CHUNK_BYTES, sha256Hex, chunkHashes, verifyRange, chunkSpan } from './hash.js';
