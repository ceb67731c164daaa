import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../../src/kernels/backends.js';
import { stageSpecs } from '../../../src/config/index.js';
import { Model } from '../../../src/model/model.js';
import { Stage } from '../../../src/model/stage.js';
import { attention, embed, linear, rmsNorm, silu, swiglu } from '../../../src/model/layers.js';
import { randomIds, relErr, testModel } from '../../support/model.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

describe('pipelined stages', () => {
  const config = testModel();

  it('give the same loss and gradients as one graph holding the same blocks', () => {
    const model = Model.initial(config, 7);
    const [head, body, tail] = model.stages;
    const ids = randomIds(2, config.seq, 256, 1);
    const targets = randomIds(2, config.seq, 256, 2);

    const oracle = model.stages.map((s) => new Float32Array(s.layout.size));
    const oracleLoss = model.lossAndGrads(ids, targets, oracle);

    const piped = model.stages.map((s) => new Float32Array(s.layout.size));
    const h0 = head.forward(ids);
    const h1 = body.forward(h0);
    expect(h0.shape).toEqual([2, config.seq, config.bottleneck]);
    expect(h1.shape).toEqual([2, config.seq, config.bottleneck]);
    const t = tail.tailStep(h1, targets, piped[2]);
    expect(t.dx?.shape).toEqual([2, config.seq, config.bottleneck]);
    const d1 = body.backward(h0, t.dx!, piped[1]);
    expect(d1?.shape).toEqual([2, config.seq, config.bottleneck]);
    const d0 = head.backward(ids, d1!, piped[0]);
    expect(d0).toBeNull();

    expect(Math.abs(t.lossSum - oracleLoss) / oracleLoss).toBeLessThanOrEqual(1e-4);
    expect(t.losses.reduce((a, b) => a + b, 0)).toBeCloseTo(t.lossSum, 4);
    for (let i = 0; i < 3; i++) {
      expect(relErr(piped[i], oracle[i])).toBeLessThanOrEqual(1e-4);
      expect(piped[i].some((x) => x !== 0)).toBe(true);
    }
    tf.dispose([h0, h1, t.dx!, d1!, ids, targets]);
    model.dispose();
  });

  it("give the one graph's gradients from kept forwards too, bit for bit the recompute's", () => {
    const model = Model.initial(config, 8);
    const [head, body, tail] = model.stages;
    const ids = randomIds(2, config.seq, 256, 3);
    const targets = randomIds(2, config.seq, 256, 4);
    const oracle = model.stages.map((s) => new Float32Array(s.layout.size));
    const oracleLoss = model.lossAndGrads(ids, targets, oracle);

    // by recompute
    const piped = model.stages.map((s) => new Float32Array(s.layout.size));
    const h0 = head.forward(ids);
    const h1 = body.forward(h0);
    const t = tail.tailStep(h1, targets, piped[2]);
    const d1 = body.backward(h0, t.dx!, piped[1])!;
    head.backward(ids, d1, piped[0]);

    // from kept forwards (each stage owns its input, as on a miner's compute thread)
    const kept = model.stages.map((s) => new Float32Array(s.layout.size));
    const k0 = head.forwardKept(ids.clone());
    const k1 = body.forwardKept(k0.y.clone());
    const tk = tail.tailStep(k1.y, targets, kept[2]);
    const dk1 = body.backwardKept(k1.kept, tk.dx!, kept[1])!;
    expect(head.backwardKept(k0.kept, dk1, kept[0])).toBeNull();

    expect(Math.abs(tk.lossSum - oracleLoss) / oracleLoss).toBeLessThanOrEqual(1e-4);
    for (let i = 0; i < 3; i++) {
      expect(relErr(kept[i], oracle[i])).toBeLessThanOrEqual(1e-4);
      expect(Buffer.from(kept[i].buffer)).toEqual(Buffer.from(piped[i].buffer));
    }
    tf.dispose([h0, h1, t.dx!, d1, tk.dx!, dk1, ids, targets]);
    model.dispose();
  });

  it('report per-sample tail losses from one forward without leaking tensors', () => {
    const tail = Stage.initial(config, 2, 5);
    const x = tf.randomNormal([3, config.seq, config.bottleneck], 0, 1, 'float32', 6);
    const targets = randomIds(3, config.seq, 256, 7);
    const g = new Float32Array(tail.layout.size);
    tail.tailStep(x, targets, g).dx?.dispose();
    const live = tf.memory().numTensors;
    const r = tail.tailStep(x, targets, g);
    r.dx?.dispose();
    expect(tf.memory().numTensors).toBe(live);
    expect(r.losses).toHaveLength(3);
    // each sample's loss alone equals its entry
    for (let i = 0; i < 3; i++) {
      const one = tail.tailStep(
        tf.slice(x, [i, 0, 0], [1, -1, -1]),
        tf.slice(targets, [i, 0], [1, -1]) as tf.Tensor2D,
        new Float32Array(tail.layout.size),
      );
      one.dx?.dispose();
      expect(Math.abs(one.lossSum - r.losses[i]) / r.losses[i]).toBeLessThanOrEqual(1e-5);
    }
    tf.dispose([x, targets]);
    tail.dispose();
  });

  it('give a replay the same input gradient and losses without forming the weights’ gradients', () => {
    const body = Stage.initial(config, 1, 3);
    const tail = Stage.initial(config, 2, 5);
    const x = tf.randomNormal([2, config.seq, config.bottleneck], 0, 1, 'float32', 4);
    const dy = tf.randomNormal([2, config.seq, config.bottleneck], 0, 1, 'float32', 5);
    const targets = randomIds(2, config.seq, 256, 7);
    const full = body.backward(x, dy, new Float32Array(body.layout.size))!;
    const live = tf.memory().numTensors;
    const only = body.backward(x, dy)!;
    expect(tf.memory().numTensors).toBe(live + 1); // the input gradient, nothing else
    expect(relErr(only.dataSync() as Float32Array, full.dataSync() as Float32Array)).toBe(0);
    const t = tail.tailStep(x, targets, new Float32Array(tail.layout.size));
    const inputOnly = tail.tailStep(x, targets, undefined, 'input');
    expect(relErr(inputOnly.dx!.dataSync() as Float32Array, t.dx!.dataSync() as Float32Array)).toBe(
      0,
    );
    expect(inputOnly.losses).toEqual(t.losses);
    const lossesOnly = tail.tailStep(x, targets, undefined, 'none');
    expect(lossesOnly.dx).toBeNull();
    expect(lossesOnly.losses).toEqual(t.losses);
    expect(() => tail.tailStep(x, targets, undefined, 'all')).toThrow(/needs gradSum/);
    // The head's input is token ids: its replay has no input gradient to form.
    const head = Stage.initial(config, 0, 2);
    expect(head.backward(randomIds(2, config.seq, 256, 1), dy)).toBeNull();
    tf.dispose([x, dy, targets, full, only, t.dx!, inputOnly.dx!]);
    for (const s of [body, tail, head]) s.dispose();
  });

  it('accumulate gradient sums across calls', () => {
    const stage = Stage.initial(config, 1, 3);
    const x = tf.randomNormal([1, config.seq, config.bottleneck], 0, 1, 'float32', 4);
    const dy = tf.randomNormal([1, config.seq, config.bottleneck], 0, 1, 'float32', 5);
    const once = new Float32Array(stage.layout.size);
    stage.backward(x, dy, once)?.dispose();
    const twice = new Float32Array(stage.layout.size);
    stage.backward(x, dy, twice)?.dispose();
    stage.backward(x, dy, twice)?.dispose();
    expect(
      relErr(
        twice,
        once.map((v) => 2 * v),
      ),
    ).toBeLessThanOrEqual(1e-6);
    tf.dispose([x, dy]);
    stage.dispose();
  });
});

