/**
 * The store-fault scenario (store-faults.test.ts on the local store, store-faults-s3.test.ts on
 * S3): a real swarm whose every store transfer goes through the fault proxy, which answers 5xx,
 * resets connections, stalls, cuts bodies and flips bytes at set rates: in front of the
 * orchestrator's local store, once also resetting everything for 10 s (an outage), and in front
 * of S3 (s3rver, the participants' presigned transfers; bytes flipped in downloads only, since
 * s3rver, unlike S3, keeps an upload that fails its x-amz-checksum-sha256). Training goes on,
 * nothing damaged is accepted anywhere (the final weights are single-process training's on the
 * merged samples, the replicas agree), and no honest miner refuses a good input for damage done
 * on the way.
 */
import { oracleGap, removeRun, runChaos, type ChaosResult } from './swarm.js';

const EPOCHS = 2;

/** The scenario's tests, in the caller's test file. */
export function storeFaultsScenario(s3: boolean): void {
  let r: ChaosResult;

  beforeAll(async () => {
    r = await runChaos({
      name: s3 ? 'store-faults-s3' : 'store-faults',
      epochs: EPOCHS,
      samplesPerEpoch: 8,
      s3,
      store: {
        stallMs: 300,
        rates: { error: 0.04, reset: 0.04, stall: 0.04, truncate: 0.04, flip: 0.04 },
      },
      // and once out of reach for longer than a transfer's retries last (about 8 s)
      ...(s3 ? {} : { storeOutage: { epoch: 1, ms: 10_000 } }),
    });
    process.stderr.write(
      `${r.name}: ${r.faultsInjected} injected in ${r.seconds.toFixed(0)} s, ${r.samplesDropped} samples not merged, refusals ${JSON.stringify(r.refusals)}\n`,
    );
  }, 300_000);
  afterAll(() => r && removeRun(r));

  it('injected faults of every kind, and training went on to the last epoch with nothing lost', () => {
    for (const n of Object.values(r.storeFaults)) expect(n).toBeGreaterThanOrEqual(1);
    expect(r.faultsInjected).toBeGreaterThanOrEqual(20);
    expect(r.dataLost).toBe(0);
    expect(r.exitCodes).toEqual(r.exitCodes.map(() => 0));
  });

  it('no miner refused a good input: damage on the way was read again, an outage waited out', () => {
    expect(r.refusals).toEqual({});
    expect(r.ledger.filter((l) => l.state.startsWith('dropped:'))).toEqual([]);
  });

  it('accepted nothing damaged: replicas agree and the weights are single-process training’s', async () => {
    for (const hashes of r.replicaHashes.values()) expect(hashes.size).toBe(1);
    for (const { gap, moved } of await oracleGap(r, EPOCHS)) {
      expect(gap).toBeLessThanOrEqual(1e-4);
      expect(moved).toBeGreaterThan(1e-3);
    }
  }, 120_000);
}
