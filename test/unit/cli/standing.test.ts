/**
 * `iota status --miner`: a miner's standing in plain words, from the public routes' replies:
 * idle and why, quarantine with the failed check and passes left, probation, late uploads,
 * samples credited this epoch, and its share.
 */
import type { HistoryReply } from '../../../src/protocol/history-messages.js';
import type {
  ScoresReply,
  SwarmStatus,
  VerdictsReply,
} from '../../../src/protocol/swarm-messages.js';
import { describeStanding } from '../../../src/cli/standing.js';

const now = 1_000_000;
const status = (state: string, idle?: { reason: string; message: string }): SwarmStatus =>
  ({
    run: 'r',
    server_time: now,
    epoch: 7,
    target: 32,
    allocation: { epoch: 7, allocated: 0 },
    stages: [
      {
        stage: 1,
        epoch: 7,
        phase: 'training',
        since: 0,
        manifest: { key: 'k', size: 1, sha256: 'h', epoch: 7, step: 7 },
        capacity: 1,
        queue: { ready: 0, leased: 0, held: 0 },
        miners: [
          {
            id: 'm1',
            state,
            rate: 3,
            done: 40,
            last_seen: now - 42_000,
            ...(idle ? { idle } : {}),
          },
        ],
      },
    ],
    ledger: [],
    losses: [],
    throughput: 0,
    evals: [],
    lease_expiries: 0,
  }) as SwarmStatus;
const scores = (weight: number): ScoresReply => ({
  epoch_from: 0,
  scores: [
    {
      miner: 'm1',
      work_flops: 2.5e9,
      failures: 1,
      penalty_flops: 0,
      score: 1,
      weight,
      probation: true,
    },
  ],
});
const verdict = (passed: boolean, epoch: number) => ({
  id: epoch,
  epoch,
  stage: 1,
  item: 3,
  kind: 'bwd',
  reason: 'random',
  passed,
  by: 'validator' as const,
  rel_err: passed ? 0 : 0.5,
  detail: passed ? 'ok' : 'gradient rel err 0.5 (limit 0.01)',
  at: epoch,
});
const verdicts: VerdictsReply = { miner: 'm1', verdicts: [verdict(true, 2), verdict(false, 5)] };
const history = (standing?: HistoryReply['standing']): HistoryReply =>
  ({
    epochs: [],
    miner: [
      { epoch: 5, stage: 1, state: 'dropped:upload_late', samples: 8 },
      { epoch: 6, stage: 1, state: 'merged', samples: 12 },
      { epoch: 7, stage: 1, state: 'credited', samples: 4 },
    ],
    ...(standing ? { standing } : {}),
    seq: 64,
    config: { run: {}, model: {}, params: [] },
  }) as HistoryReply;

describe('describeStanding', () => {
  it('says a quarantined miner’s failed check and the passes it still needs', () => {
    const s = describeStanding(
      'm1',
      status('idle', {
        reason: 'waiting_for_upstream',
        message: 'nothing has reached stage 1 yet',
      }),
      scores(0.25),
      verdicts,
      history({
        probation: true,
        passes: 1,
        passes_to_release: 4,
        failures: 1,
        quarantined_at: 5000,
      }),
    );
    expect(s).toMatchObject({
      stage: 1,
      state: 'idle',
      credited_this_epoch: 4,
      late_upload_samples: 8,
      verdicts: { passed: 1, failed: 1 },
      last_failed: { epoch: 5, kind: 'bwd' },
      score_share: 0.25,
      work_gflop: 2.5,
    });
    expect(s.why).toEqual([
      'Idle: nothing has reached stage 1 yet (waiting_for_upstream).',
      'Quarantined since 1970-01-01T00:00:05.000Z after a failed check (bwd of epoch 5: ' +
        'gradient rel err 0.5 (limit 0.01)); all its work is checked until it passes 3 more (1 of 4).',
      '8 of its samples were dropped: its gradient upload came too late.',
      'This epoch: 4 samples credited at stage 1.',
      'Earning 25.0% of the incentive for 2.5 GFLOP of verified work, less penalties for 1 failed check.',
    ]);
  });

  it('says a silent miner is not earning, and a new one is on probation', () => {
    const s = describeStanding(
      'm1',
      status('silent'),
      scores(0),
      { miner: 'm1', verdicts: [] },
      history({
        probation: true,
        passes: 0,
        passes_to_release: 2,
        failures: 0,
        quarantined_at: null,
      }),
    );
    expect(s.why[0]).toBe(
      'Not earning: silent for 42 s (no heartbeat); its leases lapse and its work goes to others.',
    );
    expect(s.why[1]).toBe(
      'On probation (new): all its work is checked until it passes 2 checks (0 so far).',
    );
    expect(s.why[s.why.length - 1]).toBe('Not earning yet: no verified work.');
  });

  it('says a miner that is not in the swarm is absent', () => {
    const s = describeStanding(
      'nobody',
      status('working'),
      scores(0),
      { miner: 'nobody', verdicts: [] },
      history(),
    );
    expect(s.state).toBe('absent');
    expect(s.why[0]).toMatch(/^Not in the swarm now/);
  });
});
