/**
 * Exporting from a local run's state folder: an epoch whose weights retention deleted is refused
 * with E_EPOCH_PRUNED and the epochs the run keeps, not a missing file.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRunConfig } from '../../../src/config/index.js';
import { localRunSource } from '../../../src/export/sources.js';
import { Repository } from '../../../src/orchestrator/state/repository.js';
import { keys } from '../../../src/store/keys.js';
import { writeRun } from '../../support/run-files.js';

it('refuses an epoch whose weights retention deleted, saying which epochs are kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iota-export-'));
  const { run, model } = loadRunConfig(writeRun(dir, { keep_weights_every: 10, keep_epochs: 3 }));
  const repo = Repository.open(join(dir, 'state', 'state.db'));
  repo.db
    .prepare(
      "INSERT INTO run (id, name, config, config_hash, stages, created_at) VALUES (1, ?, ?, 'h', 3, 0)",
    )
    .run(run.name, JSON.stringify({ run, model }));
  const key = keys.manifest({ run: run.name, epoch: 5, stage: 0 });
  repo.db
    .prepare('INSERT INTO manifests (stage, epoch, manifest) VALUES (0, 5, ?)')
    .run(JSON.stringify({ key, size: 10, sha256: 'ab'.repeat(32), epoch: 5, step: 5 }));
  repo.close();
  const source = await localRunSource(join(dir, 'state'));
  try {
    const refused = source.manifest(0, 5);
    await expect(refused).rejects.toMatchObject({ code: 'E_EPOCH_PRUNED' });
    await expect(refused).rejects.toMatchObject({
      hint: expect.stringContaining('divisible by 10') as unknown,
    });
  } finally {
    await source.close();
  }
});
