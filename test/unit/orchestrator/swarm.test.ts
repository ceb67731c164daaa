/**
 * The coordinator with a fake clock and simulated miners (no server, no model): assignment,
 * allocation, leases, the ledger, drains and phases.
 */
import {
  CoordMiner,
  crew,
  refused,
  InstantMerge,
  ledgerTotals,
  makeSwarm,
  runConfig,
  type TestSwarm,
} from '../../support/swarm.js';
import { keys } from '../../../src/store/keys.js';

/** Rounds of work until no stage is training `epoch` or nothing moves. */
function trainEpoch(s: TestSwarm, miners: CoordMiner[], epoch: number, maxRounds = 200): void {
  for (let r = 0; r < maxRounds; r++) {
    if (s.state.stages().every((st) => st.epoch !== epoch || st.phase !== 'training')) return;
    let did = 0;
    for (const m of miners) did += m.round();
    for (const m of [...miners].reverse()) did += m.round();
    if (did === 0) s.advance(100);
  }
}

function uploadAll(s: TestSwarm, miners: CoordMiner[], epoch: number): void {
  for (const m of miners) {
    const st = s.state.member(m.id)!.stage;
    if (s.state.ledger.minerCredit(epoch, st, m.id) > 0) m.uploadGradient(epoch, st);
  }
}

/** One stage, `n` miners that each did `items` one-sample items: the stage then enters UPLOADING (upload_s 100). */
function uploadingStage(n: number, items: number): { s: TestSwarm; miners: CoordMiner[] } {
  const s = makeSwarm({
    costs: [1],
    merge: 'instant',
    run: runConfig({ samples_per_epoch: n * items, in_flight: items }, { upload_s: 100 }),
  });
  const miners = crew(s, n);
  for (const m of miners) expect(m.work(items).items).toHaveLength(items);
  for (const m of miners) for (const it of [...m.held]) m.report(it);
  s.advance(1);
  return { s, miners };
}

