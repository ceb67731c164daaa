/**
 * Backend choice. Model code uses tfjs ops only; this module decides which tfjs backend runs
 * them: the fastest one that works, unless the user names one. Order of preference:
 * tensorflow (tfjs-node-gpu, optional), native (this project's CPU kernels on OpenBLAS,
 * src/kernels/native/), wasm, cpu.
 */
import * as tf from '@tensorflow/tfjs';
import { IotaError } from '../errors.js';

export const BACKENDS = ['tensorflow', 'native', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendChoice = BackendName | 'auto';

export interface BackendProbe {
  name: BackendName;
  available: boolean;
  /** why not, and how to fix it, when unavailable */
  reason?: string;
  detail?: string;
}

/** Optional package; a string-typed specifier keeps tsc from requiring it. */
const TFJS_NODE_GPU: string = '@tensorflow/tfjs-node-gpu';
const GPU_REQUIREMENT =
  'needs an NVIDIA GPU with CUDA 11.2 and cuDNN 8.1, and libtensorflow downloaded ' +
  'at install (npm install @tensorflow/tfjs-node-gpu on such a host)';

const probes = new Map<BackendName, Promise<BackendProbe>>();

/** Loads (once) what a backend needs and says whether it can run here. Never throws. */
export function probeBackend(name: BackendName): Promise<BackendProbe> {
  let p = probes.get(name);
  if (!p) {
    p = doProbe(name);
    probes.set(name, p);
  }
  return p;
}

async function doProbe(name: BackendName): Promise<BackendProbe> {
  try {
    switch (name) {
      case 'tensorflow': {
        try {
          await import(TFJS_NODE_GPU);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          const why =
            code === 'ERR_MODULE_NOT_FOUND' ? 'not installed' : `failed to load (${firstLine(e)})`;
          return {
            name,
            available: false,
            reason: `@tensorflow/tfjs-node-gpu ${why}; it ${GPU_REQUIREMENT}`,
          };
        }
        return await tryInit(name);
      }
      case 'native': {
        const { loadNative, registerNativeBackend } = await import('./native/index.js');
        const loaded = loadNative();
        if (!loaded.ok) return { name, available: false, reason: loaded.reason };
        registerNativeBackend(loaded.addon);
        const info = loaded.addon.info();
        return await tryInit(
          name,
          `native kernels on ${info.blas.split(' ').slice(0, 2).join(' ')}, ` +
            `${info.threads} thread${info.threads === 1 ? '' : 's'}`,
        );
      }
      case 'wasm':
        await import('@tensorflow/tfjs-backend-wasm');
        return await tryInit(name, 'SIMD, one thread (wasm threads do not start in Node)');
      case 'cpu':
        return await tryInit(name, 'stock tfjs kernels in JavaScript');
    }
  } catch (e) {
    return { name, available: false, reason: firstLine(e) };
  }
}

async function tryInit(name: BackendName, detail?: string): Promise<BackendProbe> {
  if (tf.findBackendFactory(name) === null && tf.findBackend(name) === null) {
    return { name, available: false, reason: `tfjs has no backend "${name}" registered` };
  }
  const previous = tf.getBackend();
  const ok = await tf.setBackend(name).catch(() => false);
  if (!ok) return { name, available: false, reason: `backend "${name}" failed to initialise` };
  quiet(name);
  if (previous && previous !== name) await tf.setBackend(previous);
  return { name, available: true, detail };
}

export interface Selection {
  backend: BackendName;
  how: 'requested' | 'auto';
  skipped: BackendProbe[];
}

/** Activates the requested backend, or the first available one for 'auto'. */
export async function selectBackend(choice: BackendChoice = 'auto'): Promise<Selection> {
  if (choice !== 'auto') {
    if (!(BACKENDS as readonly string[]).includes(choice)) {
      throw new IotaError(
        'E_BAD_BACKEND',
        `unknown backend "${choice}"`,
        `choose one of auto, ${BACKENDS.join(', ')}`,
      );
    }
    const p = await probeBackend(choice);
    if (!p.available)
      throw new IotaError(
        'E_BACKEND_UNAVAILABLE',
        `backend "${choice}" is not available: ${p.reason}`,
        'run `iota doctor` to see the backends that work here, or use --backend auto',
      );
    await tf.setBackend(choice);
    return { backend: choice, how: 'requested', skipped: [] };
  }
  const skipped: BackendProbe[] = [];
  for (const name of BACKENDS) {
    const p = await probeBackend(name);
    if (p.available) {
      await tf.setBackend(name);
      return { backend: name, how: 'auto', skipped };
    }
    skipped.push(p);
  }
  throw new IotaError(
    'E_BACKEND_UNAVAILABLE',
    'no tfjs backend could start',
    'run `iota doctor` for details',
  );
}

export function describeSelection(s: Selection): string {
  if (s.how === 'requested') return `backend: ${s.backend} (requested)`;
  // The native kernels are the one backend a CPU host is expected to have: say why it is not here.
  const skipped = s.skipped
    .map((p) => (p.name === 'native' ? `native (${p.reason})` : p.name))
    .join(', ');
  const why = skipped ? `; not available here: ${skipped}, see iota doctor` : '';
  return `backend: ${s.backend} (chosen automatically${why})`;
}

/**
 * Times an n x n float32 matmul on the active backend; returns GFLOP/s (2n^3 per product).
 * Repeats until at least `minSeconds` have passed so slow and fast backends both get a fair read.
 */
export async function timeMatmul(
  n = 512,
  minSeconds = 0.5,
): Promise<{ gflops: number; n: number; reps: number; seconds: number }> {
  const a = tf.randomUniform([n, n], -1, 1, 'float32', 1);
  const b = tf.randomUniform([n, n], -1, 1, 'float32', 2);
  try {
    const once = async () => {
      const c = tf.matMul(a, b);
      await c.data();
      c.dispose();
    };
    await once();
    let reps = 0;
    const t0 = performance.now();
    while (reps < 3 || performance.now() - t0 < minSeconds * 1000) {
      await once();
      reps++;
    }
    const seconds = (performance.now() - t0) / 1000;
    return { gflops: (2 * n ** 3 * reps) / seconds / 1e9, n, reps, seconds };
  } finally {
    a.dispose();
    b.dispose();
  }
}

/**
 * tfjs's cpu backend prints a banner on its first tensor in Node suggesting tfjs-node; iota
 * says what it chose itself (and `iota doctor` says why), so the banner is switched off.
 */
function quiet(name: BackendName): void {
  const b = tf.findBackend(name) as unknown as { firstUse?: boolean } | null;
  if (b && 'firstUse' in b) b.firstUse = false;
}

function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split('\n')[0];
}
