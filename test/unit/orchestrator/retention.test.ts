/**
 * Retention: an epoch's activations and gradient sums leave the store once keep_epochs epochs
 * have passed at every stage and no audit of it is open (or the audit is too old to wait for);
 * manifests and merged weights stay, and a restart carries on where it stopped.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repository } from '../../../src/orchestrator/state/repository.js';
import { Retention } from '../../../src/orchestrator/swarm/retention.js';
import { keys, LocalStore, parseKey } from '../../../src/store/index.js';

const RUN = 'r1';

async function setup(keep: number) {
  const dir = mkdtempSync(join(tmpdir(), 'iota-retention-'));
  const repo = Repository.open(join(dir, 'state.db'));
  const store = await LocalStore.open({ root: join(dir, 'store'), baseUrl: 'http://x' });
  repo.db
    .prepare(
      "INSERT INTO run (id, name, config, config_hash, stages, created_at) VALUES (1, ?, '{}', 'h', 2, 0)",
    )
    .run(RUN);
  const stage = repo.db.prepare(
    "INSERT OR REPLACE INTO stages (stage, epoch, phase, since, manifest) VALUES (?, ?, 'training', 0, '')",
  );
  const at = (epochs: [number, number]) => epochs.forEach((e, s) => stage.run(s, e));
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
    ]) {
      await store.put(key, new Uint8Array([epoch]));
      objects.push(key);
    }
  const retention = () =>
    new Retention(repo.db, store, RUN, keep, async (fn) => repo.transaction(fn));
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
    expect(await t.left(0)).toEqual(['manifest']);
    expect(await t.left(1)).toEqual(['manifest']);
    expect(await t.left(2)).toEqual(['activation', 'gradient', 'manifest']);
    expect(await t.retention().prune()).toEqual({ epochs: [], objects: 0 });
  });

  it('waits for an open audit of the epoch, and carries on after a restart', async () => {
    const t = await setup(1);
    t.audit(2, 'open');
    t.audit(1, 'passed');
    t.at([6, 6]);
    expect((await t.retention().prune()).epochs).toEqual([0, 1]);
    expect(await t.left(2)).toEqual(['activation', 'gradient', 'manifest']);
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
  });
});
