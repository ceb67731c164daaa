/**
 * Retention: an epoch's activations and gradient sums leave the store once keep_epochs epochs
 * have passed at every stage and no audit of it is open (or the audit is too old to wait for);
 * its weights go with them unless the epoch is kept (the initial weights, every
 * keep_weights_every-th epoch, weights a stage still starts from), and a restart carries on
 * where it stopped.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repository } from '../../../src/orchestrator/state/repository.js';
import { Retention } from '../../../src/orchestrator/swarm/retention.js';
import { keys, LocalStore, parseKey } from '../../../src/store/index.js';

const RUN = 'r1';

async function setup(keep: number, keepWeightsEvery = 1, windowEpochs = 1) {
  const dir = mkdtempSync(join(tmpdir(), 'iota-retention-'));
  const repo = Repository.open(join(dir, 'state.db'));
  const store = await LocalStore.open({ root: join(dir, 'store'), baseUrl: 'http://x' });
  repo.db
    .prepare(
      "INSERT INTO run (id, name, config, config_hash, stages, created_at) VALUES (1, ?, '{}', 'h', 2, 0)",
    )
    .run(RUN);
  const stage = repo.db.prepare(
    "INSERT OR REPLACE INTO stages (stage, epoch, phase, since, manifest) VALUES (?, ?, 'training', 0, ?)",
  );
  /** each stage's epoch, starting from its own weights or those of `from` (an abandoned epoch) */
  const at = (epochs: [number, number], from: Array<number | undefined> = []) =>
    epochs.forEach((e, s) => stage.run(s, e, JSON.stringify({ epoch: from[s] ?? e })));
  const audit = (epoch: number, state: string) =>
    repo.db
      .prepare(
        "INSERT INTO validations (epoch, stage, item, kind, miner, reason, state, created_at) VALUES (?, 0, 1, 'bwd', 'm', 'random', ?, 0)",
      )
      .run(epoch, state);
  const objects: string[] = [];
  for (let epoch = 0; epoch < 8; epoch++)
    for (const key of [
      keys.activation({
        run: RUN,
        epoch,
        sample: 3,
        stage: 0,
        direction: 'fwd',
        owner: 'm',
        lease: 'L1',
      }),
      keys.gradient({ run: RUN, epoch, stage: 1, owner: 'm' }),
      keys.manifest({ run: RUN, epoch, stage: 0 }),
      keys.merged({ run: RUN, epoch, stage: 0, partition: 0, owner: 'm' }),
      keys.optimizer({ run: RUN, epoch, stage: 0, partition: 0, owner: 'm' }),
    ]) {
      await store.put(key, new Uint8Array([epoch]));
      objects.push(key);
    }
  const retention = () =>
    new Retention(
      repo.db,
      store,
      RUN,
      { keep_epochs: keep, keep_weights_every: keepWeightsEvery, window_epochs: windowEpochs },
      async (fn) => repo.transaction(fn),
    );
  /** the kinds of object an epoch still has in the store */
  const left = async (epoch: number) =>
    (await store.list(keys.runPrefix(RUN)))
      .map((o) => parseKey(o.key)!)
      .filter((k) => 'epoch' in k && k.epoch === epoch)
      .map((k) => k.kind)
      .sort();
  return { repo, store, at, audit, retention, left };
}

