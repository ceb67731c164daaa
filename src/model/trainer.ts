/**
 * Single-process training: every stage in one process, one optimizer step per epoch over
 * `samples_per_epoch` samples, exactly the semantics the swarm reproduces (DESIGN.md section 3):
 * per-stage gradient sums over all samples, g = fround(sum / N), clipped by the stage's global
 * norm, AdamW with t = epoch + 1 and lr(epoch). `iota train` runs it; it is the swarm's oracle.
 */
import * as tf from '@tensorflow/tfjs';
import type { OptimizerConfig, ScheduleConfig } from '../config/run.js';
import { IotaError } from '../errors.js';
import { crossEntropySum } from './layers.js';
import { Model } from './model.js';
import {
  adamwUpdate,
  clipFactor,
  meanGradient,
  sumOfSquares,
  type AdamWSettings,
} from './optimizer.js';
import type { Stage } from './stage.js';
import { learningRate } from './schedule.js';

export interface TrainerSettings {
  optimizer: OptimizerConfig;
  schedule: ScheduleConfig;
  /** samples per micro-batch: memory, not semantics */
  batch: number;
}

export interface OptimizerState {
  epoch: number;
  m: Float32Array[];
  v: Float32Array[];
}

export interface StepResult {
  epoch: number;
  /** mean over the step's samples of each sample's mean cross-entropy */
  loss: number;
  lr: number;
  /** per stage: norm of the mean gradient before clipping, and the clip factor applied */
  gradNorms: number[];
  clipFactors: number[];
  samples: number;
  tokens: number;
}

export class Trainer {
  readonly state: OptimizerState;

  constructor(
    readonly model: Model,
    readonly settings: TrainerSettings,
    state?: OptimizerState,
  ) {
    const sizes = model.stages.map((s) => s.layout.size);
    if (
      state &&
      (state.m.length !== sizes.length ||
        state.m.some((m, i) => m.length !== sizes[i] || state.v[i].length !== sizes[i]))
    ) {
      throw new IotaError('E_BAD_CHECKPOINT', 'optimizer state does not match the model shapes');
    }
    this.state = state ?? {
      epoch: 0,
      m: sizes.map((n) => new Float32Array(n)),
      v: sizes.map((n) => new Float32Array(n)),
    };
  }

  get epoch(): number {
    return this.state.epoch;
  }

  /** One optimizer step over `samples`, each seq + 1 tokens (inputs and shifted targets). */
  step(samples: Int32Array[]): StepResult {
    if (samples.length === 0)
      throw new IotaError('E_NO_SAMPLES', 'a training step needs at least one sample');
    const seq = samples[0].length - 1;
    const gradSums = this.model.stages.map((s) => new Float32Array(s.layout.size));
    let lossSum = 0;
    for (let i = 0; i < samples.length; i += this.settings.batch) {
      const chunk = samples.slice(i, i + this.settings.batch);
      const [ids, targets] = batchTensors(chunk, seq);
      lossSum += this.model.lossAndGrads(ids, targets, gradSums);
      tf.dispose([ids, targets]);
    }
    const epoch = this.state.epoch;
    const o = this.settings.optimizer;
    const lr = learningRate(epoch, o.lr, this.settings.schedule);
    const gradNorms: number[] = [];
    const clipFactors: number[] = [];
    const adamw = { lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weight_decay };
    this.model.stages.forEach((stage, i) => {
      const { norm, factor } = optimizerStep(
        stage,
        gradSums[i],
        samples.length,
        this.state.m[i],
        this.state.v[i],
        adamw,
        epoch + 1,
        o.clip,
      );
      gradNorms.push(norm);
      clipFactors.push(factor);
    });
    this.state.epoch = epoch + 1;
    return {
      epoch,
      loss: lossSum / samples.length,
      lr,
      gradNorms,
      clipFactors,
      samples: samples.length,
      tokens: samples.length * seq,
    };
  }

  /** Mean loss over samples without training (held-out evaluation). */
  evaluate(samples: Int32Array[]): number {
    let total = 0;
    for (let i = 0; i < samples.length; i += this.settings.batch) {
      const chunk = samples.slice(i, i + this.settings.batch);
      const [ids, targets] = batchTensors(chunk, samples[0].length - 1);
      const logits = this.model.logits(ids);
      const loss = tf.tidy(() => crossEntropySum(logits, targets));
      total += loss.dataSync()[0];
      tf.dispose([ids, targets, logits, loss]);
    }
    return total / samples.length;
  }
}

/**
 * One stage's optimizer step from its gradient sum over n samples: the mean gradient, clipped by
 * the stage's global norm, then AdamW on the stage's weights and the moments m, v (in place).
 */
export function optimizerStep(
  stage: Stage,
  gradSum: Float32Array,
  n: number,
  m: Float32Array,
  v: Float32Array,
  adamw: AdamWSettings,
  step: number,
  clip: number,
): { norm: number; factor: number } {
  const g = meanGradient(gradSum, n);
  const norm = Math.sqrt(sumOfSquares(g));
  const factor = clipFactor(norm, clip);
  const inPlace = stage.weightsInPlace();
  const w = inPlace ?? stage.getWeights();
  adamwUpdate({ w, g, m, v, offset: 0 }, stage.layout.params, adamw, step, factor);
  if (!inPlace) stage.setWeights(w);
  return { norm, factor };
}

/** ids = tokens[0..seq), targets = tokens[1..seq], as int32 [b, seq] tensors. */
export function batchTensors(samples: Int32Array[], seq: number): [tf.Tensor2D, tf.Tensor2D] {
  const ids = new Int32Array(samples.length * seq);
  const targets = new Int32Array(samples.length * seq);
  samples.forEach((s, i) => {
    if (s.length !== seq + 1)
      throw new IotaError(
        'E_BAD_SAMPLE',
        `sample ${i} has ${s.length} tokens, expected ${seq + 1}`,
      );
    ids.set(s.subarray(0, seq), i * seq);
    targets.set(s.subarray(1), i * seq);
  });
  return [
    tf.tensor2d(ids, [samples.length, seq], 'int32'),
    tf.tensor2d(targets, [samples.length, seq], 'int32'),
  ];
}
