/**
 * Holes a hostile participant could use, closed: each test reproduces one attack against the
 * coordinator (fake clock, simulated miners, no server) and checks that it changes nothing it
 * should not. The defect numbers are those of the security issue.
 */
import { render } from '../../../src/cli/status.js';
import { CoordMiner, crew, makeSwarm, refused, runConfig } from '../../support/swarm.js';
import type { SwarmStatus } from '../../../src/protocol/swarm-messages.js';

describe('defect 5: losses a model cannot produce', () => {
  it('refuses tail losses beyond the bound, so no mean of finite losses is stored as Infinity', () => {
    const s = makeSwarm({ costs: [1], run: runConfig({ batch: 2, samples_per_epoch: 4 }) });
    const [m] = crew(s, 1);
    const { items } = m.work(1);
    expect(items[0].kind).toBe('tail');
    const before = s.dump();
    const e = refused(() =>
      s.tx(() =>
        s.coord.report(
          'm0',
          { lease: items[0].lease, losses: [1.7e308, 1.7e308] },
          undefined,
          s.clock.now,
        ),
      ),
    );
    expect(e.code).toBe('E_BAD_LOSS');
    expect(e.message).toMatch(/at most 55\.45/); // 10 ln(256)
    expect(s.dump()).toBe(before);
    // An honest loss is taken as before.
    s.tx(() =>
      s.coord.report('m0', { lease: items[0].lease, losses: [5.5, 5.6] }, undefined, s.clock.now),
    );
    expect(s.coord.status(s.clock.now).losses.map((l) => l.loss)).toEqual([5.55]);
  });

  it('shows a status with a missing loss instead of crashing `iota status`', () => {
    const s = makeSwarm({ costs: [1] });
    const status = s.coord.status(s.clock.now);
    const broken = {
      ...status,
      losses: [{ epoch: 0, item: 0, loss: null, at: s.clock.now }],
      evals: [{ epoch: 0, loss: null, windows: 16, at: s.clock.now }],
      throughput: null,
    } as unknown as SwarmStatus;
    const text = render(broken);
    expect(text).toMatch(/recent losses: -/);
    expect(text).toMatch(/held-out loss: e0 -/);
  });
});

describe('defect 7: a miner that takes work and never reports it', () => {
  it('loses each lease at its due time though it heartbeats, gets a fault, and gets no new room', () => {
    const s = makeSwarm({
      costs: [1],
      run: runConfig({ samples_per_epoch: 16, batch: 1, in_flight: 2 }, { lease_s: 5 }),
    });
    const [honest, hoarder] = [new CoordMiner(s, 'h'), new CoordMiner(s, 'x')];
    honest.join(0);
    hoarder.join(0);
    // The honest miner's items take 10 ms each: the stage's rate is known.
    for (let i = 0; i < 3; i++) {
      const [it] = honest.work(1).items;
      s.advance(10);
      honest.report(it);
    }
    s.advance(10);
    const taken = hoarder.work(2).items;
    expect(taken).toHaveLength(2);
    const expires = () => taken.map((it) => s.state.taskByLease(it.lease)?.expires);
    // It heartbeats, but its leases end at their due time (2 s: the floor, since 4 x 10 ms is less).
    for (let t = 0; t < 6; t++) {
      s.advance(500);
      hoarder.heartbeat();
      honest.heartbeat();
    }
    expect(expires()).toEqual([undefined, undefined]);
    const lapses = s.repo.db
      .prepare("SELECT miner, kind FROM faults WHERE kind = 'lease_lapsed'")
      .all() as Array<{ miner: string }>;
    expect(lapses.map((f) => f.miner)).toEqual(['x', 'x']);
    // Its items go to the honest miner; the hoarder gets no new room until the lapses wear off.
    expect(
      honest
        .work(2)
        .items.map((it) => it.item)
        .sort(),
    ).toEqual(taken.map((it) => it.item).sort());
    const idle = hoarder.work(2);
    expect(idle.items).toEqual([]);
    expect(idle.idle?.message).toMatch(/lapsed lease/);
  });

  it('never counts the orchestrator’s own downtime against a lease', () => {
    const s = makeSwarm({ costs: [1], run: runConfig({}, { lease_s: 5 }) });
    const m = new CoordMiner(s, 'm');
    m.join(0);
    const [it] = m.work(1).items;
    s.clock.now += 60_000; // the orchestrator was down for a minute
    s.tx(() => s.coord.resume(s.clock.now));
    m.heartbeat();
    s.advance(100);
    expect(s.state.taskByLease(it.lease)?.state).toBe('leased');
  });
});

describe('defect 8: a strategic cheater is released ever harder', () => {
  it('needs twice the passes after every fault, and is checked more often once released', () => {
    const draws = [0.3];
    const s = makeSwarm({
      costs: [1],
      run: runConfig({
        batch: 1,
        samples_per_epoch: 400,
        validation: { rate: 0.1, probation_passes: 2 },
      }),
      validate: { random: () => draws[0] },
    });
    const v = s.validation!;
    const m = new CoordMiner(s, 'm');
    m.join(0);
    const standing = () =>
      s.state.db.prepare("SELECT * FROM standing WHERE miner = 'm'").get() as {
        probation: number;
        failures: number;
      };
    /** One item of m's, and the validator's verdict on it when it is checked. */
    const item = (pass: boolean): boolean => {
      m.round(1);
      const tasks = s.tx(() => v.tasksFor('val', 4, s.clock.now));
      for (const t of tasks)
        s.tx(() => v.verdict('val', t.id, pass, pass ? 0 : 1, 'x', s.clock.now));
      s.advance(1);
      return tasks.length > 0;
    };
    const passesToRelease = () => {
      let n = 0;
      while (standing().probation === 1) {
        expect(item(true)).toBe(true); // on probation every item is checked
        n++;
      }
      return n;
    };
    expect(passesToRelease()).toBe(2); // a new miner
    item(false); // never checked at the run's rate 0.1 with this draw...
    expect(standing().failures).toBe(0);
    draws[0] = 0.05;
    expect(item(false)).toBe(true); // ...so the cheat is found here
    expect(standing()).toMatchObject({ probation: 1, failures: 1 });
    expect(passesToRelease()).toBe(2);
    draws[0] = 0.15; // above the run's rate, within twice it: checked after one fault
    expect(item(false)).toBe(true);
    expect(standing()).toMatchObject({ probation: 1, failures: 2 });
    expect(passesToRelease()).toBe(4);
    draws[0] = 0.35; // within four times the rate: checked after two faults
    expect(item(true)).toBe(true);
  });
});
