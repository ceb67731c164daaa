/** Lease ids name their task, so a report finds it by the task's key; the schema step that dropped the lease index. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../../src/orchestrator/state/db.js';
import { Repository } from '../../../src/orchestrator/state/repository.js';
import { SwarmState, leaseId } from '../../../src/orchestrator/state/swarm.js';
import { databaseBefore } from '../../support/schema.js';

describe('lease ids', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'iota-lease-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('find their task while they are its current lease, and nothing otherwise', () => {
    const repo = Repository.open(':memory:');
    const state = new SwarmState(repo.db);
    state.addTask(70_000, 2, 'bwd', 0, 0, 4, null, 1, {});
    state.addTask(70_000, 2, 'fwd', 0, 0, 4, null, 1, {});
    const first = leaseId({ item: 70_000, stage: 2, kind: 'bwd' });
    state.leaseTask(state.task(70_000, 2, 'bwd')!, 'a', first, 1, 1000, 5000);
    expect(state.taskByLease(first)).toMatchObject({
      item: 70_000,
      stage: 2,
      kind: 'bwd',
      miner: 'a',
      state: 'leased',
    });

    // Expired and leased again: the old id names the same task but no longer holds it.
    state.unlease(state.task(70_000, 2, 'bwd')!, 2000);
    expect(state.taskByLease(first)).toBeUndefined();
    const second = leaseId({ item: 70_000, stage: 2, kind: 'bwd' });
    expect(second).not.toBe(first);
    state.leaseTask(state.task(70_000, 2, 'bwd')!, 'b', second, 2001, 3000, 9000);
    expect(state.taskByLease(second)?.miner).toBe('b');
    expect(state.taskByLease(first)).toBeUndefined();

    // Ids of another task, of no task, or of no known form.
    expect(state.taskByLease(second.replace('_2b_', '_2f_'))).toBeUndefined();
    expect(state.taskByLease(leaseId({ item: 5, stage: 0, kind: 'fwd' }))).toBeUndefined();
    for (const bad of ['', 'x', '1_2q_0123456789abcdef', `${second}0`, '0000000000000000000000'])
      expect(state.taskByLease(bad)).toBeUndefined();
    repo.close();
  });

  it('the schema step without the lease index returns leases of the old form to the queue and keeps every task', () => {
    const path = join(dir, 'state.db');
    const { db: old, step } = databaseBefore(path, 'CREATE TABLE tasks_new');
    expect(step).toBeGreaterThan(0);
    const put = old.prepare(
      "INSERT INTO tasks (item, stage, kind, epoch, first_sample, n, state, miner, lease, leased_at, expires, ready_at, input, output, done_at) VALUES (?, 0, 'fwd', 0, ?, 4, ?, ?, ?, ?, ?, 1, '{}', ?, ?)",
    );
    put.run(1, 4, 'leased', 'a', '0190000000000001a2b3c4d5', 5, 9000, null, null);
    put.run(2, 8, 'held', 'a', '0190000000000002a2b3c4d5', 5, null, '{"key":"k"}', 6);
    put.run(3, 12, 'ready', null, null, null, null, null, null);
    old.close();

    const db = openDatabase(path);
    const rows = db
      .prepare('SELECT item, state, miner, lease, expires, output FROM tasks ORDER BY item')
      .all();
    expect(rows).toEqual([
      { item: 1, state: 'ready', miner: null, lease: null, expires: null, output: null },
      {
        item: 2,
        state: 'held',
        miner: 'a',
        lease: '0190000000000002a2b3c4d5',
        expires: null,
        output: '{"key":"k"}',
      },
      { item: 3, state: 'ready', miner: null, lease: null, expires: null, output: null },
    ]);
    const indexes = (
      db
        .prepare(
          "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' ORDER BY name",
        )
        .all() as Array<{ name: string }>
    ).map((r) => r.name);
    expect(indexes).toEqual(['tasks_done', 'tasks_expiry', 'tasks_held', 'tasks_ready']);
    // The item that went back is offered again, and the held one still waits for its backward.
    const state = new SwarmState(db);
    expect(state.readyForward(0, 0)?.item).toBe(1);
    expect(state.heldItems('a')).toBe(1);
    db.close();
  });
});
