import type { ScheduleConfig } from '../../../src/config/index.js';
import {
  adamwUpdate,
  clipFactor,
  meanGradient,
  sumOfSquares,
  type AdamWSettings,
} from '../../../src/model/optimizer.js';
import type { ParamSpec } from '../../../src/model/params.js';
import { learningRate } from '../../../src/model/schedule.js';

// A matrix of two elements followed by a norm of one.
const params: ParamSpec[] = [
  { name: 'm.weight', shape: [1, 2], kind: 'matrix', offset: 0, size: 2 },
  { name: 'n.weight', shape: [1], kind: 'norm', offset: 2, size: 1 },
];
const adamw: AdamWSettings = { lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

function target(w: number[], g: number[], m = [0, 0, 0], v = [0, 0, 0]) {
  return {
    w: Float32Array.from(w),
    g: Float32Array.from(g),
    m: Float32Array.from(m),
    v: Float32Array.from(v),
    offset: 0,
  };
}

describe('gradient clipping', () => {
  it('scales the global norm down to the bound, never up, and not at all when off', () => {
    const g = Float32Array.from([0.3, -0.4, 1.2]); // norm 1.3
    expect(Math.sqrt(sumOfSquares(g))).toBeCloseTo(1.3, 6);
    expect(clipFactor(1.3, 1)).toBeCloseTo(1 / 1.300001, 12);
    expect(clipFactor(1.3, 2)).toBe(1);
    expect(clipFactor(1.3, 0)).toBe(1);
  });

  it('takes the mean of a gradient sum with one rounding', () => {
    expect(Array.from(meanGradient(Float32Array.from([3, -1.5, 0]), 3))).toEqual([1, -0.5, 0]);
  });
});

describe('AdamW', () => {
  it('decays matrices only: a zero gradient shrinks the matrix by 1 - lr * wd and leaves the norm', () => {
    const t = target([1, -2, 0.5], [0, 0, 0]);
    adamwUpdate(t, params, adamw, 1, 1);
    expect(Array.from(t.w)).toEqual([Math.fround(0.999), Math.fround(-1.998), 0.5]);
  });

  it('at t = 1 moves each weight by lr in the direction against its clipped gradient', () => {
    const t = target([1, -2, 0.5], [0.3, -0.4, 1.2]);
    adamwUpdate(t, params, adamw, 1, clipFactor(1.3, 1));
    // bias correction makes m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps)
    expect(t.w[0]).toBeCloseTo(0.999 - 0.01, 6);
    expect(t.w[1]).toBeCloseTo(-1.998 + 0.01, 6);
    expect(t.w[2]).toBeCloseTo(0.5 - 0.01, 6);
    // moments hold the clipped gradient: m = 0.1 g', v = 0.05 g'^2 with g' = g / 1.300001
    expect(t.m[2]).toBeCloseTo(0.1 * (1.2 / 1.300001), 7);
    expect(t.v[0]).toBeCloseTo(0.05 * (0.3 / 1.300001) ** 2, 9);
  });

  it('applies bias correction at t = 5 as computed by hand', () => {
    // m = 0.9*0.2 + 0.1*0.1 = 0.19, v = 0.95*0.01 + 0.05*0.01 = 0.01,
    // w = 0.7*(1 - 0.001) - (0.01 / (1 - 0.9^5)) * 0.19 / (sqrt(0.01) / sqrt(1 - 0.95^5) + 1e-8)
    const t = target([0.7, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [0.01, 0, 0]);
    adamwUpdate(t, params, adamw, 5, 1);
    expect(t.m[0]).toBe(Math.fround(0.19));
    expect(t.v[0]).toBe(Math.fround(0.01));
    expect(t.w[0]).toBe(Math.fround(0.6772324729317064));
  });

  it('gives the same bytes on a partition as on the whole vector', () => {
    const n = 3;
    const whole = target([1, -2, 0.5], [0.3, -0.4, 1.2], [0.01, 0.02, 0.03], [0.001, 0.002, 0.003]);
    const copy = { w: whole.w.slice(), g: whole.g.slice(), m: whole.m.slice(), v: whole.v.slice() };
    adamwUpdate(whole, params, adamw, 3, 0.9);
    for (const [a, b] of [
      [0, 1],
      [1, n],
    ]) {
      const part = {
        w: copy.w.slice(a, b),
        g: copy.g.slice(a, b),
        m: copy.m.slice(a, b),
        v: copy.v.slice(a, b),
        offset: a,
      };
      adamwUpdate(part, params, adamw, 3, 0.9);
      expect(Array.from(part.w)).toEqual(Array.from(whole.w.slice(a, b)));
      expect(Array.from(part.v)).toEqual(Array.from(whole.v.slice(a, b)));
    }
  });
});

describe('learning-rate schedule', () => {
  const s: ScheduleConfig = {
    kind: 'cosine',
    warmup_epochs: 4,
    constant_epochs: 2,
    total_epochs: 20,
    final_factor: 0.1,
    cycle_epochs: 4,
  };

  it('warms up linearly from the first epoch', () => {
    expect(learningRate(0, 1, s)).toBe(0.25);
    expect(learningRate(3, 1, s)).toBe(1);
  });

  it('holds the peak in the constant phase', () => {
    expect(learningRate(5, 2, s)).toBe(2);
  });

  it('is halfway down the cosine mid-decay and near the floor in the tail', () => {
    // decay runs over epochs 6..20; epoch 13 is p = 0.5 -> 0.1 + 0.9 * 0.5
    expect(learningRate(13, 1, s)).toBeCloseTo(0.55, 12);
    // epoch 19: p = 13/14 -> 0.1 + 0.45 * (1 + cos(13 pi / 14))
    expect(learningRate(19, 1, s)).toBeCloseTo(0.11128243951817933, 12);
  });

  it('stays at the final factor past the total', () => {
    expect(learningRate(20, 1, s)).toBeCloseTo(0.1, 12);
    expect(learningRate(1000, 3, s)).toBeCloseTo(0.3, 12);
  });

  it('multiplies in a restarting cosine for the saw-tooth, and never decays when constant', () => {
    // epoch 13: macro 0.55; (13 - 6) mod 4 = 3 -> micro 0.1 + 0.45 * (1 + cos(0.75 pi))
    expect(learningRate(13, 1, { ...s, kind: 'sawtooth' })).toBeCloseTo(0.12749107165632953, 12);
    expect(learningRate(1000, 1, { ...s, kind: 'constant' })).toBe(1);
    expect(() => learningRate(-1, 1, s)).toThrow(RangeError);
  });
});
