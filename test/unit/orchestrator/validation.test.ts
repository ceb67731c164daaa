/**
 * The orchestrator's side of validation with a fake clock: pathway attribution orders the
 * checks, a lost merge dispute quarantines the merger, and quarantined miners score zero.
 */
import { FLAG_MIN_ITEMS, Pathways } from '../../../src/orchestrator/swarm/pathways.js';
import type { WorkItem } from '../../../src/orchestrator/swarm/contracts.js';
import { CoordMiner, makeSwarm, outputOf, runConfig, type TestSwarm } from '../../support/swarm.js';
import { rng } from '../../support/rng.js';

/** Roughly normal noise (sum of uniforms), mean 0, standard deviation `sd`. */
const noise = (r: () => number, sd: number) => (r() + r() + r() + r() - 2) * sd * Math.sqrt(3);

describe('pathway attribution', () => {
  it('flags a miner whose samples end with clearly worse losses, and nobody among equals', () => {
    const r = rng(1);
    const equals = new Pathways();
    for (let i = 0; i < 400; i++)
      equals.add(Math.floor(i / 100), ['h', i % 2 ? 'a' : 'b', 't'], 4 + noise(r, 0.3));
    expect(equals.flaggedMiners()).toEqual([]);

    const p = new Pathways();
    const fresh: string[] = [];
    let flaggedAfter = -1;
    for (let i = 0; i < 200 && flaggedAfter < 0; i++) {
      const m = i % 2 ? 'a' : 'b';
      fresh.push(...p.add(0, ['h', m, 't'], 4 + (m === 'b' ? 0.6 : 0) + noise(r, 0.3)));
      if (p.isFlagged('b')) flaggedAfter = i;
    }
    expect(fresh).toEqual(['b']);
    expect(flaggedAfter).toBeGreaterThanOrEqual(2 * FLAG_MIN_ITEMS - 1);
    expect(flaggedAfter).toBeLessThan(40);
    // The stage's only miner is never compared with anyone.
    expect(p.isFlagged('h') || p.isFlagged('t')).toBe(false);
  });

  it('forgets epochs older than the previous one', () => {
    const p = new Pathways();
    const r = rng(2);
    for (let i = 0; i < 40; i++)
      p.add(0, ['h', i % 2 ? 'a' : 'b', 't'], 4 + (i % 2 ? 0 : 1) + noise(r, 0.1));
    expect(p.isFlagged('b')).toBe(true);
    for (let e = 1; e <= 2; e++)
      for (let i = 0; i < 40; i++) p.add(e, ['h', i % 2 ? 'a' : 'b', 't'], 4 + noise(r, 0.1));
    expect(p.isFlagged('b')).toBe(false);
  });
});

