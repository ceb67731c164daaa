/**
 * A work item's inputs as a stage takes them: token windows (head and tail, read by exact
 * Range and checked against their sha256) and activations (checked for hash, dtype, shape,
 * size and finiteness). Miners and validators read them the same way.
 */
import type { ModelConfig } from '../config/model.js';
import { readWindow } from '../data/windows.js';
import { download, type TransferOptions } from '../store/index.js';
import type { StageInput } from './compute.js';
import { decodeActivation } from './tensors.js';

interface Ref {
  url?: string;
  sha256: string;
  size: number;
}
interface Window {
  url?: string;
  start: number;
  end: number;
  sha256: string;
}

export interface ItemInputs {
  input: StageInput;
  /** token targets [n * seq] (the tail) */
  targets?: Int32Array;
  /** output gradient [n, seq, B] (backwards) */
  dy?: Float32Array;
  /** the activation shape [n, seq, B] of this stage's inputs and outputs */
  shape: [number, number, number];
}

export async function fetchActivation(
  ref: Ref,
  shape: [number, number, number],
  transfer?: TransferOptions,
  onBytes: (n: number) => void = () => {},
): Promise<Float32Array> {
  const bytes = await download(ref.url!, { sha256: ref.sha256, size: ref.size }, transfer);
  onBytes(bytes.length);
  return decodeActivation(bytes, shape);
}

/** The token windows (seq + 1 tokens each), read by exact Range and checked against their sha256. */
export async function fetchWindows(
  ws: readonly Window[],
  model: ModelConfig,
  transfer?: TransferOptions,
  onBytes: (n: number) => void = () => {},
): Promise<Int32Array[]> {
  const out: Int32Array[] = [];
  for (const w of ws) {
    const bytes = await download(
      w.url!,
      { range: { start: w.start, end: w.end }, rangeSha256: w.sha256 },
      transfer,
    );
    onBytes(bytes.length);
    out.push(
      readWindow(bytes, (w.end - w.start) / (model.seq + 1) === 4 ? 4 : 2, {
        expectTokens: model.seq + 1,
        vocabSize: model.vocab_size,
      }),
    );
  }
  return out;
}

/** Reads what an item of `kind` at `stage` needs; throws an IotaError when an input is bad. */
export async function fetchInputs(
  it: {
    stage: number;
    kind: 'fwd' | 'bwd' | 'tail';
    samples: number[];
    windows?: Window[];
    x?: Ref;
    dy?: Ref;
  },
  model: ModelConfig,
  transfer?: TransferOptions,
  onBytes: (n: number) => void = () => {},
): Promise<ItemInputs> {
  const seq = model.seq;
  const n = it.samples.length;
  const shape: [number, number, number] = [n, seq, model.bottleneck];
  let input: StageInput;
  let targets: Int32Array | undefined;
  const needTargets = it.kind === 'tail';
  if (it.stage === 0) {
    const win = await fetchWindows(it.windows ?? [], model, transfer, onBytes);
    const tokens = new Int32Array(n * seq);
    targets = new Int32Array(n * seq);
    win.forEach((w, i) => {
      tokens.set(w.subarray(0, seq), i * seq);
      targets!.set(w.subarray(1), i * seq);
    });
    input = { tokens, shape: [n, seq] };
  } else {
    input = { x: await fetchActivation(it.x!, shape, transfer, onBytes), shape };
    if (needTargets) {
      const win = await fetchWindows(it.windows ?? [], model, transfer, onBytes);
      targets = new Int32Array(n * seq);
      win.forEach((w, i) => targets!.set(w.subarray(1), i * seq));
    }
  }
  const dy =
    it.kind === 'bwd' ? await fetchActivation(it.dy!, shape, transfer, onBytes) : undefined;
  return { input, targets: needTargets ? targets : undefined, dy, shape };
}

/** A backward item's output gradient alone (its forward kept where it ran): dy and its shape. */
export async function fetchOutputGradient(
  it: { samples: number[]; dy?: Ref },
  model: ModelConfig,
  transfer?: TransferOptions,
  onBytes: (n: number) => void = () => {},
): Promise<{ dy: Float32Array; shape: [number, number, number] }> {
  const shape: [number, number, number] = [it.samples.length, model.seq, model.bottleneck];
  return { dy: await fetchActivation(it.dy!, shape, transfer, onBytes), shape };
}

/**
 * The name a forward is kept under for its backward: the item, its epoch, and the hashes of
 * its input (the backward item carries the forward's input refs), so a backward uses a kept
 * forward only when both read the same bytes.
 */
export function keptName(it: {
  epoch: number;
  stage: number;
  item: number;
  x?: Ref;
  windows?: Window[];
}): string {
  const input = it.x ? it.x.sha256 : (it.windows ?? []).map((w) => w.sha256).join(',');
  return `${it.epoch}/${it.stage}/${it.item}/${input}`;
}