describe('retention of old epochs', () => {
  it('deletes activations and gradients of epochs keep_epochs behind the slowest stage, keeps manifests', async () => {
    const t = await setup(2);
    t.at([5, 4]); // the slowest stage trains epoch 4: epochs 0 and 1 may go
    const p = await t.retention().prune();
    expect(p).toEqual({ epochs: [0, 1], objects: 4 });
    const weights = ['manifest', 'merged', 'optimizer'];
    expect(await t.left(0)).toEqual(weights);
    expect(await t.left(1)).toEqual(weights);
    expect(await t.left(2)).toEqual(['activation', 'gradient', ...weights]);
    expect(await t.retention().prune()).toEqual({ epochs: [], objects: 0 });
  });

  it('waits for an open audit of the epoch, and carries on after a restart', async () => {
    const t = await setup(1);
    t.audit(2, 'open');
    t.audit(1, 'passed');
    t.at([6, 6]);
    expect((await t.retention().prune()).epochs).toEqual([0, 1]);
    expect(await t.left(2)).toEqual(['activation', 'gradient', 'manifest', 'merged', 'optimizer']);
    t.repo.db.prepare("UPDATE validations SET state = 'failed' WHERE epoch = 2").run();
    // a new Retention (the orchestrator restarted) starts where the database says
    expect((await t.retention().prune()).epochs).toEqual([2, 3, 4]);
  });

  it('stops waiting for an audit nobody took within 4 x keep_epochs epochs', async () => {
    const t = await setup(1);
    t.audit(0, 'open');
    t.at([4, 4]);
    expect((await t.retention().prune()).epochs).toEqual([]);
    t.at([5, 5]);
    expect((await t.retention().prune()).epochs).toEqual([0, 1, 2, 3]);
    // the audit nobody took is gone with its epoch's inputs
    expect(t.repo.db.prepare('SELECT COUNT(*) AS n FROM validations').get()).toEqual({ n: 0 });
  });

  it('deletes old weights but the initial ones, every n-th epoch and those a stage starts from', async () => {
    const t = await setup(2, 3);
    // stage 1 abandoned epochs 6 and 7: it trains epoch 8 from the weights of epoch 2
    t.at([8, 8], [undefined, 2]);
    expect((await t.retention().prune()).epochs).toEqual([0, 1, 2, 3, 4, 5]);
    const weights = ['manifest', 'merged', 'optimizer'];
    for (const epoch of [0, 2, 3]) expect(await t.left(epoch)).toEqual(weights);
    for (const epoch of [1, 4, 5]) expect(await t.left(epoch)).toEqual([]);
    expect(await t.left(6)).toEqual(['activation', 'gradient', ...weights]);
  });

  it('with keep_weights_every 0 keeps only the initial weights of the epochs it prunes', async () => {
    const t = await setup(1, 0);
    t.at([4, 4]);
    expect((await t.retention().prune()).epochs).toEqual([0, 1, 2]);
    expect(await t.left(0)).toEqual(['manifest', 'merged', 'optimizer']);
    for (const epoch of [1, 2]) expect(await t.left(epoch)).toEqual([]);
  });

  it('deletes the rows nothing reads once the merges are over; the tasks once out of the scores’ window, but the tail’s', async () => {
    const t = await setup(2, 1, 4);
    const db = t.repo.db;
    const task = db.prepare(
      "INSERT INTO tasks (item, stage, kind, epoch, first_sample, n, state, ready_at, input) VALUES (?, 0, ?, ?, 0, 1, 'done', 0, 'k')",
    );
    for (let epoch = 0; epoch < 8; epoch++) {
      for (const kind of ['fwd', 'bwd', 'tail']) task.run(epoch, kind, epoch);
      db.prepare(
        "INSERT INTO merges (epoch, stage, round, step, plan, started_at) VALUES (?, 0, 0, 4, '{}', 0)",
      ).run(epoch);
      db.prepare(
        "INSERT INTO merge_jobs (epoch, stage, round, step, partition, merger, state, assigned_at) VALUES (?, 0, 0, 1, 0, 'm', 'done', 0)",
      ).run(epoch);
      db.prepare(
        "INSERT INTO merge_results (epoch, stage, round, step, partition, result) VALUES (?, 0, 0, 1, 0, '{}')",
      ).run(epoch);
      db.prepare(
        "INSERT INTO gradients (epoch, stage, miner, key, size, sha256, n, partitions, uploaded_at) VALUES (?, 0, 'm', 'k', 1, 'h', 1, '[]', 0)",
      ).run(epoch);
    }
    const epochsOf = (sql: string) =>
      (db.prepare(sql).all() as Array<{ epoch: number }>).map((r) => r.epoch);
    t.at([6, 6]); // epochs 0 to 3 are pruned; the scores read epochs 2 to 6
    expect((await t.retention().prune()).epochs).toEqual([0, 1, 2, 3]);
    for (const table of ['merges', 'merge_jobs', 'merge_results', 'gradients'])
      expect(epochsOf(`SELECT DISTINCT epoch FROM ${table} ORDER BY epoch`)).toEqual([4, 5, 6, 7]);
    expect(epochsOf("SELECT epoch FROM tasks WHERE kind = 'fwd' ORDER BY epoch")).toEqual([
      2, 3, 4, 5, 6, 7,
    ]);
    expect(epochsOf("SELECT epoch FROM tasks WHERE kind = 'tail' ORDER BY epoch")).toHaveLength(8);
    // the pruned tails keep their loss, not their inputs
    expect(
      epochsOf("SELECT epoch FROM tasks WHERE kind = 'tail' AND input != '' ORDER BY epoch"),
    ).toEqual([2, 3, 4, 5, 6, 7]);
  });
});
