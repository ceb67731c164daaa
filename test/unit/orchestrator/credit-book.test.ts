/** Each miner's unsettled samples, kept in memory by SwarmState: true to the ledger through credits, moves, rollbacks and a reopen. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repository } from '../../../src/orchestrator/state/repository.js';
import { SwarmState } from '../../../src/orchestrator/state/swarm.js';

describe('credit book', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'iota-book-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** What the ledger table says, by the queries the in-memory book replaces. */
  const fromTable = (repo: Repository, epoch: number, stage: number) => ({
    credits: repo.db
      .prepare(
        "SELECT miner, SUM(n) AS n FROM ledger WHERE epoch = ? AND stage = ? AND state = 'credited' GROUP BY miner ORDER BY miner",
      )
      .all(epoch, stage),
    unsettled: Object.fromEntries(
      ['a', 'b', 'c'].map((m) => [
        m,
        (
          repo.db
            .prepare(
              "SELECT COUNT(*) AS n FROM ledger WHERE miner = ? AND state IN ('credited', 'uploaded')",
            )
            .get(m) as { n: number }
        ).n > 0,
      ]),
    ),
  });
  const fromBook = (state: SwarmState, epoch: number, stage: number) => ({
    credits: state.ledger.credits(epoch, stage),
    unsettled: Object.fromEntries(['a', 'b', 'c'].map((m) => [m, state.holdsWork(m)])),
  });

  it('follows credits, moves by miner and by stage, rollbacks and a reopen', () => {
    const path = join(dir, 'state.db');
    let repo = Repository.open(path);
    let state = new SwarmState(repo.db);
    // Items 0..5 of epoch 0, 4 samples each, at stages 0 and 1.
    for (let item = 0; item < 6; item++)
      for (const stage of [0, 1]) state.ledger.open(item, stage, 0, 4);
    state.ledger.credit(0, 0, 'a');
    state.ledger.credit(1, 0, 'a');
    state.ledger.credit(2, 0, 'b');
    state.ledger.credit(3, 0, 'c');
    state.ledger.credit(0, 1, 'b');
    expect(state.ledger.credits(0, 0)).toEqual([
      { miner: 'a', n: 8 },
      { miner: 'b', n: 4 },
      { miner: 'c', n: 4 },
    ]);
    expect([
      state.ledger.minerCredit(0, 0, 'a'),
      state.ledger.minerCredit(0, 1, 'b'),
      state.ledger.minerCredit(0, 1, 'a'),
      state.ledger.minerCredit(1, 0, 'a'),
    ]).toEqual([8, 4, 0, 0]);
    expect(fromBook(state, 0, 0)).toEqual(fromTable(repo, 0, 0));

    // Uploads close: a and b uploaded, c's credit is dropped; b's credit at stage 1 is untouched.
    state.ledger.move(0, 0, 'credited', 'uploaded', ['a', 'b']);
    state.ledger.move(0, 0, 'credited', 'dropped:upload_late', ['c']);
    expect(state.ledger.credits(0, 0)).toEqual([]);
    expect(fromBook(state, 0, 0)).toEqual(fromTable(repo, 0, 0));
    expect(fromBook(state, 0, 1)).toEqual(fromTable(repo, 0, 1));
    expect([state.holdsWork('a'), state.holdsWork('b'), state.holdsWork('c')]).toEqual([
      true,
      true,
      false,
    ]);

    // A rolled-back change leaves the book as it was.
    expect(() =>
      repo.transaction(() => {
        state.ledger.credit(4, 0, 'c');
        state.ledger.move(0, 0, 'uploaded', 'merged');
        expect(state.holdsWork('a')).toBe(false);
        throw new Error('refused');
      }),
    ).toThrow('refused');
    expect([
      state.holdsWork('a'),
      state.holdsWork('c'),
      state.ledger.minerCredit(0, 0, 'c'),
    ]).toEqual([true, false, 0]);
    expect(fromBook(state, 0, 0)).toEqual(fromTable(repo, 0, 0));

    // Reopened on the same file, the book is read back from the ledger.
    repo.close();
    repo = Repository.open(path);
    state = new SwarmState(repo.db);
    expect(fromBook(state, 0, 0)).toEqual(fromTable(repo, 0, 0));
    expect(fromBook(state, 0, 1)).toEqual(fromTable(repo, 0, 1));
    expect(state.ledger.minerCredit(0, 1, 'b')).toBe(4);

    // The merge settles the stage: nobody holds anything there any more; b still holds stage 1's credit.
    state.ledger.move(0, 0, 'uploaded', 'merged');
    expect([state.holdsWork('a'), state.holdsWork('b')]).toEqual([false, true]);
    state.ledger.move(0, 1, 'credited', 'dropped:failed_validation', ['b']);
    expect(fromBook(state, 0, 1)).toEqual(fromTable(repo, 0, 1));
    expect(state.holdsWork('b')).toBe(false);

    // Samples enter a held state only by a credit or from another held state.
    expect(() => state.ledger.move(0, 0, 'open', 'credited')).toThrow(/only from a held state/);
    repo.close();
  });
});
