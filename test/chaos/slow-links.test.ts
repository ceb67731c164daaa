/**
 * Chaos, slow and unequal links: every miner of a real swarm reaches the orchestrator and the
 * store through a shaped link; one miner per stage gets a tenth of the others' bandwidth and
 * 200 ms more latency on every request. It misses no phase deadline, does useful work, and is
 * given less work rather than stalling its stage.
 */
import { killAll } from '../support/cli.js';
import { oracleGap, removeRun, runChaos, type ChaosResult } from './support/swarm.js';

afterAll(killAll);

const EPOCHS = 2;
let r: ChaosResult;

beforeAll(async () => {
  r = await runChaos({
    name: 'slow-links',
    epochs: EPOCHS,
    samplesPerEpoch: 12,
    links: {
      fast: { bytesPerSecond: 20e6, latencyMs: 0 },
      slow: { bytesPerSecond: 2e6, latencyMs: 200 },
    },
  });
  process.stderr.write(
    `slow links: ${r.seconds.toFixed(0)} s; items slow ${r.items.slow} fast ${r.items.fast}; merge jobs slow ${r.mergeJobs.slow} fast ${r.mergeJobs.fast}\n`,
  );
}, 300_000);
afterAll(() => r && removeRun(r));

describe('slow and unequal links', () => {
  it('missed no deadline: every sample merged at every stage, every merge completed', () => {
    expect(r.dataLost).toBe(0);
    expect(r.ledger.filter((l) => l.state !== 'merged')).toEqual([]);
  });

  it('the slow miners did useful work, and less of it than the fast ones', () => {
    for (const n of r.items.slow) expect(n).toBeGreaterThan(0);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    expect(sum(r.items.slow)).toBeLessThan(sum(r.items.fast));
  });

  it('ends with the weights single-process training computes on the merged samples', async () => {
    for (const { gap, moved } of await oracleGap(r, EPOCHS)) {
      expect(gap).toBeLessThanOrEqual(1e-4);
      expect(moved).toBeGreaterThan(1e-3);
    }
  }, 120_000);
});
