/** A merge keeps the step it takes (learning rate and t), computed once, also across an upgrade. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { learningRate } from '../../../src/model/schedule.js';
import { assembleSwarm } from '../../../src/orchestrator/assemble.js';
import { MergeState } from '../../../src/orchestrator/state/merge.js';
import { Repository } from '../../../src/orchestrator/state/repository.js';
import { LocalStore } from '../../../src/store/index.js';
import { databaseBefore } from '../../support/schema.js';
import { fakeManifest, fakeWindow, runConfig, RUN } from '../../support/swarm.js';
import { loadModelConfig } from '../../../src/config/index.js';

describe('the step of a merge', () => {
  it('is filled in at start for a merge begun before merges kept it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iota-merge-steps-'));
    const path = join(dir, 'state.db');
    const { db, step } = databaseBefore(path, 'ADD COLUMN lr');
    expect(step).toBeGreaterThan(0);
    const run = runConfig({}, {});
    const epoch = 3;
    // Stage 0 merging epoch 3 on weights of step 3, with a merge row of the old schema.
    db.prepare(
      "INSERT INTO stages (stage, epoch, phase, since, deadline, manifest, note) VALUES (0, ?, 'merging', 0, 9e12, ?, '')",
    ).run(epoch, JSON.stringify(fakeManifest(0, epoch, 3)));
    db.prepare(
      "INSERT INTO merges (epoch, stage, round, step, plan, excluded, started_at) VALUES (?, 0, 0, 1, '{}', '{}', 0)",
    ).run(epoch);
    db.close();

    const repo = Repository.open(path);
    const store = await LocalStore.open({ root: join(dir, 'store'), baseUrl: 'http://x' });
    assembleSwarm({
      repo,
      settings: {
        name: RUN,
        run,
        model: loadModelConfig('configs/tiny.yaml'),
        costs: [1],
        params: [1000],
        window: fakeWindow,
      },
      store,
      validation: false,
    });
    const m = new MergeState(repo.db).merge(epoch, 0)!;
    expect(m.lr).toBe(learningRate(epoch, run.optimizer.lr, run.schedule));
    expect(m.t).toBe(4);
    expect(m.outcome).toBeNull();
    repo.close();
  });
});
