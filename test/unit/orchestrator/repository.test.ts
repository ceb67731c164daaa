import { Repository } from '../../../src/orchestrator/state/repository.js';

describe('repository: pruning', () => {
  it('forgets replies and nonces older than the cut-offs and keeps the rest', () => {
    const repo = Repository.open(':memory:');
    const key = 'k'.repeat(43);
    const reply = { method: 'POST', path: '/v1/work', status: 200, reply: { ok: true } };
    for (const [id, at] of [['r-00000001', 100], ['r-00000002', 200], ['r-00000003', 300], ['r-00000004', 400]] as const) {
      repo.storeReply(key, id, reply, at);
      repo.recordNonce(key, `n${at}`, at);
    }
    repo.prune(250, 300);
    expect(['r-00000001', 'r-00000002', 'r-00000003', 'r-00000004'].map((id) => repo.storedReply(key, id) !== undefined)).toEqual([false, false, true, true]);
    expect([100, 200, 300, 400].map((at) => repo.nonceSeen(key, `n${at}`))).toEqual([false, false, true, true]);
    // A cut-off past every reply empties the table.
    repo.prune(250, 1000);
    expect(repo.storedReply(key, 'r-00000004')).toBeUndefined();
    repo.close();
  });
});
