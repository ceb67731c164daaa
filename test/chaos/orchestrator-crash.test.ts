/**
 * Chaos, orchestrator crash: the orchestrator of a real swarm is SIGKILLed and started again on
 * its state in each phase (an item in training, a gradient upload, a merge job) and once for
 * longer than the upload phase's deadline. And the crash that falls between a change and its
 * answer, which a SIGKILL hits only by chance, is made certain: the proxy in front of the API
 * drops every 40th report's answer after the orchestrator applied it, then refuses everything
 * for 2.5 s (longer than a client's own retries last). The miners ride it out without
 * restarting, nothing acknowledged is lost (the ledger accounts for every sample, every merge
 * has its manifest, every gradient upload holds the samples the ledger credits), and the
 * weights are still single-process training's on the merged samples.
 */
import { killAll } from '../support/cli.js';
import { oracleGap, removeRun, runChaos, type ChaosResult } from './support/swarm.js';

afterAll(killAll);

const EPOCHS = 3;
let r: ChaosResult;

beforeAll(async () => {
  r = await runChaos({
    name: 'orchestrator-crash',
    epochs: EPOCHS,
    samplesPerEpoch: 12,
    runOver: { phases: { drain_s: 60, upload_s: 4, merge_s: 30, lease_s: 3 } },
    crashes: [
      { on: 'item', epoch: 0 },
      { on: 'upload', epoch: 1 },
      { on: 'merge', epoch: 1 },
      // down longer than a transfer's retries last (about 8 s): items in hand cannot be read
      { on: 'upload', epoch: 2, downMs: 9000 },
    ],
    api: { loseAnswers: { path: '/v1/report', every: 40, outageMs: 2500 } },
  });
  process.stderr.write(
    `orchestrator crash: ${r.restarts} restarts and ${r.answersLost} answers lost in ` +
      `${r.seconds.toFixed(0)} s, ${r.samplesDropped} samples not merged\n`,
  );
}, 300_000);
afterAll(() => r && removeRun(r));

describe('orchestrator crash', () => {
  it('restarted in every phase and across a deadline, lost answers, and the run finished', () => {
    expect(r.restarts).toBe(4);
    expect(r.answersLost).toBeGreaterThanOrEqual(2);
    expect(r.replicaHashes.get(`0/${EPOCHS}`)?.size).toBe(1);
  });

  it('the miners rode it out: none restarted, none refused an input it could not read, every one stopped cleanly at the end', () => {
    expect(r.minersStarted).toBe(6);
    expect(r.refusals).toEqual({});
    expect(r.exitCodes).toEqual(r.exitCodes.map(() => 0));
  });

  it('lost nothing acknowledged: the ledger accounts for every sample, every merge has its manifest, every upload the credited samples', () => {
    expect(r.dataLost).toBe(0);
    expect(r.creditMismatches).toBe(0);
  });

  it('ends with the weights single-process training computes on the merged samples', async () => {
    for (const { gap, moved } of await oracleGap(r, EPOCHS)) {
      expect(gap).toBeLessThanOrEqual(1e-4);
      expect(moved).toBeGreaterThan(1e-3);
    }
  }, 120_000);
});
