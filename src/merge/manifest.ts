/**
 * Stage manifests: `runs/<run>/e<E>/stage/<s>.json` lists the partitions of a stage's flat
 * weight vector for epoch E, each an object with its sha256. Epoch 0's partitions come from
 * the seeded initial weights; later ones from the merge. Joiners and replicas assemble the
 * weights from the partitions and verify every hash.
 */
import { IotaError } from '../errors.js';
import { decodeSafetensors, encodedSize, encodeSafetensors } from '../tensor-io/safetensors.js';

export const MANIFEST_FORMAT = 'iota-stage-manifest';

export interface PartitionEntry {
  index: number;
  /** first element of the partition in the stage's flat vector */
  offset: number;
  /** elements */
  length: number;
  key: string;
  size: number;
  sha256: string;
  /** the partition's AdamW moments after this epoch's step (absent at epoch 0: zeros) */
  optim?: { key: string; size: number; sha256: string };
}

export interface StageManifest {
  format: typeof MANIFEST_FORMAT;
  version: 1;
  run: string;
  stage: number;
  /** the epoch these weights are trained in (w_E) */
  epoch: number;
  /** optimizer steps applied to reach them */
  step: number;
  /** elements of the flat vector */
  params: number;
  /** the step that made these weights: the mean gradient's norm before clipping, and the clip factor */
  grad_norm?: number;
  clip_factor?: number;
  partitions: PartitionEntry[];
}

/** Elements per partition: `partition_bytes` of float32 (the last partition is shorter). */
export function partitionElements(partitionBytes: number): number {
  return Math.max(1, Math.floor(partitionBytes / 4));
}

/** [offset, length] of each partition of a vector of `size` elements. */
export function partitionBounds(size: number, elements: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let o = 0; o < size; o += elements) out.push([o, Math.min(elements, size - o)]);
  return out;
}

/** One partition's object: a safetensors file with the float32 slice as tensor `w`. */
export function encodePartition(slice: Float32Array, offset: number): Uint8Array {
  return encodeSafetensors(
    { w: { dtype: 'F32', shape: [slice.length], data: slice } },
    { offset: String(offset) },
  );
}

/** The exact size of `encodePartition` of `length` elements at `offset`. */
export function partitionSize(length: number, offset: number): number {
  return encodedSize({ w: { dtype: 'F32', shape: [length] } }, { offset: String(offset) });
}

export function decodePartition(bytes: Uint8Array, length: number): Float32Array {
  const d = decodeSafetensors(bytes, { expect: { w: { dtype: 'F32', shape: [length] } } });
  return d.tensors.w.data as Float32Array;
}

export function encodeManifest(m: StageManifest): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(m, null, 1)}\n`);
}

/** Parses and checks a manifest's shape: partitions in order, covering the vector exactly. */
export function parseManifest(bytes: Uint8Array): StageManifest {
  let m: StageManifest;
  try {
    m = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new IotaError('E_BAD_MANIFEST', 'the stage manifest is not JSON');
  }
  if (m?.format !== MANIFEST_FORMAT || m.version !== 1 || !Array.isArray(m.partitions))
    throw new IotaError('E_BAD_MANIFEST', 'not an iota stage manifest (version 1)');
  let next = 0;
  m.partitions.forEach((p, i) => {
    if (
      p.index !== i ||
      p.offset !== next ||
      !(p.length > 0) ||
      typeof p.key !== 'string' ||
      !/^[0-9a-f]{64}$/.test(p.sha256)
    ) {
      throw new IotaError(
        'E_BAD_MANIFEST',
        `partition ${i} of the stage manifest is malformed or out of order`,
      );
    }
    next += p.length;
  });
  if (next !== m.params)
    throw new IotaError(
      'E_BAD_MANIFEST',
      `the partitions cover ${next} elements, the stage has ${m.params}`,
    );
  return m;
}
