/** The tasks each miner holds, kept in memory by SwarmState: true to the tasks table through writes, rollbacks and a reopen. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repository } from '../../../src/orchestrator/state/repository.js';
import { SwarmState, type TaskKind } from '../../../src/orchestrator/state/swarm.js';

describe('open tasks by miner', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'iota-open-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** What the table says a miner holds: the query the in-memory copy replaces. */
  const fromTable = (repo: Repository, miner: string) =>
    (
      repo.db
        .prepare(
          "SELECT COUNT(DISTINCT item) AS n FROM tasks WHERE miner = ? AND state IN ('leased', 'held')",
        )
        .get(miner) as { n: number }
    ).n;

  it('follows leases, holds, reports, voids, rollbacks and a reopen', () => {
    const path = join(dir, 'state.db');
    let repo = Repository.open(path);
    let state = new SwarmState(repo.db);
    const add = (item: number, stage: number, kind: TaskKind) =>
      state.addTask(item, stage, kind, 0, item * 4, 4, null, 1, {});
    const lease = (item: number, stage: number, kind: TaskKind, miner: string) =>
      state.leaseTask(
        state.task(item, stage, kind)!,
        miner,
        `l${item}${stage}${kind}`,
        1,
        1000,
        5000,
      );
    add(1, 0, 'fwd');
    add(1, 1, 'tail');
    add(2, 0, 'fwd');
    add(3, 0, 'fwd');
    lease(1, 0, 'fwd', 'a');
    lease(2, 0, 'fwd', 'a');
    lease(3, 0, 'fwd', 'b');
    lease(1, 1, 'tail', 'b');
    expect([state.heldItems('a'), state.heldItems('b'), state.heldItems('c')]).toEqual([2, 2, 0]);

    // A forward done and waiting for its backward is still held; a report ends the tail's lease.
    state.finishTask(state.task(1, 0, 'fwd')!, 'held', null, null, 2);
    state.finishTask(state.task(1, 1, 'tail')!, 'done', null, 2.5, 2);
    expect([state.heldItems('a'), state.heldItems('b')]).toEqual([2, 1]);
    expect(state.renewLeases('a', 2, 5000)).toBe(1); // item 2's forward; item 1's is held, not leased

    // A rolled-back change leaves the copy as it was.
    expect(() =>
      repo.transaction(() => {
        state.unlease(state.task(2, 0, 'fwd')!, 3);
        state.setTaskState({ item: 1, stage: 0, kind: 'fwd' }, 'done');
        expect(state.heldItems('a')).toBe(0);
        throw new Error('refused');
      }),
    ).toThrow('refused');
    expect(state.heldItems('a')).toBe(2);
    for (const m of ['a', 'b']) expect(state.heldItems(m)).toBe(fromTable(repo, m));

    // Reopened on the same file, the copy is read back from the table.
    repo.close();
    repo = Repository.open(path);
    state = new SwarmState(repo.db);
    expect([state.heldItems('a'), state.heldItems('b')]).toEqual([2, 1]);
    expect(state.holdsWork('a')).toBe(true);

    // Dropping an item closes its held forward and voids its leased tasks.
    state.dropItem(1, 'dropped');
    state.dropItem(3, 'dropped');
    expect([state.heldItems('a'), state.heldItems('b')]).toEqual([1, 0]);
    state.voidEpochTasks(0);
    expect(state.heldItems('a')).toBe(0);
    expect(state.holdsWork('a')).toBe(false);
    for (const m of ['a', 'b']) expect(fromTable(repo, m)).toBe(0);
    repo.close();
  });
});
