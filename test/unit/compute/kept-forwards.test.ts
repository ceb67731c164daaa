/**
 * The compute thread's kept forwards: a backward from one equals the recompute bit for bit
 * (input gradient and, once committed, the gradient sum); the thread keeps at most its limits'
 * items and bytes, oldest dropped first, none across new weights or a reset; a backward whose
 * forward is not kept says so (the miner then recomputes).
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Compute, type StageInput } from '../../../src/compute/compute.js';
import { initialWeights } from '../../../src/model/init.js';
import { stageLayout } from '../../../src/model/params.js';
import { stageSpecs } from '../../../src/config/index.js';
import { testModel } from '../../support/model.js';
import { randomFloats } from '../kernels/native.js';

const WORKER = pathToFileURL(resolve('dist/compute/compute-worker.js'));
const config = testModel();
const B = config.bottleneck;
const shape: [number, number, number] = [2, config.seq, B];
const n = shape[0] * shape[1] * shape[2];
const weights = initialWeights(stageLayout(config, stageSpecs(config)[1]), 3);
const input = (seed: number): StageInput => ({ x: randomFloats(n, seed), shape });
const dy = randomFloats(n, 99);
const bits = (x?: Float32Array) => (x ? Buffer.from(x.buffer, x.byteOffset, x.byteLength) : x);

let threads: Compute[] = [];
afterEach(async () => {
  await Promise.all(threads.map((c) => c.close()));
  threads = [];
});

async function thread(items: number, bytes = 2 ** 30): Promise<Compute> {
  const c = new Compute(WORKER);
  threads.push(c);
  await c.init(config, 1, weights, 'cpu', { items, bytes });
  return c;
}

describe('kept forwards on the compute thread', () => {
  it('give the recompute backward, input gradient and gradient sum, bit for bit', async () => {
    const c = await thread(2);
    await c.forward(input(1), 'a');
    const kept = await c.backwardKept('lease-a', 'a', dy, shape);
    expect(kept?.dx).toBeDefined();
    expect(await c.commit('lease-a')).toBe(true);
    const keptSum = await c.gradientSum();

    const r = await thread(0);
    const recomputed = await r.backward('lease-b', input(1), dy, shape);
    expect(await r.commit('lease-b')).toBe(true);
    expect(bits(kept!.dx)).toEqual(bits(recomputed.dx));
    expect(kept!.shape).toEqual(shape);
    expect(bits(keptSum)).toEqual(bits(await r.gradientSum()));
    expect(keptSum.some((v) => v !== 0)).toBe(true);
  });

  it('keeps at most its item limit, dropping the oldest, and each forward once', async () => {
    const c = await thread(2);
    for (const name of ['a', 'b', 'c']) await c.forward(input(name.charCodeAt(0)), name);
    expect(await c.backwardKept('l1', 'a', dy, shape)).toBeUndefined();
    expect(await c.backwardKept('l2', 'b', dy, shape)).toBeDefined();
    expect(await c.backwardKept('l3', 'b', dy, shape)).toBeUndefined();
    expect(await c.backwardKept('l4', 'c', dy, shape)).toBeDefined();
  });

  it('keeps nothing over its byte budget, and nothing when keeping is off', async () => {
    const tight = await thread(4, 1024);
    await tight.forward(input(5), 'a');
    expect(await tight.backwardKept('l', 'a', dy, shape)).toBeUndefined();
    const off = await thread(0);
    const y = await off.forward(input(5), 'a');
    expect(y.y).toHaveLength(n);
    expect(await off.backwardKept('l', 'a', dy, shape)).toBeUndefined();
  });

  it('drops what it kept on new weights, a reset, or a release', async () => {
    const c = await thread(4);
    await c.forward(input(6), 'a');
    await c.setWeights(weights);
    expect(await c.backwardKept('l1', 'a', dy, shape)).toBeUndefined();
    await c.forward(input(6), 'b');
    await c.reset();
    expect(await c.backwardKept('l2', 'b', dy, shape)).toBeUndefined();
    await c.forward(input(6), 'c');
    await c.release('c');
    expect(await c.backwardKept('l3', 'c', dy, shape)).toBeUndefined();
    await c.forward(input(6), 'd');
    expect(await c.backwardKept('l4', 'd', dy, shape)).toBeDefined();
  });
});
