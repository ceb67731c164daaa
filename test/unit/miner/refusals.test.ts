import { IotaError } from '../../../src/errors.js';
import { afterFailure } from '../../../src/miner/refusals.js';
import { ApiError } from '../../../src/protocol/client.js';

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
