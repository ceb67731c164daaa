/**
 * The learning rate as a pure function of the epoch (one optimizer step per epoch):
 *   warm-up   epochs [0, W):          lr * (E + 1) / W
 *   constant  epochs [W, W + C):      lr
 *   decay     epochs [W + C, T):      cosine from lr to lr * final_factor, or IOTA's saw-tooth
 *                                     (that cosine times a cosine restarting every cycle_epochs)
 *   after     epochs >= T:            lr * final_factor
 * With kind 'constant' the rate stays at lr after warm-up.
 */
import type { ScheduleConfig } from '../config/run.js';

export function learningRate(epoch: number, peak: number, s: ScheduleConfig): number {
  if (!Number.isInteger(epoch) || epoch < 0)
    throw new RangeError(`epoch must be a non-negative integer, got ${epoch}`);
  if (epoch < s.warmup_epochs) return (peak * (epoch + 1)) / s.warmup_epochs;
  if (s.kind === 'constant') return peak;
  const decayStart = s.warmup_epochs + s.constant_epochs;
  if (epoch < decayStart) return peak;
  if (epoch >= s.total_epochs) return peak * s.final_factor;
  const progress = (epoch - decayStart) / (s.total_epochs - decayStart);
  const macro = cosineFactor(progress, s.final_factor);
  if (s.kind === 'cosine') return peak * macro;
  const inCycle = ((epoch - decayStart) % s.cycle_epochs) / s.cycle_epochs;
  return peak * macro * cosineFactor(inCycle, s.final_factor);
}

/** 1 at p = 0 falling to `floor` at p = 1 along half a cosine. */
function cosineFactor(p: number, floor: number): number {
  return floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * p));
}
