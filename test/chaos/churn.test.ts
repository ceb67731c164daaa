/**
 * Chaos, miner churn: a real swarm (3 stages x 2 miners) while a random miner is SIGKILLed every
 * few seconds and another started for its stage. The run loses only what the ledger says it
 * lost, every merge completes with byte-identical replicas, and the final weights are what
 * single-process training computes on the samples each stage merged: a fault never corrupts
 * the model.
 */
import { killAll } from '../support/cli.js';
import { sha256Hex } from '../../src/tensor-io/hash.js';
import { oracleGap, published, removeRun, runChaos, type ChaosResult } from './support/swarm.js';

afterAll(killAll);

const EPOCHS = 4;
let r: ChaosResult;

beforeAll(async () => {
  r = await runChaos({ name: 'churn', epochs: EPOCHS, samplesPerEpoch: 16, churnEveryMs: 5000 });
  process.stderr.write(
    `churn: ${r.kills} miners killed in ${r.seconds.toFixed(0)} s, ${r.samplesDropped} samples not merged, ${r.samplesPerS.toFixed(2)} samples/s\n`,
  );
}, 300_000);
afterAll(() => r && removeRun(r));

describe('miner churn', () => {
  it('killed miners, and the ledger accounts for every allocated sample', () => {
    expect(r.kills).toBeGreaterThanOrEqual(2);
    expect(r.dataLost).toBe(0);
    for (const row of r.ledger)
      expect(
        ['merged', 'lost_with_miner'].includes(row.state) || row.state.startsWith('dropped:'),
      ).toBe(true);
  });

  it('completes every merge, and every replica a miner loaded is byte-identical to the published weights', () => {
    for (let epoch = 1; epoch <= EPOCHS; epoch++)
      for (let stage = 0; stage < 3; stage++) {
        // A stage all of whose miners were replaced meanwhile may skip an epoch's weights.
        const loaded = [...(r.replicaHashes.get(`${stage}/${epoch}`) ?? [])];
        if (epoch === EPOCHS) expect(loaded.length).toBeGreaterThan(0);
        const w = published(r, epoch, stage);
        for (const h of loaded) expect(h).toBe(sha256Hex(new Uint8Array(w.buffer)));
      }
  });

  it('ends with the weights single-process training computes on the merged samples', async () => {
    for (const { gap, moved } of await oracleGap(r, EPOCHS)) {
      expect(gap).toBeLessThanOrEqual(1e-4);
      expect(moved).toBeGreaterThan(1e-3);
    }
  }, 120_000);

  it('no surviving process failed', () => {
    // null: killed by the churn; 0: stopped at the end
    expect(r.exitCodes.filter((c) => c !== null && c !== 0)).toEqual([]);
  });
});
