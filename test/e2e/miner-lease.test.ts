/**
 * A miner whose lease is taken from it while it computes (its item dropped because a check
 * failed the upstream work, or another miner refused its input) loses that item and carries on:
 * the refusal may come at the upload URL as at the report. A real Miner and its compute thread in
 * this process, an orchestrator in this process, a simulated producer upstream.
 */
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadRunConfig } from '../../src/config/index.js';
import { encodeActivation } from '../../src/compute/tensors.js';
import { Miner, type MinerEvent } from '../../src/miner/miner.js';
import { newIdentity, type Identity } from '../../src/protocol/keys.js';
import { SimMiner } from '../support/sim-miner.js';
import { startSwarmServer } from '../support/swarm-server.js';

/** Events as they come, and a promise for the first one that passes a test. */
class Events {
  readonly all: MinerEvent[] = [];
  private waiters: Array<{ test: (e: MinerEvent) => boolean; done: (e: MinerEvent) => void }> = [];
  push = (e: MinerEvent): void => {
    this.all.push(e);
    this.waiters = this.waiters.filter((w) => !(w.test(e) && (w.done(e), true)));
  };
  next(test: (e: MinerEvent) => boolean): Promise<MinerEvent> {
    const seen = this.all.find(test);
    return seen ? Promise.resolve(seen) : new Promise((done) => this.waiters.push({ test, done }));
  }
}

/**
 * A real Miner in this process (its compute thread from dist/), with its events; `next` waits
 * for an event, and fails at once if the miner dies first instead of leaving the test waiting.
 */
function runMiner(url: string, identity: Identity, layer: number) {
  const events = new Events();
  const miner = new Miner({
    orchestrator: url,
    identity,
    layer,
    backend: 'cpu',
    version: 'test',
    onEvent: events.push,
    computeWorker: pathToFileURL(resolve('dist/compute/compute-worker.js')),
  });
  const running = miner.run().then(
    () => 'stopped',
    (e: Error) => `died: ${e.message}`,
  );
  const next = async (test: (e: MinerEvent) => boolean) => {
    const r = await Promise.race([events.next(test), running]);
    if (typeof r === 'string')
      throw new Error(`the miner ${r} before the event the test waits for`);
    return r;
  };
  const stop = async () => {
    miner.stop();
    return running;
  };
  return { events, next, stop };
}

