/**
 * The orchestrator's own look at a task's inputs, when a miner refuses them: it reads what the
 * miner was given from the store and tests it as a miner does (hash, size, dtype, shape,
 * finiteness; token windows by hash and vocabulary). A refusal is upheld only when an input
 * really is bad, and then the input's producer is named; otherwise the refuser was wrong.
 */
import type { ModelConfig } from '../../config/model.js';
import { decodeActivation } from '../../compute/tensors.js';
import { readWindow } from '../../data/windows.js';
import { isIotaError } from '../../errors.js';
import type { ObjectStore } from '../../store/index.js';
import { sha256Hex } from '../../tensor-io/hash.js';
import type { ObjectRef, TaskRow, WindowRef } from '../state/swarm.js';

export type InputCheck = { ok: true } | { ok: false; input: 'x' | 'dy' | 'windows'; why: string };

export async function checkTaskInputs(
  store: ObjectStore,
  model: ModelConfig,
  t: Pick<TaskRow, 'n' | 'input'>,
): Promise<InputCheck> {
  const shape: [number, number, number] = [t.n, model.seq, model.bottleneck];
  for (const [input, ref] of [
    ['x', t.input.x],
    ['dy', t.input.dy],
  ] as const) {
    if (!ref) continue;
    const why = await badActivation(store, ref, shape);
    if (why) return { ok: false, input, why };
  }
  for (const w of t.input.windows ?? []) {
    const why = await badWindow(store, w, model);
    if (why) return { ok: false, input: 'windows', why };
  }
  return { ok: true };
}

/** Why an activation is bad, or undefined when it is good. */
async function badActivation(
  store: ObjectStore,
  ref: ObjectRef,
  shape: [number, number, number],
): Promise<string | undefined> {
  return readAndCheck(async () => {
    const bytes = await store.get(ref.key);
    if (bytes.length !== ref.size) return `${ref.key} is ${bytes.length} bytes, not ${ref.size}`;
    if (sha256Hex(bytes) !== ref.sha256) return `${ref.key} does not match its sha256`;
    decodeActivation(bytes, shape);
    return undefined;
  });
}

async function badWindow(
  store: ObjectStore,
  w: WindowRef,
  model: ModelConfig,
): Promise<string | undefined> {
  return readAndCheck(async () => {
    const bytes = await store.get(w.key, { start: w.start, end: w.end });
    if (sha256Hex(bytes) !== w.sha256) return `a window of ${w.key} does not match its sha256`;
    const bytesPerToken = (w.end - w.start) / (model.seq + 1);
    readWindow(bytes, bytesPerToken === 4 ? 4 : 2, {
      expectTokens: model.seq + 1,
      vocabSize: model.vocab_size,
    });
    return undefined;
  });
}

/** A check's finding; an input that cannot be read or decoded is bad (its code says why). */
async function readAndCheck(check: () => Promise<string | undefined>): Promise<string | undefined> {
  try {
    return await check();
  } catch (e) {
    if (!isIotaError(e)) throw e;
    return `${e.code}: ${e.message}`;
  }
}
