/**
 * Finds and loads the native kernels addon (built by `npm run build:native` into
 * src/kernels/native/build/), and owns its one thread pool's size. Never throws: when the addon
 * is missing, disabled or fails to load, `loadNative()` says why and how to fix it, and the
 * backend choice moves on to wasm.
 *
 * Environment: IOTA_NATIVE=off disables the addon; IOTA_NATIVE_ADDON=PATH loads another build;
 * IOTA_THREADS=N sets the pool size; IOTA_PROCESSES=P (default 1) says how many iota processes
 * share this host, so the default is cores / P threads each.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions (csrc/addon.cc). Shapes are plain arrays of non-negative integers. */
export interface NativeAddon {
  matmul(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    batch: number[],
    aBatch: number[],
    bBatch: number[],
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
  ): void;
  binary(
    op: number,
    a: Float32Array,
    aShape: number[],
    b: Float32Array,
    bShape: number[],
    out: Float32Array | Uint8Array,
  ): void;
  unary(op: number, x: Float32Array, out: Float32Array, alpha: number): void;
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /** Returns the first row whose target is out of range (nothing written), or -1. */
  crossEntropy(
    x: Float32Array,
    targets: Int32Array,
    rows: number,
    cols: number,
    loss: Float32Array,
    lse: Float32Array,
  ): number;
  crossEntropyGrad(
    x: Float32Array,
    targets: Int32Array,
    lse: Float32Array,
    scale: Float32Array,
    rows: number,
    cols: number,
    grad: Float32Array,
  ): void;
  /**
   * AdamW in place, bit for bit as model/optimizer.ts; settings: [clip, beta1, 1 - beta1, beta2,
   * 1 - beta2, eps, stepSize, bc2Sqrt, decay]
   */
  adamw(
    w: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    settings: number[],
  ): void;
  /** dst += src over src's length */
  addInto(dst: Float32Array, src: Float32Array): void;
  /** out = fround(sum / n), as JavaScript computes it */
  meanOfSum(sum: Float32Array, n: number, out: Float32Array): void;
  /** the float64 sum of squares, in order: the bits of JavaScript's loop */
  sumOfSquares(x: Float32Array): number;
  addN(xs: Float32Array[], out: Float32Array, n: number): void;
  reduce(
    op: number,
    x: Float32Array,
    out: Float32Array,
    outer: number,
    red: number,
    inner: number,
  ): void;
  transpose(x: ArrayBufferView, shape: number[], perm: number[], out: ArrayBufferView): void;
  copy(
    src: ArrayBufferView,
    srcShape: number[],
    srcStart: number[],
    dst: ArrayBufferView,
    dstShape: number[],
    dstStart: number[],
    size: number[],
  ): void;
  fill(out: Float32Array, value: number): void;
  /** returns the position of the first out-of-range index, or -1 */
  gather(
    x: ArrayBufferView,
    outer: number,
    n: number,
    inner: number,
    indices: Int32Array,
    out: ArrayBufferView,
  ): number;
  /** int32 or bool (Uint8Array) to float32, float32 or int32 to bool */
  convert(src: Float32Array | Int32Array | Uint8Array, dst: Float32Array | Uint8Array): void;
  /** `pin` binds pool thread k to the k-th allowed CPU (the caller is thread 0) */
  setThreads(threads: number, spinMicroseconds?: number, pin?: boolean): void;
  info(): { threads: number; spinUs: number; pinned: boolean; blas: string };
}

export type NativeLoad =
  { ok: true; addon: NativeAddon; path: string } | { ok: false; reason: string };

const FIX =
  'install g++, make and libopenblas-dev (apt-get install g++ make ' +
  'libopenblas-dev), then run ./setup.sh or npm run build:native';

let loaded: NativeLoad | undefined;
let requestedThreads: number | undefined;

/** The package root: the nearest folder above this module with iota's package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'iota')
          return dir;
      } catch {
        // not ours; keep walking
      }
    }
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/**
 * Where `npm run build:native` puts the addon (BUILD/Release/iota_native.node), and the status
 * file its build script writes (BUILD/status.json).
 */
export function addonPaths(): { addon: string; status: string } {
  const addon =
    process.env.IOTA_NATIVE_ADDON ||
    join(packageRoot(), 'src', 'kernels', 'native', 'build', 'Release', 'iota_native.node');
  return { addon, status: join(dirname(dirname(addon)), 'status.json') };
}