describe('the coordinator', () => {
  it('runs whole epochs: allocation to the target, pipeline, uploads, merge, next epoch', () => {
    const s = makeSwarm({ merge: 'instant' });
    const miners = crew(s);
    for (let epoch = 0; epoch < 3; epoch++) {
      trainEpoch(s, miners, epoch);
      expect(s.state.stages().map((st) => st.phase)).toEqual([
        'uploading',
        'uploading',
        'uploading',
      ]);
      // The UPLOADING reply carries the duty: what to upload, where, by when (nothing more).
      const duty = miners[1].work().duty!;
      expect(duty).toEqual({
        epoch,
        stage: 1,
        samples: 8,
        key: keys.gradient({ run: 'test-run', epoch, stage: 1, owner: 'm1' }),
        deadline: s.state.stage(1).deadline,
      });
      uploadAll(s, miners, epoch);
      expect(s.state.stages().map((st) => [st.epoch, st.phase])).toEqual([
        [epoch + 1, 'training'],
        [epoch + 1, 'training'],
        [epoch + 1, 'training'],
      ]);
      expect(ledgerTotals(s, epoch)).toEqual({ merged: 24 });
      // Sample ids of epoch E are E * target + [0, target).
      expect(
        s.state.db
          .prepare(
            'SELECT MIN(first_sample) AS a, MAX(first_sample) AS b FROM items WHERE epoch = ?',
          )
          .get(epoch),
      ).toEqual({ a: epoch * 8, b: epoch * 8 + 7 });
    }
    const merge = (s.merge as InstantMerge).began;
    expect(
      merge.filter((b) => b.epoch === 0).map((b) => b.participants.map((p) => [p.miner, p.n])),
    ).toEqual([[['m0', 8]], [['m1', 8]], [['m2', 8]]]);
  });

  it('hands out backward before forward, to the miner that did the forward, within in_flight', () => {
    const s = makeSwarm({ costs: [1, 1] });
    const [h, t] = crew(s);
    const first = h.work(8);
    expect(first.items.map((i) => i.kind)).toEqual(['fwd', 'fwd']); // in_flight 2
    expect(first.items[0].windows).toHaveLength(1);
    expect(h.work(8).idle?.reason).toBe('in_flight_limit');
    for (const it of [...h.held]) h.report(it);
    expect(h.work().idle?.reason).toBe('in_flight_limit'); // forwarded items wait for their backward
    t.round(); // the tail does both
    const back = h.work(8);
    expect(back.items.map((i) => [i.kind, i.item])).toEqual([
      ['bwd', 0],
      ['bwd', 1],
    ]);
    expect(back.items[0].dy?.key).toMatch(/\/e0\/act\/0\/1\/bwd\/m1-/);
    expect(back.items[0].windows).toHaveLength(1); // recompute from the data window
  });

  it("gives a silent miner's backward to another miner of the stage, who recomputes from the stored input", () => {
    const s = makeSwarm({ costs: [1, 1, 1] });
    const [a, b, c] = crew(s);
    const other = new CoordMiner(s, 'b2');
    other.join(1);
    a.report(a.work(1).items[0]);
    expect(b.round()).toBe(1); // b forwards item 0 at stage 1
    c.round();
    // b goes silent; its backward waits for it, then goes to b2 with b's input.
    expect(other.work().items).toEqual([]);
    s.advance(6000);
    a.heartbeat();
    c.heartbeat();
    const w = other.work();
    expect(w.items.map((i) => [i.kind, i.item])).toEqual([['bwd', 0]]);
    expect(w.items[0].x?.key).toMatch(/\/e0\/act\/0\/0\/fwd\/m0-/);
    expect(w.items[0].dy?.key).toMatch(/\/e0\/act\/0\/2\/bwd\/m2-/);
  });

  it('expires a silent lease, offers the item again, and refuses the late report with E_LEASE_LOST', () => {
    const s = makeSwarm();
    const [a] = crew(s);
    const a2 = new CoordMiner(s, 'a2');
    a2.join(0);
    const it = a.work(1).items[0];
    s.advance(4000);
    expect(a.heartbeat().leases_renewed).toBe(1); // a computing miner keeps its lease
    s.advance(4000);
    expect(s.state.taskByLease(it.lease)?.state).toBe('leased');
    s.advance(6000); // now silent past the lease
    expect(s.state.taskByLease(it.lease)).toBeUndefined();
    const again = a2.work(1).items[0];
    expect(again.item).toBe(it.item);
    const before = s.dump();
    expect(refused(() => a.report(it)).code).toBe('E_LEASE_LOST');
    expect(s.dump()).toBe(before);
    expect(s.coord.expiries).toBe(1);
  });

  it('drains after the target, drops leftovers as epoch_closed, and the ledger adds up', () => {
    const s = makeSwarm({ merge: 'instant', run: runConfig({ in_flight: 8 }) });
    const [h, b, t] = crew(s);
    h.round(8);
    // Only two items get through the body and back; the rest stay.
    b.work(2);
    for (const it of [...b.held]) b.report(it);
    t.round();
    b.round(2);
    h.round();
    const ep = s.state.epoch(0)!;
    expect(ep.allocated).toBe(8);
    expect(ep.closed_at).not.toBeNull();
    expect(h.work().idle).toMatchObject({
      reason: 'epoch_full',
      next_change_at: ep.drain_deadline,
    });
    s.advance(21_000);
    const totals = ledgerTotals(s, 0);
    expect(totals['dropped:epoch_closed']).toBeGreaterThan(0);
    expect(Object.values(totals).reduce((a, v) => a + v, 0)).toBe(8 * 3);
    expect(s.state.stages().every((st) => st.phase === 'uploading' || st.epoch === 1)).toBe(true);
    uploadAll(s, [h, b, t], 0);
    const after = ledgerTotals(s, 0);
    expect(after.merged).toBe(totals.credited);
    expect(after.merged + after['dropped:epoch_closed']).toBe(24);
  });

  it('closes UPLOADING when the decaying requirement is met, never below the floor; silent miners lose their samples', () => {
    const { s, miners } = uploadingStage(4, 2);
    expect(s.state.stage(0).phase).toBe('uploading');
    /** Time passes with `alive` heard from every second (a lease is 5 s). */
    const pass = (ms: number, alive: typeof miners) => {
      for (let t = 0; t < ms; t += 1000) {
        for (const m of alive) m.heartbeat();
        s.advance(1000);
      }
    };
    miners[0].uploadGradient(0, 0); // 2 of 8 = 25%: enough only once the requirement has decayed to the floor
    pass(50_000, miners.slice(1));
    expect(s.state.stage(0).phase).toBe('uploading'); // need 1 - 0.75 * 0.5 = 0.625 -> 5 samples
    miners[1].uploadGradient(0, 0); // 4 of 8, need 5 at t = 50 s; m2 and m3 are still heard from
    expect(s.state.stage(0).phase).toBe('uploading');
    pass(15_000, [miners[2]]); // m3 goes silent; m2 is heard from but does not upload
    expect(s.state.stage(0).phase).toBe('uploading'); // t = 65 s: need ceil((1 - 0.75 * 0.65) * 8 = 4.1) = 5
    pass(10_000, [miners[2]]); // t = 75 s: need ceil((1 - 0.75 * 0.75) * 8 = 3.5) = 4
    expect(s.state.stage(0).epoch).toBe(1);
    // m0 and m1 merged; m3 went silent and lost its samples; m2 was late.
    expect(ledgerTotals(s, 0)).toEqual({ merged: 4, lost_with_miner: 2, 'dropped:upload_late': 2 });
  });

  it('closes UPLOADING as soon as every credited miner still heard from has uploaded, if the floor is met', () => {
    const { s, miners } = uploadingStage(4, 2);
    miners[0].uploadGradient(0, 0);
    miners[1].uploadGradient(0, 0); // 4 of 8: the requirement is 8 for the first 4 s
    s.advance(4000);
    expect(s.state.stage(0).phase).toBe('uploading'); // m2 and m3 were heard from within a lease
    s.advance(2000); // now they are silent: nobody is left to wait for
    expect(s.state.stage(0).epoch).toBe(1);
    expect(ledgerTotals(s, 0)).toEqual({ merged: 4, lost_with_miner: 4 });
  });

  it('waits for every credited miner at first: one uploading a moment after the others keeps its credit', () => {
    const { s, miners } = uploadingStage(10, 1);
    expect(s.state.stage(0).phase).toBe('uploading');
    for (const m of miners.slice(0, 9)) m.uploadGradient(0, 0); // 90%: the old default's requirement, met at once
    s.advance(1000);
    expect(s.state.stage(0).phase).toBe('uploading');
    miners[9].heartbeat();
    miners[9].uploadGradient(0, 0);
    expect(s.state.stage(0).epoch).toBe(1);
    expect(ledgerTotals(s, 0)).toEqual({ merged: 10 });
  });

  it('abandons the epoch visibly when not even the floor is uploaded by the deadline', () => {
    const s = makeSwarm({
      costs: [1],
      merge: 'instant',
      run: runConfig({ samples_per_epoch: 4, in_flight: 4 }, { upload_s: 10 }),
    });
    const [m] = crew(s, 1);
    m.work(4);
    for (const it of [...m.held]) m.report(it);
    s.advance(1);
    expect(s.state.stage(0).phase).toBe('uploading');
    for (let i = 0; i < 11; i++) {
      m.heartbeat();
      s.advance(1000);
    }
    const st = s.state.stage(0);
    expect(st).toMatchObject({ epoch: 1, phase: 'training' });
    expect(st.note).toMatch(/epoch 0 abandoned: only 0 of 4/);
    expect(st.manifest.epoch).toBe(0); // replicas keep w_0
    expect(ledgerTotals(s, 0)).toEqual({ 'dropped:upload_failed': 4 });
  });

  it('refuses a gradient outside UPLOADING with E_PHASE_CLOSED, the phase and the next change', () => {
    const s = makeSwarm();
    const [m] = crew(s);
    m.round();
    const before = s.dump();
    const e = refused(() => m.uploadGradient(0, 0));
    expect(e.code).toBe('E_PHASE_CLOSED');
    expect(e.extra).toMatchObject({ phase: 'TRAINING(0)' });
    expect(e.hint).toMatch(/POST \/v1\/report/);
    expect(s.dump()).toBe(before);
  });

  it('gives a miner that joins mid-epoch work in that epoch', () => {
    const s = makeSwarm({ merge: 'instant' });
    const miners = crew(s);
    for (const m of miners) m.round();
    const late = new CoordMiner(s, 'late');
    late.join(0);
    expect(late.work(1).items).toHaveLength(1);
    expect(late.held[0].epoch).toBe(0);
  });

  it('assigns auto joiners to starved stages and rebalances only at the epoch boundary, after merge duties', () => {
    const s = makeSwarm({ merge: 'instant' });
    const auto = Array.from({ length: 3 }, (_, i) => new CoordMiner(s, `auto${i}`));
    expect(auto.map((m) => m.join('auto').stage)).toEqual([0, 1, 2]);
    // Two more explicit miners at stage 0: stages 1 and 2 have a third of its capacity.
    const extra = [new CoordMiner(s, 'x0'), new CoordMiner(s, 'x1')];
    for (const m of extra) m.join(0);
    const all = [...auto, ...extra];
    trainEpoch(s, all, 0);
    for (const m of all)
      s.state.db.prepare('UPDATE members SET rate = 10 WHERE miner = ?').run(m.id); // equal measured speeds
    expect(s.state.member('auto0')!.next_stage).toBeNull(); // no move mid-epoch
    uploadAll(s, all, 0);
    // At the boundary the auto miner of stage 0 moves to a starved stage; explicit ones stay.
    const moved = s.state.members().filter((m) => m.next_stage !== null);
    expect(moved.map((m) => m.miner)).toEqual(['auto0']);
    expect(auto[0].work().stage).toBe(moved[0].next_stage);
  });
});
