/**
 * A merge keeps the step it takes (learning rate and t), computed once, also across an upgrade;
 * its records read per partition (jobs) and its plan parsed once.
 */
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

describe("a merge's records", () => {
  function state() {
    const dir = mkdtempSync(join(tmpdir(), 'iota-merge-jobs-'));
    const repo = Repository.open(join(dir, 'state.db'));
    return { repo, s: new MergeState(repo.db) };
  }
  const m = { epoch: 2, stage: 1, round: 0 };

  it("give one partition's jobs, and those that wait on the orchestrator", () => {
    const { repo, s } = state();
    for (let p = 0; p < 3; p++) {
      s.assign(m, 2, p, 'minerA', 1);
      s.assign(m, 2, p, 'minerB', 1, false);
    }
    s.assign(m, 2, 1, 'orchestrator', 1);
    s.assign(m, 1, 1, 'minerC', 1); // another step
    s.setJob(s.job(m, 2, 2, 'minerB')!, 'unavailable', { claim: 'x' }, 5);
    s.setJob(s.job(m, 2, 0, 'minerA')!, 'done', { w: { sha256: 'a' } }, 5);

    const at1 = s.jobsAt(m, 2, 1);
    expect(at1.map((j) => j.merger)).toEqual(['minerA', 'minerB', 'orchestrator']);
    expect(at1.every((j) => j.partition === 1 && j.step === 2)).toBe(true);
    expect(s.jobsAt(m, 2, 0).find((j) => j.merger === 'minerA')!.result).toEqual({
      w: { sha256: 'a' },
    });
    expect(s.jobsPending(m, 2, 'orchestrator').map((j) => [j.partition, j.merger])).toEqual([
      [1, 'orchestrator'],
      [2, 'minerB'],
    ]);
    // the same as filtering every job of the step
    expect(s.jobsAt(m, 2, 1)).toEqual(s.jobs(m, 2).filter((j) => j.partition === 1));
    repo.close();
  });

  it('parse a plan once per text and share it frozen', () => {
    const { repo, s } = state();
    const row = {
      ...m,
      step: 1 as const,
      plan: { params: 10, partitions: [{ index: 0, offset: 0, length: 10, mergers: ['a'] }] },
      excluded: {},
      norm2: null,
      clip_factor: null,
      started_at: 0,
      lr: null,
      t: null,
      outcome: null,
    } as unknown as Parameters<MergeState['put']>[0];
    s.put(row);
    const first = s.merge(2, 1)!;
    expect(first.plan).toEqual(row.plan);
    expect(Object.isFrozen(first.plan.partitions[0])).toBe(true);
    s.put({ ...first, step: 2 });
    expect(s.merge(2, 1)!.plan).toBe(first.plan);
    const replanned = { ...row, round: 1, plan: { ...row.plan, params: 7 } };
    s.put(replanned as typeof row);
    expect(s.merge(2, 1)!.plan).toEqual(replanned.plan);
    repo.close();
  });
});
