/**
 * A pipeline stage with its weights, as every role uses it: forward, backward by recompute
 * (re-running the forward inside tf.grads), a forward that keeps its tape for a backward without
 * the recompute (kept-tape.ts), and the tail's forward + loss + backward in one call. Gradients
 * are added into a flat Float32Array in the stage layout's order (params.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { isFloat32Array } from 'node:util/types';
import { stageSpecs, type ModelConfig, type StageSpec } from '../config/model.js';
import { IotaError } from '../errors.js';
import { readNow, storedValues } from '../kernels/native/backend.js';
import { loadedNative } from '../kernels/native/loader.js';
import { decodeSafetensors, encodeSafetensors, type TensorEntry } from '../tensor-io/index.js';
import type { Params } from './block.js';
import { StageConstants, stageForward } from './forward.js';
import { initialWeights } from './init.js';
import { KeptTape } from './kept-tape.js';
import { crossEntropyPerSample } from './layers.js';
import { stageLayout, stageMetadata, type StageLayout } from './params.js';

export interface TailResult {
  /** sum over the batch of each sample's mean cross-entropy */
  lossSum: number;
  /** per-sample losses */
  losses: Float32Array;
  /** gradient with respect to the stage input, [b, s, B]; null for a single-stage model */
  dx: tf.Tensor | null;
}

/** A forward kept for its backward: its input, the weights it read, and its tape. */
export interface KeptForward {
  readonly input: tf.Tensor;
  readonly tape: KeptTape;
  /** the weights' version it ran on: a backward after new weights would be wrong */
  readonly version: number;
}

export class Stage {
  readonly layout: StageLayout;
  private params: Params = {};
  /** the weights the tensors were made from (setWeights' own copy) */
  private flat: Float32Array | undefined;
  private constants = new Map<number, StageConstants>();
  /** bumped by every setWeights: a kept forward is good only for the weights it ran on */
  private version = 0;

  constructor(
    readonly config: ModelConfig,
    readonly spec: StageSpec,
    weights: Float32Array,
  ) {
    this.layout = stageLayout(config, spec);
    this.setWeights(weights);
  }

  /** The seeded epoch-0 weights of stage `index`. */
  static initial(config: ModelConfig, index: number, seed: number | string): Stage {
    const spec = stageSpecs(config)[index];
    return new Stage(config, spec, initialWeights(stageLayout(config, spec), seed));
  }

  setWeights(flat: Float32Array): void {
    if (!isFloat32Array(flat) || flat.length !== this.layout.size) {
      throw new IotaError(
        'E_BAD_WEIGHTS',
        `stage ${this.spec.index} needs ${this.layout.size} float32 weights, got ${flat.length}`,
      );
    }
    // One copy, whose slices the weight tensors are: backends that keep a tensor's array as
    // given (cpu, native) then share it, and weightsInPlace can hand it out.
    const own = Float32Array.from(flat);
    const next: Params = {};
    for (const p of this.layout.params)
      next[p.name] = tf.keep(
        tf.tensor(own.subarray(p.offset, p.offset + p.size), p.shape, 'float32'),
      );
    this.disposeParams();
    this.params = next;
    this.flat = own;
    this.version++;
  }

  /**
   * The array the weight tensors read, to update in place (an optimizer step without copying
   * the weights out and tensors back in); undefined where the backend holds copies (wasm, or
   * tensors moved to another backend since), and the caller then uses getWeights/setWeights.
   */
  weightsInPlace(): Float32Array | undefined {
    const flat = this.flat;
    if (!flat) return undefined;
    for (const p of this.layout.params) {
      const values = storedValues(this.params[p.name]);
      if (
        !isFloat32Array(values) ||
        values.buffer !== flat.buffer ||
        values.byteOffset !== flat.byteOffset + p.offset * 4
      )
        return undefined;
    }
    return flat;
  }

  getWeights(): Float32Array {
    const flat = new Float32Array(this.layout.size);
    for (const p of this.layout.params)
      flat.set(this.params[p.name].dataSync() as Float32Array, p.offset);
    return flat;
  }