/** The addon if this process loaded it already (a backend chose native), without loading it. */
export function loadedNative(): NativeAddon | undefined {
  return loaded?.ok ? loaded.addon : undefined;
}

/**
 * The addon for a second thread of a process whose compute thread loaded it (a miner's merge,
 * on its main thread): loaded without resizing the one pool of the process, whose size the
 * compute thread set; while that thread runs a kernel, this one's kernels run inline.
 */
export function shareNative(): NativeAddon | undefined {
  loaded ??= tryLoad();
  return loadedNative();
}

/** Loads the addon once and sizes its pool. */
export function loadNative(): NativeLoad {
  if (loaded) return loaded;
  loaded = tryLoad();
  if (loaded.ok) applyThreads(loaded.addon, threadCount());
  return loaded;
}

function tryLoad(): NativeLoad {
  const flag = (process.env.IOTA_NATIVE ?? '').toLowerCase();
  if (flag === 'off' || flag === '0' || flag === 'false')
    return { ok: false, reason: 'disabled by IOTA_NATIVE=off' };
  const { addon, status } = addonPaths();
  if (!existsSync(addon)) {
    let why = 'not built';
    try {
      const s = JSON.parse(readFileSync(status, 'utf8')) as { ok?: boolean; reason?: string };
      if (s.ok === false && s.reason) why = `not built (${s.reason})`;
    } catch {
      // no build attempted yet
    }
    return { ok: false, reason: `${why}: ${FIX}` };
  }
  // -march=native code on another CPU dies of SIGILL: refuse a build made elsewhere.
  try {
    const s = JSON.parse(readFileSync(status, 'utf8')) as { cpu?: string };
    if (s.cpu && s.cpu !== cpuSignature())
      return {
        ok: false,
        reason: 'built on another CPU: run npm run build:native on this machine',
      };
  } catch {
    // no status (a hand-built addon): trust it
  }
  // OpenBLAS reads this when it loads; the pool does the threading, so BLAS stays on one thread.
  process.env.OPENBLAS_NUM_THREADS ??= '1';
  try {
    const m = createRequire(import.meta.url)(addon) as NativeAddon;
    return { ok: true, addon: m, path: addon };
  } catch (e) {
    const msg = String(e instanceof Error ? e.message : e).split('\n')[0];
    return { ok: false, reason: `failed to load ${addon} (${msg}): ${FIX}` };
  }
}

/** The CPU's model and instruction-set flags, as build.mjs records them. */
function cpuSignature(): string {
  let flags = '';
  try {
    flags = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    // not Linux: the model name alone
  }
  return createHash('sha256')
    .update(`${os.cpus()[0]?.model ?? ''}|${flags}`)
    .digest('hex')
    .slice(0, 16);
}

/**
 * Threads for the pool: set by --threads (setThreads), else IOTA_THREADS, else the cores this
 * process may use divided by IOTA_PROCESSES, so several miners on one host do not oversubscribe it.
 */
export function threadCount(): number {
  if (requestedThreads !== undefined) return requestedThreads;
  const env = Number(process.env.IOTA_THREADS);
  if (Number.isSafeInteger(env) && env >= 1) return env;
  const processes = Number(process.env.IOTA_PROCESSES);
  const share = Number.isSafeInteger(processes) && processes >= 1 ? processes : 1;
  return Math.max(1, Math.floor(os.availableParallelism() / share));
}

/** How long idle pool threads spin before sleeping (IOTA_SPIN_US, default 200). */
export function spinMicroseconds(): number {
  const env = Number(process.env.IOTA_SPIN_US);
  return Number.isSafeInteger(env) && env >= 0 ? env : 200;
}

/** Sets the pool size (the --threads flag); applies now if the addon is loaded, else at load. */
export function setThreads(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1)
    throw new RangeError(`threads must be a positive integer, got ${n}`);
  requestedThreads = n;
  if (loaded?.ok) applyThreads(loaded.addon, n);
}

/**
 * A pool that spans every CPU the process may use is pinned, one thread per CPU: some
 * hypervisors' schedulers pack threads onto few vCPUs otherwise (IOTA_PIN=0 turns it off).
 * A smaller pool (several processes sharing the host) is left to the scheduler.
 */
function applyThreads(addon: NativeAddon, n: number): void {
  const pin = process.env.IOTA_PIN !== '0' && n === os.availableParallelism();
  addon.setThreads(n, spinMicroseconds(), pin);
}