describe('validation in the coordinator', () => {
  /** Three stages; stage 1 has two miners and `b`'s forwards make the tail's losses worse. */
  function swarmWithCulprit(): {
    s: TestSwarm;
    miners: CoordMiner[];
    play: (rounds: number) => void;
  } {
    const r = rng(9);
    const s = makeSwarm({
      run: runConfig({ samples_per_epoch: 400, validation: { rate: 0.25, probation_passes: 0 } }),
      validate: { random: rng(4) },
    });
    const miners = [
      new CoordMiner(s, 'h'),
      new CoordMiner(s, 'a'),
      new CoordMiner(s, 'b'),
      new CoordMiner(s, 't'),
    ];
    [0, 1, 1, 2].forEach((layer, i) => miners[i].join(layer));
    const tailLoss = (it: WorkItem) => {
      const fwd = s.state.task(it.item, 1, 'fwd')!;
      return it.samples.map(() => 4 + (fwd.miner === 'b' ? 1 : 0) + noise(r, 0.3));
    };
    const play = (rounds: number) => {
      for (let i = 0; i < rounds; i++) {
        // a and b take turns asking first, so both get stage 1's forwards
        for (const m of i % 2 ? [miners[0], miners[2], miners[1], miners[3]] : miners) {
          const items = m.work(2).items;
          for (const it of items) {
            const out = outputOf(it);
            s.tx(() =>
              s.coord.report(
                m.id,
                {
                  lease: it.lease,
                  output: out,
                  losses: it.kind === 'tail' ? tailLoss(it) : undefined,
                },
                out,
                s.clock.now,
              ),
            );
          }
          m.held.length = 0;
        }
        s.advance(100);
      }
    };
    return { s, miners, play };
  }

  it('checks the work of the miner that pathway attribution flags first', () => {
    const { s, play } = swarmWithCulprit();
    play(40);
    const v = s.validation!;
    expect(v.pathways.flaggedMiners()).toEqual(['b']);
    const rows = s.repo.db
      .prepare("SELECT miner, reason FROM validations WHERE state = 'open' ORDER BY id")
      .all() as Array<{ miner: string; reason: string }>;
    expect(rows.filter((x) => x.reason === 'attribution').every((x) => x.miner === 'b')).toBe(true);
    const bOpen = rows.filter((x) => x.miner === 'b').length;
    expect(bOpen).toBeGreaterThan(0);
    expect(rows.some((x) => x.miner !== 'b')).toBe(true); // random checks of the others wait behind
    const tasks = s.tx(() => v.tasksFor('validator', rows.length, s.clock.now));
    expect(tasks.slice(0, bOpen).map((t) => t.miner)).toEqual(Array(bOpen).fill('b'));
    // After the flag, every item b reports is checked.
    const t0 = s.clock.now;
    play(5);
    const later = s.repo.db
      .prepare(
        "SELECT item, stage, kind FROM tasks WHERE miner = 'b' AND done_at >= ? ORDER BY item, kind",
      )
      .all(t0);
    const checked = s.repo.db
      .prepare(
        "SELECT item, stage, kind FROM validations WHERE miner = 'b' AND created_at >= ? ORDER BY item, kind",
      )
      .all(t0);
    expect(later.length).toBeGreaterThan(0);
    expect(checked).toEqual(later);
  });

  it('quarantines a merger that lost a dispute (credit kept) and a quarantined miner scores zero', () => {
    const { s, play } = swarmWithCulprit();
    play(10);
    const v = s.validation!;
    const ledger = () =>
      JSON.stringify(
        s.repo.db
          .prepare(
            "SELECT state, COUNT(*) AS n FROM ledger WHERE miner = 'a' GROUP BY state ORDER BY state",
          )
          .all(),
      );
    const before = ledger();
    const score = (m: string) => v.scores().scores.find((x) => x.miner === m)!;
    expect(score('a').score).toBeGreaterThan(0);
    s.tx(() =>
      v.disputed(0, 1, 3, 'a', 'partition 3 step 2: abc against the agreed def', s.clock.now),
    );
    expect(score('a')).toMatchObject({ failures: 1, probation: true, score: 0, weight: 0 });
    expect(ledger()).toBe(before);
    const row = s.repo.db.prepare("SELECT * FROM validations WHERE kind = 'merge'").get() as {
      state: string;
      validator: string;
      item: number;
      miner: string;
    };
    expect(row).toMatchObject({ state: 'failed', validator: 'orchestrator', item: 3, miner: 'a' });
    // The other miners' weights share everything.
    const rest = v.scores().scores.filter((x) => x.miner !== 'a');
    expect(rest.reduce((acc, x) => acc + x.weight, 0)).toBeCloseTo(1, 9);
  });

  it('adds a spot check of a merged partition for a merger on probation and voids it once the result is gone', () => {
    const s = makeSwarm({ validate: { random: () => 0.99 } });
    const m = new CoordMiner(s, 'a');
    m.join(1);
    const v = s.validation!;
    s.tx(() => v.updated(0, 1, 2, 'a', s.clock.now)); // on probation: always
    s.tx(() => v.updated(0, 1, 2, 'nobody', s.clock.now)); // not on probation, random 0.99 >= rate: never
    const rows = s.repo.db.prepare('SELECT miner, kind, item, reason FROM validations').all();
    expect(rows).toEqual([{ miner: 'a', kind: 'merge', item: 2, reason: 'probation' }]);
    expect(s.tx(() => v.tasksFor('validator', 4, s.clock.now))).toEqual([]);
    expect(s.repo.db.prepare('SELECT state, detail FROM validations').get()).toEqual({
      state: 'void',
      detail: 'the merge result is gone',
    });
  });

  it('shares tasks between validators without duplicates, never about their own work, and survives a validator that dies or answers garbage', () => {
    const s = makeSwarm({
      costs: [1, 1],
      run: runConfig({
        samples_per_epoch: 40,
        validation: { rate: 0, probation_passes: 3, task_s: 10 },
      }),
      validate: { random: () => 0.5 },
    });
    const v = s.validation!;
    const [head, tail] = [new CoordMiner(s, 'head'), new CoordMiner(s, 'tail')];
    head.join(0);
    tail.join(1);
    expect(s.tx(() => v.tasksFor('v1', 4, s.clock.now))).toEqual([]); // v1 is live: probation outputs now wait for verdicts
    head.round(2); // two forwards on probation: checked, their tails held back
    expect(tail.work(2).items).toEqual([]);
    const rows = () =>
      s.repo.db
        .prepare('SELECT id, miner, state, validator FROM validations ORDER BY id')
        .all() as Array<{ id: number; miner: string; state: string; validator: string | null }>;
    expect(rows().map((r) => r.miner)).toEqual(['head', 'head']);
    // The head, were it also a validator, is never given its own work; v1 and v2 split the rest.
    expect(s.tx(() => v.tasksFor('head', 4, s.clock.now))).toEqual([]);
    const t1 = s.tx(() => v.tasksFor('v1', 1, s.clock.now));
    const t2 = s.tx(() => v.tasksFor('v2', 4, s.clock.now));
    expect([t1.length, t2.length]).toEqual([1, 1]);
    expect(t1[0].id).not.toBe(t2[0].id);
    expect(s.tx(() => v.tasksFor('v2', 4, s.clock.now))).toEqual([]);
    // Garbage: a verdict on a task it does not hold, or on none at all, changes nothing.
    const dump = s.dump();
    expect(() => s.tx(() => v.verdict('v2', t1[0].id, false, 1, 'not mine', s.clock.now))).toThrow(
      expect.objectContaining({ code: 'E_NO_TASK' }),
    );
    expect(() => s.tx(() => v.verdict('v2', 99_999, false, 1, 'nothing', s.clock.now))).toThrow(
      expect.objectContaining({ code: 'E_NO_TASK' }),
    );
    expect(s.dump()).toBe(dump);
    // v2 passes its task; v1 dies holding the other. After task_s the gate lifts (training goes
    // on) and the task goes to another validator; the miner is neither credited nor blamed.
    s.tx(() => v.verdict('v2', t2[0].id, true, 0, 'ok', s.clock.now));
    s.advance(10_001);
    expect(tail.work(2).items).toHaveLength(2);
    const again = s.tx(() => v.tasksFor('v2', 4, s.clock.now));
    expect(again.map((t) => t.id)).toEqual([t1[0].id]);
    expect(v.state.standing('head')).toMatchObject({ probation: 1, passes: 1, failures: 0 });
    expect(() => s.tx(() => v.verdict('v1', t1[0].id, false, 1, 'late', s.clock.now))).toThrow(
      expect.objectContaining({ code: 'E_NO_TASK' }),
    );
    expect(v.state.standing('head')).toMatchObject({ failures: 0 });
  });
});
