/**
 * The `native` tfjs backend: tfjs's cpu backend (same tensor storage, same stock kernels)
 * with the kernels the model uses replaced by native ones. Registered as its own backend so
 * the stock `cpu` backend stays intact for comparison. Gradients are registered by kernel
 * name, so autograd works unchanged.
 *
 * Every call that ends in a stock kernel is counted (nativeStats): a kernel with no native
 * version, or a native kernel handing over a case it does not cover (another dtype, say).
 * Reshape and Identity stay stock and uncounted: they only relabel storage.
 */
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import os from 'node:os';
import { isFloat32Array } from 'node:util/types';
import { Ctx, type KernelArgs, type KernelResult } from './context.js';
import { layoutKernels } from './layout.js';
import { lossKernels } from './loss.js';
import type { NativeAddon } from './loader.js';
import { mathKernels } from './math.js';
import { BufferPool } from './pool.js';
import { reduceKernels } from './reduce.js';

export const NATIVE = 'native';

/** Kernels that are metadata only: the stock version is already the right one. */
const PASSTHROUGH = new Set(['Reshape', 'Identity']);

export const NATIVE_KERNELS: Readonly<
  Record<string, (args: KernelArgs, ctx: Ctx) => KernelResult>
> = { ...mathKernels, ...reduceKernels, ...layoutKernels };

export interface NativeStats {
  /** calls served by a native kernel */
  calls: number;
  /** calls served by a stock kernel, in all */
  fallbackCalls: number;
  /** stock-kernel calls by `Kernel(dtypes): why` */
  fallbacks: Record<string, number>;
  /** output buffers reused from the pool, allocated fresh, and bytes waiting on its free lists */
  buffers: { reused: number; allocated: number; cachedBytes: number };
}

const stats = { calls: 0, fallbackCalls: 0, fallbacks: {} as Record<string, number> };
/** Time per kernel name while a profile runs (startNativeProfile), else null. */
let profile: Map<string, { calls: number; ms: number }> | null = null;

/** Starts timing every kernel call of the native backend (a bench's profile), from zero. */
export function startNativeProfile(): void {
  profile = new Map();
}

/** Stops timing and returns, per kernel name, its calls and milliseconds since the start. */
export function stopNativeProfile(): Record<string, { calls: number; ms: number }> {
  const p = profile;
  profile = null;
  return Object.fromEntries(p ?? []);
}

/** A kernel function that, while a profile runs, adds its time to its name's. */
function timed(name: string, f: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    if (!profile) return f(args);
    const t0 = performance.now();
    try {
      return f(args);
    } finally {
      const e = profile.get(name) ?? { calls: 0, ms: 0 };
      e.calls++;
      e.ms += performance.now() - t0;
      profile.set(name, e);
    }
  };
}
let pool: BufferPool | null = null;

export function nativeStats(): NativeStats {
  const buffers = pool
    ? { reused: pool.reused, allocated: pool.allocated, cachedBytes: pool.cachedBytes }
    : { reused: 0, allocated: 0, cachedBytes: 0 };
  return {
    calls: stats.calls,
    fallbackCalls: stats.fallbackCalls,
    fallbacks: { ...stats.fallbacks },
    buffers,
  };
}

export function resetNativeStats(): void {
  stats.calls = 0;
  stats.fallbackCalls = 0;
  stats.fallbacks = {};
  if (pool) pool.reused = pool.allocated = 0;
}

function describeInputs(args: KernelArgs): string {
  return Object.values(args.inputs)
    .map((t) => t?.dtype ?? '-')
    .join(',');
}

/** The cpu backend with pooled output storage (pool.ts): it tells the pool what leaves and what is freed. */
class NativeBackend extends MathBackendCPU {
  constructor(private readonly pool: BufferPool) {
    super();
  }

  override readSync(dataId: tf.DataId): tf.BackendValues {
    this.pool.expose(this.data.get(dataId)?.values);
    return super.readSync(dataId);
  }

  override read(dataId: tf.DataId): Promise<tf.BackendValues> {
    this.pool.expose(this.data.get(dataId)?.values);
    return super.read(dataId);
  }

  override disposeData(dataId: tf.DataId, force = false): boolean {
    const values = this.data.get(dataId)?.values;
    const disposed = super.disposeData(dataId, force);
    if (values && !this.data.has(dataId)) this.pool.give(values);
    return disposed;
  }
}

/**
 * The float32 values of a tensor, for a read that ends before the tensor is disposed (adding a
 * gradient into a sum): on the native backend its own storage, which then stays recyclable
 * (dataSync marks it as having left the backend, and the pool never takes it back); elsewhere
 * dataSync's.
 */
export function readNow(t: tf.Tensor): Float32Array {
  if (tf.backend() instanceof NativeBackend) {
    const v = storedValues(t);
    if (isFloat32Array(v)) return v;
  }
  return t.dataSync() as Float32Array;
}

/**
 * The array the active backend keeps for a tensor where it is one of the cpu family (cpu,
 * native: they keep an array as given), else undefined (another backend, or data moved away).
 */
export function storedValues(t: tf.Tensor): unknown {
  const b = tf.backend();
  return b instanceof MathBackendCPU ? b.data.get(t.dataId)?.values : undefined;
}

/** Registers backend `native` and its kernels (once per tfjs instance). */
export function registerNativeBackend(addon: NativeAddon): void {
  if (tf.findBackendFactory(NATIVE) !== null) return;
  const stock = new Map(tf.getKernelsForBackend('cpu').map((k) => [k.kernelName, k]));
  // Free buffers kept for reuse: a step's worth for the models iota trains on a CPU.
  const buffers = new BufferPool(Math.min(2 ** 30, os.totalmem() / 8));
  pool = buffers;
  const fallback = (name: string, args: KernelArgs, why: string): KernelResult => {
    // A stock kernel may return a view of an input: such inputs must never be recycled.
    const backend = args.backend as MathBackendCPU;
    for (const t of Object.values(args.inputs))
      if (t) buffers.expose(backend.data.get(t.dataId)?.values);
    const key = `${name}(${describeInputs(args)}): ${why}`;
    stats.fallbackCalls++;
    stats.fallbacks[key] = (stats.fallbacks[key] ?? 0) + 1;
    const k = stock.get(name);
    if (!k) throw new Error(`native backend: no kernel ${name}`);
    return k.kernelFunc(args);
  };
  const ctx = new Ctx(addon, buffers, fallback);
  const served =
    (own: (args: KernelArgs, ctx: Ctx) => KernelResult): tf.KernelFunc =>
    (args) => {
      stats.calls++;
      return own(args, ctx);
    };
  for (const [name, k] of stock) {
    const own = NATIVE_KERNELS[name];
    let kernelFunc: tf.KernelFunc;
    if (own) {
      kernelFunc = served(own);
    } else if (PASSTHROUGH.has(name)) {
      kernelFunc = k.kernelFunc;
    } else {
      kernelFunc = (args) => fallback(name, args, 'no native kernel');
    }
    tf.registerKernel({
      ...k,
      backendName: NATIVE,
      kernelFunc: PASSTHROUGH.has(name) ? kernelFunc : timed(name, kernelFunc),
    });
  }
  // The fused kernels have no stock counterpart: registered on this backend only.
  for (const [name, own] of Object.entries(lossKernels))
    tf.registerKernel({
      kernelName: name,
      backendName: NATIVE,
      kernelFunc: timed(name, served(own)),
    });
  // Priority below cpu: iota chooses backends itself (backends.ts); this only matters to code
  // that relies on tfjs's own default.
  tf.registerBackend(NATIVE, () => new NativeBackend(buffers), 0);
}