describe('the bottleneck', () => {
  const config = testModel();

  it('is residual[..., :B] + fc4(silu(ff)), and residual[..., :B] with fc4 zeroed', () => {
    const head = Stage.initial(config, 0, 11);
    const ids = randomIds(1, config.seq, 256, 3);
    const w = head.getWeights();
    const fc4 = head.layout.byName.get('trf_blocks.0.ff.fc4.weight')!;
    for (let i = fc4.offset; i < fc4.offset + fc4.size; i++) w[i] *= 50; // make the ff part visible
    head.setWeights(w);
    const P = (n: string) => {
      const p = head.layout.byName.get(n)!;
      return tf.tensor(w.slice(p.offset, p.offset + p.size), p.shape);
    };
    const ctx = head.context(config.seq);
    const B = config.bottleneck;
    // Independently: h = x + att(norm1 x); expected = h[..., :B] + fc4(silu(swiglu(norm2 h)))
    const x = embed(ids, P('tok_emb.weight') as tf.Tensor2D);
    const att = attention(
      rmsNorm(x, P('trf_blocks.0.norm1.weight'), 1e-5) as tf.Tensor3D,
      {
        wq: P('trf_blocks.0.att.W_query.weight'),
        wk: P('trf_blocks.0.att.W_key.weight'),
        wv: P('trf_blocks.0.att.W_value.weight'),
        wo: P('trf_blocks.0.att.out_proj.weight'),
      },
      ctx.shape,
      ctx.cos,
      ctx.sin,
      ctx.mask,
    );
    const h = tf.add(x, att);
    const residual = tf.slice(h, [0, 0, 0], [-1, -1, B]);
    const ff = swiglu(
      rmsNorm(h, P('trf_blocks.0.norm2.weight'), 1e-5),
      P('trf_blocks.0.ff.fc1.weight'),
      P('trf_blocks.0.ff.fc2.weight'),
      P('trf_blocks.0.ff.fc3.weight'),
    );
    const expected = tf.add(residual, linear(silu(ff), P('trf_blocks.0.ff.fc4.weight')));

    const out = head.forward(ids);
    expect(out.shape).toEqual([1, config.seq, B]);
    expect(relErr(out.dataSync(), expected.dataSync())).toBeLessThanOrEqual(1e-6);
    expect(relErr(out.dataSync(), residual.dataSync())).toBeGreaterThan(1e-2);

    w.fill(0, fc4.offset, fc4.offset + fc4.size);
    head.setWeights(w);
    const residualOnly = head.forward(ids);
    expect(relErr(residualOnly.dataSync(), residual.dataSync())).toBeLessThanOrEqual(1e-6);
    tf.dispose([out, residualOnly, ids, x, att, h, residual, ff, expected]);
    head.dispose();
  });
});

describe('stage specs', () => {
  it('lay out parameters with reference names and local block indices', () => {
    const config = testModel();
    const [h, b, t] = stageSpecs(config).map((s, i) => Stage.initial(config, i, 1));
    expect(h.layout.params[0].name).toBe('tok_emb.weight');
    expect(h.layout.byName.has('trf_blocks.0.ff.fc4.weight')).toBe(true);
    expect(b.layout.params[0].name).toBe(
      'trf_blocks.0.bottleneck_decoder.bottleneck_decoder.0.weight',
    );
    expect(b.layout.byName.has('trf_blocks.1.ff.fc4.weight')).toBe(true);
    expect(b.layout.byName.has('trf_blocks.2.norm1.weight')).toBe(false);
    expect(t.layout.params.map((p) => p.name).slice(-2)).toEqual([
      'final_norm.weight',
      'out_head.weight',
    ]);
    [h, b, t].forEach((s) => s.dispose());
  });
});
