/**
 * What every native kernel needs: the addon, tensor storage of the cpu backend it extends, and
 * the way out to the stock kernel (counted) for the cases it does not handle.
 */
import type * as tf from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { isFloat32Array } from 'node:util/types';
import type { NativeAddon } from './loader.js';
import type { BufferPool } from './pool.js';

export type KernelArgs = Parameters<tf.KernelFunc>[0];
export type KernelResult = tf.TensorInfo | tf.TensorInfo[];
export type Kernel = (args: KernelArgs, ctx: Ctx) => KernelResult;

export class Ctx {
  constructor(
    readonly addon: NativeAddon,
    readonly pool: BufferPool,
    /** runs the stock cpu kernel and counts it as a fallback */
    readonly fallback: (name: string, args: KernelArgs, why: string) => KernelResult,
  ) {}

  /** The typed array behind a tensor (shared, never written). */
  values(backend: MathBackendCPU, t: tf.TensorInfo): tf.BackendValues {
    return backend.data.get(t.dataId)!.values!;
  }

  /** The Float32Array behind a float32 tensor, or null when it is stored otherwise. */
  f32(backend: MathBackendCPU, t: tf.TensorInfo): Float32Array | null {
    if (t.dtype !== 'float32') return null;
    const v = backend.data.get(t.dataId)?.values;
    return isFloat32Array(v) ? v : null;
  }

  /** Float32 output storage with undefined contents: every kernel writes all of its output. */
  alloc(n: number): Float32Array {
    return this.pool.take(n);
  }

  output(
    backend: MathBackendCPU,
    shape: number[],
    dtype: tf.DataType,
    values: tf.BackendValues,
  ): tf.TensorInfo {
    return backend.makeTensorInfo(shape, dtype, values);
  }
}

export function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Typed arrays the data-moving kernels accept: one of 1, 2, 4 or 8 bytes per element. */
export function isPlainTyped(v: unknown): v is Float32Array | Int32Array | Uint8Array {
  return ArrayBuffer.isView(v) && !(v instanceof DataView) && 'length' in v;
}

/** An empty typed array of the same kind as `like` with n elements. */
export function sameKind(
  like: ArrayBufferView,
  n: number,
  ctx: Ctx,
): Float32Array | Int32Array | Uint8Array {
  if (isFloat32Array(like)) return ctx.alloc(n);
  const C = (
    like as unknown as { constructor: new (n: number) => Float32Array | Int32Array | Uint8Array }
  ).constructor;
  return new C(n);
}
