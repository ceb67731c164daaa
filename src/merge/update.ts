/**
 * Step 2 of the merge (pure): clip and AdamW on one partition, with Foundation II's flat
 * optimizer, and the partition's objects: new weights (`w`) and optimizer state (`m`, `v`).
 */
import type { ParamSpec } from '../model/params.js';
import { adamwUpdate, type AdamWSettings } from '../model/optimizer.js';
import { decodeSafetensors, encodedSize, encodeSafetensors } from '../tensor-io/safetensors.js';

export interface PartitionUpdate {
  w: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/**
 * w_{E+1}[p], m, v from w_E[p], Gbar_p and the previous moments (zeros before the first step).
 * Inputs are not changed.
 */
export function updatePartition(
  wE: Float32Array,
  gbar: Float32Array,
  prev: { m: Float32Array; v: Float32Array } | undefined,
  offset: number,
  params: readonly ParamSpec[],
  adamw: AdamWSettings,
  step: number,
  clipFactor: number,
): PartitionUpdate {
  const n = wE.length;
  const w = Float32Array.from(wE);
  const m = prev ? Float32Array.from(prev.m) : new Float32Array(n);
  const v = prev ? Float32Array.from(prev.v) : new Float32Array(n);
  adamwUpdate({ w, g: gbar, m, v, offset }, params, adamw, step, clipFactor);
  return { w, m, v };
}

export function encodeOptimState(m: Float32Array, v: Float32Array, offset: number): Uint8Array {
  return encodeSafetensors(
    {
      m: { dtype: 'F32', shape: [m.length], data: m },
      v: { dtype: 'F32', shape: [v.length], data: v },
    },
    { offset: String(offset) },
  );
}

/** The exact size of `encodeOptimState` of `length` elements at `offset`. */
export function optimStateSize(length: number, offset: number): number {
  return encodedSize(
    { m: { dtype: 'F32', shape: [length] }, v: { dtype: 'F32', shape: [length] } },
    { offset: String(offset) },
  );
}

export function decodeOptimState(
  bytes: Uint8Array,
  length: number,
): { m: Float32Array; v: Float32Array } {
  const d = decodeSafetensors(bytes, {
    expect: { m: { dtype: 'F32', shape: [length] }, v: { dtype: 'F32', shape: [length] } },
  });
  return {
    m: Float32Array.from(d.tensors.m.data as Float32Array),
    v: Float32Array.from(d.tensors.v.data as Float32Array),
  };
}
