import { IotaError } from '../../../src/errors.js';
import { afterFailure, untilAnswered } from '../../../src/miner/refusals.js';
import { ApiError, type SignedClient } from '../../../src/protocol/client.js';

describe("how a miner's loop takes a failed step", () => {
  it('rides out the orchestrator or its store being away, up to 60 failures in a row', () => {
    for (const e of [
      new IotaError('E_UNREACHABLE', 'connect ECONNREFUSED'),
      new IotaError('E_TRANSFER_FAILED', 'upload failed 5 times; last: connect ECONNREFUSED'),
    ]) {
      expect(afterFailure(e, 1)?.waitMs).toBeGreaterThan(0);
      expect(afterFailure(e, 61)).toBeUndefined();
    }
  });

  it('stops on a fatal refusal and on a failure that is not the swarm’s state', () => {
    expect(
      afterFailure(new ApiError('E_UNKNOWN_KEY', 'no such key', undefined, 401, {}), 1),
    ).toBeUndefined();
    expect(afterFailure(new TypeError('x is undefined'), 1)).toBeUndefined();
    expect(afterFailure(new IotaError('E_BAD_CONFIG', 'bad'), 1)).toBeUndefined();
  });
});

describe('a state change whose answer was lost', () => {
  /** A client whose post fails with each of `failures` in turn, then answers. */
  const client = (failures: unknown[]) => {
    const ids: string[] = [];
    const post = (_path: string, _body: unknown, id: string) => {
      ids.push(id);
      const f = failures.shift();
      return f ? Promise.reject(f) : Promise.resolve({ credited: 4 });
    };
    return { c: { post } as unknown as SignedClient, ids };
  };

  it('is sent again with the same request id until the orchestrator answers', async () => {
    const { c, ids } = client([
      new IotaError('E_UNREACHABLE', 'connect ECONNREFUSED'),
      new ApiError('E_HTTP_502', 'bad gateway', undefined, 502, {}),
    ]);
    const warnings: string[] = [];
    const r = await untilAnswered(c, '/v1/report', { lease: 'l' }, (m) => warnings.push(m));
    expect(r).toEqual({ credited: 4 });
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(1);
    expect(warnings).toHaveLength(2);
  });

  it('takes an answer as final: a refusal is thrown at once', async () => {
    const lost = new ApiError('E_LEASE_LOST', 'expired', undefined, 409, {});
    const { c, ids } = client([lost]);
    await expect(untilAnswered(c, '/v1/report', {}, () => {})).rejects.toBe(lost);
    expect(ids).toHaveLength(1);
  });
});
