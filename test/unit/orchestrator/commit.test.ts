import { GroupCommitter } from '../../../src/orchestrator/commit.js';
import { Repository } from '../../../src/orchestrator/state/repository.js';

describe('group commit', () => {
  it('commits the changes of one batch together, rolling back only the one that failed', async () => {
    const repo = Repository.open(':memory:');
    const c = new GroupCommitter(repo);
    const results = await Promise.allSettled([
      c.run(() => repo.putParticipant('a'.repeat(43), 'miner', {}, 1)),
      c.run(() => {
        repo.putParticipant('b'.repeat(43), 'miner', {}, 1);
        throw new Error('refused');
      }),
      c.run(() => repo.putParticipant('c'.repeat(43), 'validator', {}, 1)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(repo.participants().map((p) => p.id[0])).toEqual(['a', 'c']);
    expect(repo.roleCounts()).toEqual({ miner: 1, validator: 1, admin: 0 });
    repo.close();
  });

  it('runs the after-hook once per group, in its transaction, after the changes', async () => {
    const repo = Repository.open(':memory:');
    const seen: string[][] = [];
    const c = new GroupCommitter(repo, {
      after: () => seen.push(repo.participants().map((p) => p.id[0])),
    });
    await Promise.all([
      c.run(() => repo.putParticipant('a'.repeat(43), 'miner', {}, 1)),
      c.run(() => repo.putParticipant('b'.repeat(43), 'miner', {}, 1)),
    ]);
    expect(seen).toEqual([['a', 'b']]);
    repo.close();
  });

  it('keeps the group’s changes when the after-hook fails, and reports the failure', async () => {
    const repo = Repository.open(':memory:');
    const errors: unknown[] = [];
    const c = new GroupCommitter(repo, {
      after: () => {
        repo.putParticipant('z'.repeat(43), 'miner', {}, 1);
        throw new Error('hook broke');
      },
      onError: (e) => errors.push(e),
    });
    await c.run(() => repo.putParticipant('a'.repeat(43), 'miner', {}, 1));
    expect(repo.participants().map((p) => p.id[0])).toEqual(['a']);
    expect(errors).toEqual([new Error('hook broke')]);
    repo.close();
  });
});
