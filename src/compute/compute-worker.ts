/**
 * A compute thread (the miner's, and the validator's for replays): one stage of the model on
 * the chosen backend. It runs forwards, backwards and tail steps. A miner's forward can be kept
 * (its tape: up to `keep.items` of them and `keep.bytes` in all, oldest dropped first, none
 * across new weights) so that
 * its backward, which comes back to the same miner, skips the recompute; any other backward
 * recomputes its forward. Each
 * backward's parameter gradient (unless only the input gradient is asked for) waits in a
 * pending buffer until the main thread says the orchestrator acknowledged it (`commit`) or not
 * (`discard`), so the gradient sum holds exactly the credited samples.
 */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { stageSpecs } from '../config/model.js';
import { readNow } from '../kernels/native/backend.js';
import { selectBackend, type BackendChoice } from '../kernels/backends.js';
import { Stage, type KeptForward } from '../model/stage.js';
import { tapeSupported } from '../model/kept-tape.js';
import { isIotaError } from '../errors.js';
import type { ComputeRequest, ComputeReply, KeepLimits } from './compute.js';

let stage: Stage | undefined;
let sum: Float32Array | undefined;
const pending = new Map<string, Float32Array>();
/** kept forwards by name, oldest first, with the bytes each holds */
const kept = new Map<string, { f: KeptForward; bytes: number }>();
let keptBytes = 0;
let keep: KeepLimits = { items: 0, bytes: 0 };

/** Frees the forward kept under `name` (every kept forward without one). */
function releaseKept(name?: string): void {
  for (const k of name === undefined ? [...kept.keys()] : [name]) {
    const f = takeKept(k);
    if (f) stage?.releaseKept(f);
  }
}

function takeKept(name: string): KeptForward | undefined {
  const e = kept.get(name);
  if (!e) return undefined;
  kept.delete(name);
  keptBytes -= e.bytes;
  return e.f;
}

function input(r: { tokens?: Int32Array; x?: Float32Array; shape: number[] }): tf.Tensor {
  if (r.tokens) return tf.tensor2d(r.tokens, [r.shape[0], r.shape[1]], 'int32');
  return tf.tensor3d(r.x!, r.shape as [number, number, number], 'float32');
}

/** Whether a backward or tail request forms the weights' gradients (a miner's, not a replay). */
function weightGrads(m: ComputeRequest): boolean {
  return (m.grads ?? 'all') === 'all';
}

async function handle(m: ComputeRequest): Promise<Omit<ComputeReply, 'id'>> {
  switch (m.op) {
    case 'init': {
      const s = await selectBackend(m.backend as BackendChoice);
      releaseKept();
      // an engine without the internals a kept tape needs: every backward recomputes
      keep = (tapeSupported() && m.keep) || { items: 0, bytes: 0 };
      stage = new Stage(m.config!, stageSpecs(m.config!)[m.stage!], m.weights!);
      sum = new Float32Array(stage.layout.size);
      pending.clear();
      return { backend: s.backend };
    }
    case 'weights':
      releaseKept();
      stage!.setWeights(m.weights!);
      return {};
    case 'reset':
      releaseKept();
      sum = new Float32Array(stage!.layout.size);
      pending.clear();
      return {};
    case 'forward': {
      const x = input(m);
      if (m.kept !== undefined && keep.items > 0) {
        releaseKept(m.kept);
        const before = tf.memory().numBytes;
        const r = stage!.forwardKept(x); // takes x
        const bytes = tf.memory().numBytes - before; // the tape's saved tensors and the output
        kept.set(m.kept, { f: r.kept, bytes });
        keptBytes += bytes;
        // read before the limits apply: one forward over the byte budget is not kept at all
        const y = { y: Float32Array.from(readNow(r.y)), shape: r.y.shape };
        while (kept.size > keep.items || keptBytes > keep.bytes)
          releaseKept(kept.keys().next().value);
        return y;
      }
      const y = stage!.forward(x);
      const out = Float32Array.from(await y.data());
      tf.dispose([x, y]);
      return { y: out, shape: y.shape };
    }
    case 'release':
      releaseKept(m.kept!);
      return {};
    case 'backward': {
      if (m.kept !== undefined) {
        const f = takeKept(m.kept);
        if (!f) return { missing: true };
        const dy = tf.tensor3d(m.dy!, m.dyShape as [number, number, number], 'float32');
        const g = new Float32Array(stage!.layout.size);
        let dx: tf.Tensor | null;
        try {
          dx = stage!.backwardKept(f, dy, g);
        } finally {
          dy.dispose();
        }
        pending.set(m.key!, g);
        const out = dx ? Float32Array.from(readNow(dx)) : undefined;
        dx?.dispose();
        return { dx: out, shape: dx?.shape };
      }
      const x = input(m);
      const dy = tf.tensor3d(m.dy!, m.dyShape as [number, number, number], 'float32');
      const g = weightGrads(m) ? new Float32Array(stage!.layout.size) : undefined;
      const dx = stage!.backward(x, dy, g);
      if (g) pending.set(m.key!, g);
      const out = dx ? Float32Array.from(await dx.data()) : undefined;
      tf.dispose([x, dy, ...(dx ? [dx] : [])]);
      return { dx: out, shape: dx?.shape };
    }
    case 'tail': {
      const x = input(m);
      const targets = tf.tensor2d(m.targets!, [m.shape[0], m.shape[1]], 'int32');
      const g = weightGrads(m) ? new Float32Array(stage!.layout.size) : undefined;
      const r = stage!.tailStep(x, targets, g, m.grads ?? 'all');
      if (g) pending.set(m.key!, g);
      const out = r.dx ? Float32Array.from(await r.dx.data()) : undefined;
      const shape = r.dx?.shape;
      tf.dispose([x, targets, ...(r.dx ? [r.dx] : [])]);
      return { losses: r.losses, dx: out, shape };
    }
    case 'commit': {
      const g = pending.get(m.key!);
      pending.delete(m.key!);
      if (g) for (let i = 0; i < g.length; i++) sum![i] += g[i];
      return { committed: g !== undefined };
    }
    case 'discard':
      pending.delete(m.key!);
      return {};
    case 'sum':
      return { sum: Float32Array.from(sum!) };
  }
}

parentPort!.on('message', (m: ComputeRequest) => {
  handle(m).then(
    (r) => parentPort!.postMessage({ id: m.id, ...r }),
    (e) =>
      parentPort!.postMessage({
        id: m.id,
        error: { code: isIotaError(e) ? e.code : 'E_COMPUTE', message: (e as Error).message },
      }),
  );
});
