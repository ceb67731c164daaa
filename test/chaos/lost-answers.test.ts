/**
 * Chaos, lost answers: the orchestrator applies a miner's report and the answer never arrives
 * (the orchestrator went away before answering: the proxy in front of its API drops every 15th
 * report's answer after the orchestrator handled it, then refuses everything for 2.5 s, longer
 * than a client's own retries last). The miner must learn the report's outcome (asking again with
 * the same request id gets the stored answer) rather than throw away a gradient the ledger
 * credits it: every upload carries the samples the ledger credits, and the weights stay
 * single-process training's on the merged samples.
 */
import { killAll } from '../support/cli.js';
import { oracleGap, removeRun, runChaos, type ChaosResult } from './support/swarm.js';

afterAll(killAll);

const EPOCHS = 3;
let r: ChaosResult;

beforeAll(async () => {
  r = await runChaos({
    name: 'lost-answers',
    epochs: EPOCHS,
    samplesPerEpoch: 12,
    api: { loseAnswers: { path: '/v1/report', every: 15, outageMs: 2500 } },
  });
  process.stderr.write(
    `lost answers: ${r.answersLost} in ${r.seconds.toFixed(0)} s, ${r.samplesDropped} samples not merged\n`,
  );
}, 300_000);
afterAll(() => r && removeRun(r));

describe('lost answers', () => {
  it('lost answers to reports the orchestrator applied, and the miners rode it out', () => {
    expect(r.answersLost).toBeGreaterThanOrEqual(2);
    expect(r.minersStarted).toBe(6);
    expect(r.refusals).toEqual({});
    expect(r.exitCodes).toEqual(r.exitCodes.map(() => 0));
  });

  it('every gradient upload held exactly the samples the ledger credits, and nothing was lost', () => {
    expect(r.creditMismatches).toBe(0);
    expect(r.dataLost).toBe(0);
  });

  it('ends with the weights single-process training computes on the merged samples', async () => {
    for (const { gap, moved } of await oracleGap(r, EPOCHS)) {
      expect(gap).toBeLessThanOrEqual(1e-4);
      expect(moved).toBeGreaterThan(1e-3);
    }
  }, 120_000);
});
