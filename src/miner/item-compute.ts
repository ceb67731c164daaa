/**
 * A work item's compute on a miner: its inputs read, then the forward (kept for its backward,
 * unless the miner recomputes), the tail's step, or the backward, which uses the kept forward
 * where this miner ran it and recomputes it otherwise (dropped, new weights, or the forward
 * ran on a miner since gone).
 */
import type { ModelConfig } from '../config/model.js';
import { totalmem } from 'node:os';
import type { Compute, KeepLimits } from '../compute/compute.js';
import { fetchInputs, fetchOutputGradient, keptName } from '../compute/inputs.js';
import type { WorkItemMessage } from '../protocol/swarm-messages.js';
import type { TransferOptions } from '../store/index.js';
import type { Stopwatch } from './timing.js';

export interface ItemOutput {
  /** the activation (forward) or input gradient (backward, tail) to upload, if any */
  out?: Float32Array;
  /** the tail's per-sample losses */
  losses?: number[];
  /** the activation shape [n, seq, B] */
  act: [number, number, number];
  /** the name its forward is kept under (a forward's: release it if the item is lost) */
  kept?: string;
  /** a backward that ran its forward again (not kept here, or the miner recomputes) */
  recomputed?: boolean;
}

export interface ItemContext {
  compute: Compute;
  clock: Stopwatch;
  model: ModelConfig;
  transfer?: TransferOptions;
  recompute?: boolean;
  onBytes: (n: number) => void;
  /** reads inputs; null when they are bad or out of reach (the caller said so already) */
  fetch: <T>(get: () => Promise<T>) => Promise<T | null>;
}

/**
 * Forwards kept for their backwards: at most the items the run lets a miner hold, and at most
 * min(1 GiB, an eighth of the machine's memory) in all (a forward over that recomputes).
 */
export function keepLimits(inFlight: number, recompute = false): KeepLimits {
  if (recompute) return { items: 0, bytes: 0 };
  return { items: inFlight, bytes: Math.min(2 ** 30, totalmem() / 8) };
}

/** The item's output, or null when its inputs could not be used. */
export async function computeItem(it: WorkItemMessage, c: ItemContext): Promise<ItemOutput | null> {
  const kept = c.recompute || it.kind === 'tail' ? undefined : keptName(it);
  const inputs = () => c.fetch(() => fetchInputs(it, c.model, c.transfer, c.onBytes));
  const backward = <T>(p: Promise<T>) => c.clock.time('backward_ms', p);
  if (it.kind === 'bwd' && kept) {
    const g = await c.fetch(() => fetchOutputGradient(it, c.model, c.transfer, c.onBytes));
    if (!g) return null;
    const r = await backward(c.compute.backwardKept(it.lease, kept, g.dy, g.shape));
    if (r) return { out: r.dx, act: g.shape };
    const all = await inputs();
    if (!all) return null;
    const dx = (await backward(c.compute.backward(it.lease, all.input, g.dy, g.shape))).dx;
    return { out: dx, act: g.shape, recomputed: true };
  }
  const all = await inputs();
  if (!all) return null;
  const { input, targets, dy, shape: act } = all;
  if (it.kind === 'fwd')
    return { out: (await c.clock.time('forward_ms', c.compute.forward(input, kept))).y, act, kept };
  if (it.kind === 'tail') {
    const r = await c.clock.time('tail_ms', c.compute.tail(it.lease, input, targets!));
    return { out: r.dx, losses: Array.from(r.losses), act };
  }
  const dx = (await backward(c.compute.backward(it.lease, input, dy!, act))).dx;
  return { out: dx, act, recomputed: true };
}
