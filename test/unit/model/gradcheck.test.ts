import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../../src/kernels/backends.js';
import { KeyedRandom } from '../../../src/model/init.js';
import { Model } from '../../../src/model/model.js';
import { randomIds, testModel } from '../../support/model.js';

const H = 1e-2;
const DIRECTIONS = 3;

interface Probe {
  tensor: string;
  stage: number;
  offset: number;
  u: Float32Array;
  /** central difference along u */
  fd: number;
}

/** Mean cross-entropy summed over the batch, reduced in float64 from float32 logits. */
function lossOf(logits: tf.Tensor3D, targets: Int32Array): number {
  const z = logits.dataSync();
  const [b, s, V] = logits.shape;
  let total = 0;
  for (let r = 0; r < b * s; r++) {
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, z[r * V + j]);
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(z[r * V + j] - max);
    total += max + Math.log(sum) - z[r * V + targets[r]];
  }
  return total / s;
}

/**
 * Central differences with h = 1e-2 along 3 random unit directions per parameter tensor.
 * (The loss is reduced in float64: float32 rounding of a value near ln(256) alone would move
 * a difference quotient by about 5e-5.) Stages before the perturbed one are not re-run.
 */
function probe(model: Model, ids: tf.Tensor2D, targets: tf.Tensor2D): Probe[] {
  const t = targets.dataSync() as Int32Array;
  const inputs: tf.Tensor[] = [ids];
  for (const s of model.stages.slice(0, -1)) inputs.push(s.forward(inputs[inputs.length - 1]));
  const lossFrom = (si: number) => {
    let x = inputs[si];
    for (const s of model.stages.slice(si)) {
      const y = s.forward(x);
      if (x !== inputs[si]) x.dispose();
      x = y;
    }
    const l = lossOf(x as tf.Tensor3D, t);
    x.dispose();
    return l;
  };
  const probes: Probe[] = [];
  model.stages.forEach((stage, si) => {
    const base = stage.getWeights();
    for (const p of stage.layout.params) {
      const rng = new KeyedRandom('gradcheck', p.name);
      for (let k = 0; k < DIRECTIONS; k++) {
        const u = new Float32Array(p.size);
        rng.fillNormal(u, 1);
        const norm = Math.hypot(...u);
        u.forEach((x, j) => (u[j] = x / norm));
        const shifted = (sign: number) => {
          const w = base.slice();
          for (let j = 0; j < p.size; j++) w[p.offset + j] += sign * H * u[j];
          stage.setWeights(w);
          return lossFrom(si);
        };
        probes.push({
          tensor: `${si}:${p.name}`,
          stage: si,
          offset: p.offset,
          u,
          fd: (shifted(1) - shifted(-1)) / (2 * H),
        });
      }
    }
    stage.setWeights(base);
  });
  tf.dispose(inputs.slice(1));
  return probes;
}

/** |fd - <grad, u>| <= 2e-2 * max(|fd|, 1e-3); returns the probes that fail. */
function failures(probes: Probe[], grads: Float32Array[]): string[] {
  return probes
    .filter((p) => {
      let directional = 0;
      for (let j = 0; j < p.u.length; j++) directional += grads[p.stage][p.offset + j] * p.u[j];
      return Math.abs(p.fd - directional) > 2e-2 * Math.max(Math.abs(p.fd), 1e-3);
    })
    .map((p) => p.tensor);
}

// On the stock kernels and on the native ones (with their fused cross-entropy).
describe.each(['cpu', 'native'] as const)('gradient check (%s, dim 16, seq 8)', (backend) => {
  const config = testModel();
  let model: Model;
  let probes: Probe[];
  let grads: Float32Array[];

  beforeAll(async () => {
    await selectBackend(backend);
    model = Model.initial(config, 'gradcheck');
    // A difference quotient is meaningless where a decoder's ReLU pre-activation lies within
    // the perturbation of zero, so the check runs at a point away from the kinks: every token's
    // embedding carries a constant 1 in channel 0, which the bottleneck passes on, and every
    // decoder row reads that channel with weight +-0.5. Matrices are scaled up from the 0.02
    // init so that every directional derivative stands well above float32 noise.
    for (const s of model.stages) {
      const w = s.getWeights();
      for (const p of s.layout.params) {
        if (p.kind === 'matrix') for (let j = p.offset; j < p.offset + p.size; j++) w[j] *= 4;
        if (p.name === 'tok_emb.weight')
          for (let r = 0; r < p.shape[0]; r++) w[p.offset + r * p.shape[1]] = 1;
        if (p.name.includes('bottleneck_decoder'))
          for (let r = 0; r < p.shape[0]; r++) w[p.offset + r * p.shape[1]] = r % 2 ? -0.5 : 0.5;
      }
      s.setWeights(w);
    }
    const ids = randomIds(2, config.seq, 256, 21);
    const targets = randomIds(2, config.seq, 256, 22);
    grads = model.stages.map((s) => new Float32Array(s.layout.size));
    model.lossAndGrads(ids, targets, grads);
    probes = probe(model, ids, targets);
    tf.dispose([ids, targets]);
  });

  afterAll(() => model.dispose());

  it('agrees with central differences along 3 directions of every parameter tensor', () => {
    expect(probes.length).toBe(
      model.stages.reduce((n, s) => n + s.layout.params.length * DIRECTIONS, 0),
    );
    expect(failures(probes, grads)).toEqual([]);
  });

  it('fails for a deliberately sign-flipped gradient', () => {
    const flipped = grads.map((g) => g.map((x) => -x));
    expect(failures(probes, flipped).length).toBeGreaterThan(probes.length * 0.9);
  });
});
