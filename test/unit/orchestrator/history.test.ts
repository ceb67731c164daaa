/**
 * The dashboard's history, from the swarm's own tables: per epoch its times, the samples merged
 * in every stage (the smallest stage), the sample-weighted training loss of its tail items and
 * its held-out loss; per miner its samples by epoch, stage and ledger state.
 */
import { openDatabase, type DB } from '../../../src/orchestrator/state/db.js';
import { History } from '../../../src/orchestrator/state/history.js';

function run(): DB {
  const db = openDatabase(':memory:');
  const epoch = db.prepare(
    'INSERT INTO epochs (epoch, started_at, allocated, closed_at, drained_at, merge_ms) VALUES (?, ?, ?, ?, ?, ?)',
  );
  epoch.run(0, 1000, 8, 3000, 4000, 700);
  epoch.run(1, 5000, 8, 6000, null, 0);
  const item = db.prepare(
    "INSERT INTO items (item, epoch, first_sample, n, windows, created_at) VALUES (?, ?, ?, ?, '[]', 0)",
  );
  const task = db.prepare(
    'INSERT INTO tasks (item, stage, kind, epoch, first_sample, n, state, ready_at, input, loss) ' +
      "VALUES (?, ?, ?, ?, 0, ?, 'done', 0, '{}', ?)",
  );
  // epoch 0: items of 3 and 1 samples with tail losses 2 and 6 (weighted mean 3), a forward too
  item.run(1, 0, 0, 3);
  item.run(2, 0, 3, 1);
  task.run(1, 1, 'tail', 0, 3, 2);
  task.run(2, 1, 'tail', 0, 1, 6);
  task.run(1, 0, 'fwd', 0, 3, null);
  // epoch 1: one item, not at the tail yet
  item.run(3, 1, 4, 4);
  task.run(3, 0, 'fwd', 1, 4, null);
  const ledger = db.prepare(
    'INSERT INTO ledger (item, stage, epoch, n, state, miner) VALUES (?, ?, ?, ?, ?, ?)',
  );
  ledger.run(1, 0, 0, 3, 'merged', 'alice');
  ledger.run(2, 0, 0, 1, 'merged', 'bob');
  ledger.run(1, 1, 0, 3, 'merged', 'carol');
  ledger.run(2, 1, 0, 1, 'lost_with_miner', 'carol');
  ledger.run(3, 0, 1, 4, 'credited', 'alice');
  db.prepare(
    "INSERT INTO evals (epoch, state, loss, windows, created_at) VALUES (0, 'done', 2.5, 8, 0)",
  ).run();
  db.prepare("INSERT INTO evals (epoch, state, created_at) VALUES (1, 'open', 0)").run();
  db.prepare(
    "INSERT INTO standing (miner, probation, passes, failures, quarantined_at) VALUES ('bob', 1, 2, 1, 4500)",
  ).run();
  return db;
}

describe('History', () => {
  const db = run();
  const h = new History(db, 2);
  afterAll(() => db.close());

  it('gives each epoch its times, merged samples (the smallest stage), losses', () => {
    expect(h.epochRows(0)).toEqual([
      {
        epoch: 0,
        started_at: 1000,
        closed_at: 3000,
        drained_at: 4000,
        ended_at: 5000,
        merge_ms: 700,
        allocated: 8,
        merged: 3, // stage 0 merged 4, stage 1 only 3
        loss: 3, // (3 x 2 + 1 x 6) / 4
        eval_loss: 2.5,
      },
      {
        epoch: 1,
        started_at: 5000,
        closed_at: 6000,
        drained_at: null,
        ended_at: null,
        merge_ms: 0,
        allocated: 8,
        merged: 0,
        loss: null,
        eval_loss: null,
      },
    ]);
  });

  it('pages from `since`, at most `limit` rows', () => {
    expect(h.epochRows(1).map((r) => r.epoch)).toEqual([1]);
    expect(h.epochRows(0, 1).map((r) => r.epoch)).toEqual([0]);
    expect(h.epochRows(2)).toEqual([]);
  });

  it('counts no sample as merged in an epoch some stage merged nothing of', () => {
    expect(new History(db, 3).epochRows(0, 1)[0].merged).toBe(0);
  });

  it('gives a miner’s samples by epoch, stage and ledger state', () => {
    expect(h.minerRows('alice', 0)).toEqual([
      { epoch: 0, stage: 0, state: 'merged', samples: 3 },
      { epoch: 1, stage: 0, state: 'credited', samples: 4 },
    ]);
    expect(h.minerRows('carol', 0)).toEqual([
      { epoch: 0, stage: 1, state: 'lost_with_miner', samples: 1 },
      { epoch: 0, stage: 1, state: 'merged', samples: 3 },
    ]);
    expect(h.minerRows('nobody', 0)).toEqual([]);
  });

  it('gives a miner’s standing, if it has one', () => {
    expect(h.standing('bob')).toEqual({
      probation: 1,
      passes: 2,
      failures: 1,
      quarantined_at: 4500,
    });
    expect(h.standing('alice')).toBeUndefined();
  });
});