  /** Input ids int32 [b, s] (head) or activations [b, s, B]; returns the stage output, to be disposed by the caller. */
  forward(input: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() =>
      stageForward(this.spec, this.params, input, this.context(input.shape[1] as number)),
    );
  }

  /**
   * Forward that keeps its tape (a miner's forward, whose backward comes back to it): returns
   * the output (owned by the kept state: read it, do not dispose it) and the state for
   * `backwardKept`, which takes ownership of `input`. Release it with `releaseKept` when no
   * backward comes.
   */
  forwardKept(input: tf.Tensor): { y: tf.Tensor; kept: KeptForward } {
    const ctx = this.context(input.shape[1] as number);
    const tape = KeptTape.record(() => stageForward(this.spec, this.params, input, ctx));
    return { y: tape.y, kept: { input, tape, version: this.version } };
  }

  /**
   * `backward` from a kept forward, without running the forward again: the same values bit for
   * bit. Consumes `kept`; refuses one from before the latest setWeights.
   */
  backwardKept(kept: KeptForward, dy: tf.Tensor, gradSum?: Float32Array): tf.Tensor | null {
    if (kept.version !== this.version) {
      this.releaseKept(kept);
      throw new IotaError('E_STALE_FORWARD', 'the kept forward ran on weights since replaced');
    }
    const withInput = !this.spec.hasEmbedding;
    const params = this.paramTensors();
    try {
      const out = tf.tidy(() => {
        const grads = kept.tape.backward(withInput ? [kept.input, ...params] : params, dy);
        if (gradSum) this.accumulate(withInput ? grads.slice(1) : grads, gradSum);
        return withInput ? [grads[0]] : [];
      });
      return out[0] ?? null;
    } finally {
      kept.input.dispose();
    }
  }

  releaseKept(kept: KeptForward): void {
    kept.tape.release();
    kept.input.dispose();
  }

  /**
   * Backward of a non-tail stage for output gradient dy: adds the parameter gradients into
   * `gradSum` and returns the input gradient (null for the head, whose input is token ids).
   * Without `gradSum` only the input gradient is computed (a validator's replay compares that
   * alone): the weights' gradients, a third of the work, are never formed.
   */
  backward(input: tf.Tensor, dy: tf.Tensor, gradSum?: Float32Array): tf.Tensor | null {
    const ctx = this.context(input.shape[1] as number);
    const names = this.layout.params.map((p) => p.name);
    const withInput = !this.spec.hasEmbedding;
    if (!gradSum) {
      if (!withInput) return null;
      return tf.tidy(() => {
        const f = (x: tf.Tensor) =>
          tf.sum(tf.mul(stageForward(this.spec, this.params, x, ctx), dy));
        return tf.grad(f)(input);
      });
    }
    const kept = tf.tidy(() => {
      const f = (...xs: tf.Tensor[]) => {
        const p = this.paramsFrom(names, withInput ? xs.slice(1) : xs);
        return tf.sum(tf.mul(stageForward(this.spec, p, withInput ? xs[0] : input, ctx), dy));
      };
      const args = names.map((n) => this.params[n]);
      const grads = tf.grads(f)(withInput ? [input, ...args] : args);
      this.accumulate(withInput ? grads.slice(1) : grads, gradSum);
      return withInput ? [grads[0]] : [];
    });
    return kept[0] ?? null;
  }

  /**
   * Tail: forward, loss against `targets` int32 [b, s], and backward at once (one forward).
   * `grads`: 'all' adds the parameter gradients into `gradSum` and returns the input gradient;
   * 'input' returns the input gradient only (a validator's replay); 'none' only the losses (an
   * evaluation).
   */
  tailStep(
    input: tf.Tensor,
    targets: tf.Tensor2D,
    gradSum?: Float32Array,
    grads: 'all' | 'input' | 'none' = 'all',
  ): TailResult {
    if (!this.spec.hasHead)
      throw new IotaError('E_NOT_TAIL', `stage ${this.spec.index} has no LM head`);
    if (grads === 'all' && !gradSum)
      throw new IotaError('E_BAD_WEIGHTS', 'a tail step with parameter gradients needs gradSum');
    const ctx = this.context(input.shape[1] as number);
    const names = this.layout.params.map((p) => p.name);
    const withInput = !this.spec.hasEmbedding;
    let perSample: tf.Tensor | undefined;
    const [value, dx] = tf.tidy(() => {
      const loss = (x: tf.Tensor, p: Params) => {
        const per = crossEntropyPerSample(stageForward(this.spec, p, x, ctx), targets);
        perSample = tf.keep(per.clone()); // the per-sample losses, kept past the gradient's tidy
        return tf.sum(per) as tf.Scalar;
      };
      if (grads === 'none' || (grads === 'input' && !withInput)) return [loss(input, this.params)];
      if (grads === 'input') {
        const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => loss(x, this.params))(input);
        return [value, grad];
      }
      const f = (...xs: tf.Tensor[]) =>
        loss(withInput ? xs[0] : input, this.paramsFrom(names, withInput ? xs.slice(1) : xs));
      const args = names.map((n) => this.params[n]);
      const { value, grads: g } = tf.valueAndGrads(f)(withInput ? [input, ...args] : args);
      this.accumulate(withInput ? g.slice(1) : g, gradSum!);
      return withInput ? [value, g[0]] : [value];
    });
    const lossSum = value.dataSync()[0];
    const losses = Float32Array.from(perSample!.dataSync());
    tf.dispose([value, perSample!]);
    return { lossSum, losses, dx: dx ?? null };
  }

  toSafetensors(): Uint8Array {
    const tensors: Record<string, TensorEntry> = {};
    for (const p of this.layout.params)
      tensors[p.name] = {
        dtype: 'F32',
        shape: p.shape,
        data: this.params[p.name].dataSync() as Float32Array,
      };
    return encodeSafetensors(tensors, stageMetadata(this.config, this.spec));
  }

  /** Loads a stage exported by toSafetensors (or by PyTorch with the same keys). */
  static fromSafetensors(config: ModelConfig, index: number, bytes: Uint8Array): Stage {
    const spec = stageSpecs(config)[index];
    if (!spec) throw new IotaError('E_BAD_STAGE', `model ${config.name} has no stage ${index}`);
    const layout = stageLayout(config, spec);
    const expect = Object.fromEntries(
      layout.params.map((p) => [p.name, { dtype: 'F32' as const, shape: p.shape }]),
    );
    const { tensors } = decodeSafetensors(bytes, { expect, requireFinite: true });
    const flat = new Float32Array(layout.size);
    for (const p of layout.params) flat.set(tensors[p.name].data as Float32Array, p.offset);
    return new Stage(config, spec, flat);
  }

  /** Live tensors held by this stage (weights and constants). */
  dispose(): void {
    this.disposeParams();
    for (const c of this.constants.values()) c.dispose();
    this.constants.clear();
  }

  private disposeParams(): void {
    for (const t of Object.values(this.params)) t.dispose();
    this.params = {};
    this.flat = undefined;
  }

  /** Constants (RoPE tables, mask) for one sequence length, cached. */
  context(seq: number) {
    let c = this.constants.get(seq);
    if (!c) {
      c = new StageConstants(this.config, seq);
      this.constants.set(seq, c);
    }
    return c.ctx;
  }

  /** The weight tensors in layout order (owned by the stage; do not dispose). */
  paramTensors(): tf.Tensor[] {
    return this.layout.params.map((p) => this.params[p.name]);
  }

  private paramsFrom(names: string[], tensors: tf.Tensor[]): Params {
    const p: Params = {};
    names.forEach((n, i) => (p[n] = tensors[i]));
    return p;
  }

  /** Adds gradients (in layout order) into a flat accumulator. */
  accumulate(grads: tf.Tensor[], gradSum: Float32Array): void {
    if (gradSum.length !== this.layout.size)
      throw new IotaError(
        'E_BAD_WEIGHTS',
        `gradient accumulator has ${gradSum.length} elements, stage needs ${this.layout.size}`,
      );
    const addon = loadedNative();
    this.layout.params.forEach((p, i) => {
      const g = readNow(grads[i]);
      if (addon) addon.addInto(gradSum.subarray(p.offset, p.offset + p.size), g);
      else for (let j = 0; j < p.size; j++) gradSum[p.offset + j] += g[j];
    });
  }
}
