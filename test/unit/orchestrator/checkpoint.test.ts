import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GroupCommitter } from '../../../src/orchestrator/commit.js';
import { Repository } from '../../../src/orchestrator/state/repository.js';

const turn = () => new Promise((r) => setImmediate(r));

describe('group commit: the write gate', () => {
  it('holds changes while held and commits every one of them after release', async () => {
    const repo = Repository.open(':memory:');
    const c = new GroupCommitter(repo);
    c.hold();
    let settled = 0;
    const done = ['a', 'b', 'c'].map((l) =>
      c.run(() => repo.putParticipant(l.repeat(43), 'miner', {}, 1)).then(() => settled++),
    );
    for (let i = 0; i < 5; i++) await turn();
    expect(settled).toBe(0);
    expect(repo.participants()).toHaveLength(0);
    c.release();
    await Promise.all(done);
    expect(repo.participants().map((p) => p.id[0])).toEqual(['a', 'b', 'c']);
    repo.close();
  });
});

describe('background checkpoints', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'iota-wal-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keep the WAL bounded under writes that never pause, and lose none of them', async () => {
    const restartBytes = 1 << 20;
    const wal = join(dir, 'state.db-wal');
    const repo = Repository.open(join(dir, 'state.db'), {
      backgroundCheckpoints: { everyMs: 10, restartBytes },
    });
    const c = new GroupCommitter(repo);
    repo.db.exec('CREATE TABLE blobs (id INTEGER PRIMARY KEY, v BLOB NOT NULL)');
    const put = repo.db.prepare('INSERT INTO blobs (v) VALUES (randomblob(4000))');
    // Writers that never pause, until the WAL has started again sixteen times and three times
    // its bound was written: each change adds a page, and from the second restart on (the first
    // cuts back what piled up while the worker started) the WAL must stay under its bound while
    // many more pages are written. (On a loaded machine the checkpoints lag and more is written
    // per restart; the bound still holds.)
    const bound = 16 * restartBytes;
    let changes = 0;
    let written = 0;
    let walMax = 0;
    const writer = async () => {
      while ((repo.walRestarts.complete < 16 || written * 4096 <= 3 * bound) && changes < 200_000) {
        await c.run(() => put.run());
        changes++;
        if (repo.walRestarts.complete >= 2) {
          written++;
          walMax = Math.max(walMax, statSync(wal).size);
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, writer));
    expect(repo.walRestarts.complete).toBeGreaterThanOrEqual(16);
    expect(walMax).toBeLessThan(bound);
    expect(written * 4096).toBeGreaterThan(3 * walMax);
    expect((repo.db.prepare('SELECT COUNT(*) AS n FROM blobs').get() as { n: number }).n).toBe(
      changes,
    );
    repo.close();
    const reopened = Repository.open(join(dir, 'state.db'));
    expect((reopened.db.prepare('SELECT COUNT(*) AS n FROM blobs').get() as { n: number }).n).toBe(
      changes,
    );
    reopened.close();
  });
});
