/**
 * A forward whose gradient tape is kept for a later backward, so the backward does not run the
 * forward again. tfjs records a tape (each kernel with the tensors its gradient needs) only
 * inside `engine.gradients`, which runs forward and backward in one call; here the forward is
 * recorded on its own, the tape kept with its saved tensors, and later handed to
 * `engine.gradients` as the body of its forward, so the backward is tfjs's own walk over the
 * same kernels and saved tensors: the same values, bit for bit, as the recompute.
 *
 * This reaches into the engine's state (`startTape`, `endTape`, `state.activeTape`), which
 * @tensorflow/tfjs-core 4.22.0 (pinned) keeps as private fields; `checkEngine` refuses an
 * engine without them, and the callers then recompute.
 */
import * as tf from '@tensorflow/tfjs';
import { IotaError } from '../errors.js';

interface TapeNode {
  saved?: tf.Tensor[];
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  startTape(): void;
  endTape(): void;
  gradients(
    f: () => tf.Tensor,
    xs: tf.Tensor[],
    dy: tf.Tensor,
    allowNoGradients?: boolean,
  ): { value: tf.Tensor; grads: tf.Tensor[] };
}

function engine(): EngineInternals {
  return tf.engine() as unknown as EngineInternals;
}

/** Whether this tfjs engine has the internals a kept tape needs. */
export function tapeSupported(): boolean {
  const e = engine();
  return (
    typeof e.startTape === 'function' &&
    typeof e.endTape === 'function' &&
    typeof e.gradients === 'function' &&
    typeof e.state === 'object' &&
    typeof e.state.gradientDepth === 'number'
  );
}

/** A recorded forward: its output and the tape that leads to it, owned until used or released. */
export class KeptTape {
  private nodes: TapeNode[] | null;

  private constructor(
    nodes: TapeNode[],
    /** the forward's output (kept; the backward's dy has its shape) */
    readonly y: tf.Tensor,
  ) {
    this.nodes = nodes;
  }

  /** Runs `f` recording its tape; the result's output is kept until `backward` or `release`. */
  static record(f: () => tf.Tensor): KeptTape {
    const e = engine();
    if (!tapeSupported())
      throw new IotaError('E_TAPE_UNSUPPORTED', 'this tfjs engine cannot keep a gradient tape');
    if (e.state.gradientDepth !== 0 || e.state.activeTape)
      throw new IotaError('E_TAPE_NESTED', 'a kept forward cannot run inside another gradient');
    let y: tf.Tensor;
    e.startTape();
    try {
      y = tf.keep(tf.tidy(f));
    } catch (err) {
      e.endTape();
      release(e.state.activeTape ?? []);
      e.state.activeTape = null;
      throw err;
    }
    e.endTape();
    const nodes = e.state.activeTape ?? [];
    e.state.activeTape = null;
    return new KeptTape(nodes, y);
  }

  /**
   * Gradients of the forward's output, weighted by `dy`, with respect to each of `xs` (tensors
   * the forward read: its input, the weights); consumes the tape. Tensors come back tracked by
   * the caller's scope.
   */
  backward(xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
    const nodes = this.nodes;
    if (!nodes) throw new IotaError('E_TAPE_USED', 'this kept forward was already used');
    this.nodes = null;
    const e = engine();
    const y = this.y;
    try {
      // gradients() starts an empty tape and runs its forward: ours puts the kept nodes there
      // and returns the kept output; the walk back, and the release of every node's saved
      // tensors afterwards, are the engine's own.
      const { grads } = e.gradients(
        () => {
          e.state.activeTape!.push(...nodes);
          return y;
        },
        xs,
        dy,
        true,
      );
      return grads;
    } catch (err) {
      // a walk that failed part way leaves its tape with the engine
      release(nodes);
      e.state.activeTape = null;
      throw err;
    } finally {
      y.dispose();
    }
  }

  /** Frees the saved tensors and the output without a backward. */
  release(): void {
    if (this.nodes) release(this.nodes);
    this.nodes = null;
    this.y.dispose();
  }

  get used(): boolean {
    return this.nodes === null;
  }
}

function release(nodes: TapeNode[]): void {
  for (const n of nodes) for (const t of n.saved ?? []) t.dispose();
}