describe('a miner that loses a lease while computing', () => {
  it.each(['upload', 'report', 'expired URL'] as const)(
    'at the %s: emits `lost` and does the next item',
    async (at) => {
      const o = await startSwarmServer();
      const { model } = loadRunConfig(join(o.dir, 'run.yaml'));
      const shape: [number, number, number] = [1, model.seq, model.bottleneck];
      const producer = new SimMiner(o.url, 'swarm-test', undefined, () => o.clock.now);
      await producer.register('producer');
      producer.client.runHash = o.configHash;
      await producer.join(0);
      producer.outputFor = () =>
        encodeActivation(
          new Float32Array(shape[1] * shape[2]).map(() => Math.random() - 0.5),
          shape,
          'bf16',
        );

      // The first item the miner takes is dropped just before its upload URL or its report is handled.
      const coord = o.coord;
      const identity = newIdentity();
      let dropped: number | undefined;
      const dropFirst = (lease: string) => {
        const t = coord.state.taskByLease(lease);
        if (dropped === undefined && t?.miner === identity.id) {
          dropped = t.item;
          coord.state.dropItem(t.item, 'dropped:failed_validation');
        }
      };
      if (at === 'expired URL') {
        // The lease's URL is issued, then the store's clock passes its expiry before the PUT
        // (a due time that passed on a loaded machine).
        const leaseExpiry = coord.leaseExpiry.bind(coord);
        let armed: 'no' | 'issuing' | 'issued' | 'done' = 'no';
        coord.leaseExpiry = (miner, lease, now) => {
          const t = coord.state.taskByLease(lease);
          if (dropped === undefined && t?.miner === identity.id) {
            dropped = t.item;
            armed = 'issuing';
          }
          return leaseExpiry(miner, lease, now);
        };
        const store = o.store as unknown as { clock: () => number };
        store.clock = () => {
          if (armed === 'issuing') armed = 'issued';
          else if (armed === 'issued') return ((armed = 'done'), Date.now() + 3_600_000);
          return Date.now();
        };
      } else if (at === 'upload') {
        const leaseExpiry = coord.leaseExpiry.bind(coord);
        coord.leaseExpiry = (miner, lease, now) => (
          dropFirst(lease),
          leaseExpiry(miner, lease, now)
        );
      } else {
        // Read as the report arrives, before its state change.
        const expectedOutput = coord.expectedOutput.bind(coord);
        coord.expectedOutput = (lease) => (dropFirst(lease), expectedOutput(lease));
      }

      const { events, next, stop } = runMiner(o.url, identity, 1);
      try {
        await next((e) => e.event === 'joined');
        for (let i = 0; i < 2; i++) {
          const w = await producer.work(1);
          expect(w.items).toHaveLength(1);
          await producer.complete(w.items[0], { skipInputs: true });
          if (i === 0) {
            const lost = await next((e) => e.event === 'lost');
            expect(lost).toMatchObject(
              at === 'expired URL'
                ? { code: 'E_URL_EXPIRED' }
                : {
                    code: 'E_LEASE_LOST',
                    message: expect.stringMatching(new RegExp(`item ${dropped} was dropped`)),
                  },
            );
          }
        }
        const done = await next((e) => e.event === 'item');
        expect(done).toMatchObject({ kind: 'fwd', stage: 1 });
        expect(done.item).not.toBe(dropped);
        expect(events.all.filter((e) => e.event === 'item')).toHaveLength(1);
        // The dropped item stays void (an expired one is still leased, till its lease lapses);
        // the other is held for its backward.
        expect(coord.state.task(dropped!, 1, 'fwd')?.state).toBe(
          at === 'expired URL' ? 'leased' : 'void',
        );
        expect(coord.state.task(done.item as number, 1, 'fwd')?.state).toBe('held');
      } finally {
        await stop();
        await producer.close();
        await o.close();
      }
      expect(events.all.at(-1)).toMatchObject({ event: 'stopped' });
    },
    60_000,
  );
});

describe('defect 10: an honest miner on a legal state', () => {
  it('carries on when its credit is voided after its upload duty was issued', async () => {
    const o = await startSwarmServer({
      stages: '[[-1, -1]]',
      runOver: { samples_per_epoch: 2, batch: 1, in_flight: 2 },
    });
    const coord = o.coord;
    const identity = newIdentity();
    // The miner's credit is voided (as a failed check voids it) just before its upload URL.
    const expiry = coord.uploads.expiry.bind(coord.uploads);
    let voided = false;
    coord.uploads.expiry = (miner, epoch, stage, size, now) => {
      if (!voided && miner === identity.id) {
        voided = true;
        coord.state.ledger.move(epoch, stage, 'credited', 'dropped:failed_validation', [miner]);
      }
      return expiry(miner, epoch, stage, size, now);
    };
    // Its requests for work that wait (long polls) once the credit is voided.
    let waitedAfterVoid = 0;
    const waitedAgain = new Promise<void>((resolve) =>
      coord.waits.on('wait', (m: string) => {
        if (m === identity.id && voided && ++waitedAfterVoid === 1) resolve();
      }),
    );
    const { events, next, stop } = runMiner(o.url, identity, 0);
    try {
      const skipped = await next((e) => e.event === 'upload_skipped');
      expect(skipped).toMatchObject({ event: 'upload_skipped', code: 'E_NOTHING_TO_UPLOAD' });
      // Still at work: it asks again and waits for the stage's next change (a long poll).
      await waitedAgain;
      expect(waitedAfterVoid).toBeGreaterThan(0);
    } finally {
      expect(await stop()).toBe('stopped');
      await o.close();
    }
    expect(events.all.at(-1)).toMatchObject({ event: 'stopped' });
  }, 60_000);
});
