import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repository } from '../../../src/orchestrator/state/repository.js';
import { MAX_SKEW_MS } from '../../../src/protocol/signing.js';
import { databaseBefore } from '../../support/schema.js';

const key = 'k'.repeat(43);
const reply = { method: 'POST', path: '/v1/work', status: 200, reply: { ok: true } };

describe('repository: pruning', () => {
  it('forgets replies and nonces older than the cut-offs and keeps the rest', () => {
    const repo = Repository.open(':memory:');
    for (const [id, at] of [
      ['r-00000001', 100],
      ['r-00000002', 200],
      ['r-00000003', 300],
      ['r-00000004', 400],
    ] as const) {
      repo.storeReply(key, id, reply, at, { nonce: `n${at}`, ts: at });
    }
    repo.prune(250, 300);
    expect(
      ['r-00000001', 'r-00000002', 'r-00000003', 'r-00000004'].map(
        (id) => repo.storedReply(key, id) !== undefined,
      ),
    ).toEqual([false, false, true, true]);
    expect([100, 200, 300, 400].map((at) => repo.nonceSeen(key, `n${at}`))).toEqual([
      false,
      false,
      true,
      true,
    ]);
    // A cut-off past every reply empties the table.
    repo.prune(250, 1000);
    expect(repo.storedReply(key, 'r-00000004')).toBeUndefined();
    repo.close();
  });
});

describe('repository: nonces across a restart', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'iota-repo-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("are read back from the stored replies of the clock window, and a rolled-back change's nonce is not kept", () => {
    const path = join(dir, 'state.db');
    let repo = Repository.open(path);
    const t0 = 1_000_000_000;
    const old = t0 - 10 * MAX_SKEW_MS; // far outside the window of the newest reply
    repo.storeReply(key, 'r-old-0001', reply, old, { nonce: 'n-old', ts: old });
    repo.storeReply(key, 'r-new-0001', reply, t0 - 1000, { nonce: 'n-1', ts: t0 - 1000 });
    repo.storeReply(key, 'r-new-0002', reply, t0, { nonce: 'n-2', ts: t0 });
    expect(() =>
      repo.transaction(() => {
        repo.storeReply(key, 'r-new-0003', reply, t0, { nonce: 'n-3', ts: t0 });
        throw new Error('refused');
      }),
    ).toThrow('refused');
    expect(repo.nonceSeen(key, 'n-3')).toBe(false);
    repo.close();

    repo = Repository.open(path);
    expect(['n-old', 'n-1', 'n-2', 'n-3'].map((n) => repo.nonceSeen(key, n))).toEqual([
      false,
      true,
      true,
      false,
    ]);
    expect(repo.storedReply(key, 'r-old-0001')).toEqual(reply); // replies are kept longer than nonces
    repo.close();
  });

  it('the schema step that moved nonces into the replies keeps those of the old table', () => {
    const path = join(dir, 'state.db');
    const { db, step } = databaseBefore(path, 'DROP TABLE nonces;');
    expect(step).toBeGreaterThan(0);
    const now = 2_000_000_000;
    db.prepare(
      'INSERT INTO requests (key, request_id, method, path, status, reply, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ).run(key, 'r-00000001', 'POST', '/v1/work', 200, '{"ok":true}', now - 5000);
    db.prepare('INSERT INTO nonces (ts, key, nonce) VALUES (?, ?, ?)').run(now - 5000, key, 'n-a');
    db.prepare('INSERT INTO nonces (ts, key, nonce) VALUES (?, ?, ?)').run(now - 10, key, 'n-b');
    db.close();

    const repo = Repository.open(path);
    expect(['n-a', 'n-b', 'n-c'].map((n) => repo.nonceSeen(key, n))).toEqual([true, true, false]);
    expect(repo.storedReply(key, 'r-00000001')).toEqual(reply);
    expect(
      repo.db.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'nonces'").get(),
    ).toEqual({ n: 0 });
    // Once out of the reply window, the carried-over rows are pruned like any reply.
    repo.prune(now + 1, now + 1);
    expect(repo.db.prepare('SELECT COUNT(*) AS n FROM requests').get()).toEqual({ n: 0 });
    repo.close();
  });
});
