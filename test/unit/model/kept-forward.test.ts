/**
 * A backward from a kept forward (its tape kept, no recompute) against the recompute it
 * replaces, bit for bit, on cpu and native: the validator replays a miner's backward by
 * recompute and compares its bytes. And the kept state's life: released without leaking
 * tensors, refused after new weights, used once.
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../../src/kernels/backends.js';
import { Stage } from '../../../src/model/stage.js';
import { tapeSupported } from '../../../src/model/kept-tape.js';
import { randomIds, testModel } from '../../support/model.js';
import { requireNative } from '../kernels/native.js';

await requireNative();

const bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

describe.each(['cpu', 'native'] as const)('a kept forward on %s', (backend) => {
  beforeAll(async () => {
    await selectBackend(backend);
  });

  it('is possible with this tfjs engine', () => {
    expect(tapeSupported()).toBe(true);
  });

  // odd sizes, batch 1 and 3, a sequence that is not a power of two
  const config = testModel({ dim: 12, n_heads: 3, n_kv_groups: 3, ffn_dim: 21, seq: 7 });
  it.each([
    ['the head', 0, 1],
    ['a body stage', 1, 3],
    ['the head, batch 3', 0, 3],
    ['a body stage, batch 1', 1, 1],
  ])('gives the recompute backward bit for bit: %s', (_n, index, batch) => {
    const stage = Stage.initial(config, index, 11);
    stage.context(config.seq); // its cached constants, made once
    const before = tf.memory().numTensors;
    const input =
      index === 0
        ? randomIds(batch, config.seq, 256, 3)
        : tf.randomNormal([batch, config.seq, config.bottleneck], 0, 1, 'float32', 4);
    const dy = tf.randomNormal([batch, config.seq, config.bottleneck], 0, 1, 'float32', 5);

    const y = stage.forward(input);
    const recomputed = new Float32Array(stage.layout.size);
    const dxRecomputed = stage.backward(input, dy, recomputed);

    const mine = input.clone();
    const { y: yKept, kept } = stage.forwardKept(mine);
    expect(bits(yKept.dataSync() as Float32Array)).toEqual(bits(y.dataSync() as Float32Array));
    const fromKept = new Float32Array(stage.layout.size);
    const dxKept = stage.backwardKept(kept, dy, fromKept);

    expect(fromKept.some((v) => v !== 0)).toBe(true);
    expect(bits(fromKept)).toEqual(bits(recomputed));
    if (index === 0) {
      expect(dxKept).toBeNull();
      expect(dxRecomputed).toBeNull();
    } else {
      expect(bits(dxKept!.dataSync() as Float32Array)).toEqual(
        bits(dxRecomputed!.dataSync() as Float32Array),
      );
    }
    tf.dispose([y, dxRecomputed!, dxKept!, input, dy].filter(Boolean));
    // the tape's saved tensors, its output and the input it took are gone
    expect(tf.memory().numTensors).toBe(before);
    stage.dispose();
  });

  it('releases what it kept when no backward comes', () => {
    const stage = Stage.initial(config, 1, 12);
    stage.context(config.seq);
    const before = tf.memory().numTensors;
    const { kept } = stage.forwardKept(tf.randomNormal([2, config.seq, config.bottleneck]));
    expect(tf.memory().numTensors).toBeGreaterThan(before + 10);
    stage.releaseKept(kept);
    expect(tf.memory().numTensors).toBe(before);
    stage.dispose();
  });

  it('refuses a backward after new weights, and a second backward', () => {
    const stage = Stage.initial(config, 1, 13);
    const dy = tf.ones([1, config.seq, config.bottleneck]);
    const x = () => tf.ones([1, config.seq, config.bottleneck]);
    stage.context(config.seq);
    const before = tf.memory().numTensors;
    const stale = stage.forwardKept(x()).kept;
    stage.setWeights(stage.getWeights());
    expect(() => stage.backwardKept(stale, dy)).toThrow(
      expect.objectContaining({ code: 'E_STALE_FORWARD' }),
    );
    expect(tf.memory().numTensors).toBe(before);

    const once = stage.forwardKept(x()).kept;
    tf.dispose(stage.backwardKept(once, dy)!);
    expect(() => stage.backwardKept(once, dy)).toThrow(
      expect.objectContaining({ code: 'E_TAPE_USED' }),
    );
    expect(tf.memory().numTensors).toBe(before);
    dy.dispose();
    stage.dispose();
  });

  it('leaves ordinary gradients working while a forward is kept', () => {
    const stage = Stage.initial(config, 1, 14);
    const x = tf.randomNormal([2, config.seq, config.bottleneck], 0, 1, 'float32', 15);
    const dy = tf.randomNormal([2, config.seq, config.bottleneck], 0, 1, 'float32', 16);
    const a = new Float32Array(stage.layout.size);
    const { kept } = stage.forwardKept(x.clone());
    // another item's recompute backward in between, as a miner with two items in flight does
    const other = new Float32Array(stage.layout.size);
    tf.dispose(stage.backward(x, dy, other)!);
    tf.dispose(stage.backwardKept(kept, dy, a)!);
    expect(bits(a)).toEqual(bits(other));
    tf.dispose([x, dy]);
    stage.dispose();
  });
});
