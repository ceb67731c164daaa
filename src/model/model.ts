/**
 * All stages of a model in one process: one graph from token ids to loss, bottlenecks in
 * place. `iota train` uses it, and it is the oracle the pipelined stages are tested against.
 */
import * as tf from '@tensorflow/tfjs';
import { stageSpecs, type ModelConfig } from '../config/model.js';
import type { Params } from './block.js';
import { stageForward } from './forward.js';
import { crossEntropySum } from './layers.js';
import { Stage } from './stage.js';

export class Model {
  constructor(
    readonly config: ModelConfig,
    readonly stages: Stage[],
  ) {}

  static initial(config: ModelConfig, seed: number | string): Model {
    return new Model(
      config,
      stageSpecs(config).map((_, i) => Stage.initial(config, i, seed)),
    );
  }

  /** ids int32 [b, s] -> logits [b, s, V]; caller disposes. */
  logits(ids: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      let x: tf.Tensor = ids;
      for (const s of this.stages) x = s.forward(x);
      return x as tf.Tensor3D;
    });
  }

  /**
   * Loss summed over the batch (each sample's mean cross-entropy) and its gradient, added into
   * one flat accumulator per stage.
   */
  lossAndGrads(ids: tf.Tensor2D, targets: tf.Tensor2D, gradSums: Float32Array[]): number {
    const layouts = this.stages.map((s) => s.layout.params.map((p) => p.name));
    const counts = layouts.map((l) => l.length);
    const seq = ids.shape[1];
    const ctxs = this.stages.map((s) => s.context(seq));
    const value = tf.tidy(() => {
      const f = (...xs: tf.Tensor[]) => {
        let x: tf.Tensor = ids;
        let k = 0;
        this.stages.forEach((s, i) => {
          const p: Params = {};
          layouts[i].forEach((n, j) => (p[n] = xs[k + j]));
          k += counts[i];
          x = stageForward(s.spec, p, x, ctxs[i]);
        });
        return crossEntropySum(x as tf.Tensor3D, targets);
      };
      const args = this.stages.flatMap((s) => s.paramTensors());
      const { value, grads } = tf.valueAndGrads(f)(args);
      let k = 0;
      this.stages.forEach((s, i) => {
        s.accumulate(grads.slice(k, k + counts[i]), gradSums[i]);
        k += counts[i];
      });
      return value;
    });
    const loss = value.dataSync()[0];
    value.dispose();
    return loss;
  }

  dispose(): void {
    for (const s of this.stages) s.dispose();
  }
}
