/** The phase machine's rules, as pure functions of facts and the time: no database, no server. */
import {
  drainNext,
  nextPhase,
  phaseClosed,
  requiredFraction,
  requiredSamples,
  type PhaseRules,
  type StageFacts,
} from '../../../src/orchestrator/swarm/phases.js';

const rules: PhaseRules = {
  upload_s: 10,
  merge_s: 20,
  required_fraction: 1,
  floor_fraction: 0.25,
};
const manifest = {
  key: 'runs/r/e1/stage/0.json',
  size: 10,
  sha256: 'a'.repeat(64),
  epoch: 1,
  step: 1,
};

function uploading(
  credits: Array<[string, number, boolean]>,
  uploads: Array<[string, number]>,
): Extract<StageFacts, { phase: 'uploading' }> {
  return {
    phase: 'uploading',
    since: 0,
    deadline: 10_000,
    credits: credits.map(([miner, n, live]) => ({ miner, n, live })),
    uploads: uploads.map(([miner, n]) => ({ miner, n })),
  };
}

describe('TRAINING', () => {
  it('stays while samples of the epoch are open at the stage (or allocation has not closed)', () => {
    expect(nextPhase({ phase: 'training', settled: false, credited: 0 }, rules, 5)).toEqual({
      to: 'stay',
    });
  });

  it('moves to UPLOADING once every sample is settled, with the upload deadline', () => {
    expect(nextPhase({ phase: 'training', settled: true, credited: 8 }, rules, 1000)).toEqual({
      to: 'uploading',
      deadline: 11_000,
    });
  });

  it('abandons the epoch when no sample reached the stage', () => {
    expect(nextPhase({ phase: 'training', settled: true, credited: 0 }, rules, 1000)).toEqual({
      to: 'abandoned',
      why: 'no sample reached this stage in time',
      dropAs: 'dropped:upload_failed',
    });
  });
});

describe('UPLOADING', () => {
  it('waits for every credited miner at first', () => {
    const f = uploading(
      [
        ['a', 9, true],
        ['b', 1, true],
      ],
      [['a', 9]],
    );
    expect(nextPhase(f, rules, 1)).toEqual({ to: 'stay' });
  });

  it('closes as soon as every live credited miner has uploaded and the floor is met', () => {
    const f = uploading(
      [
        ['a', 6, true],
        ['b', 2, false],
      ],
      [['a', 6]],
    );
    expect(nextPhase(f, rules, 1)).toEqual({ to: 'merging', deadline: 20_001 });
  });

  it('does not close for the live alone when they are below the floor', () => {
    const f = uploading(
      [
        ['a', 1, true],
        ['b', 9, false],
      ],
      [['a', 1]],
    );
    expect(nextPhase(f, rules, 1)).toEqual({ to: 'stay' });
  });

  it('closes when the uploads meet the requirement as it decays towards the floor', () => {
    const f = uploading(
      [
        ['a', 6, true],
        ['b', 4, true],
      ],
      [['a', 6]],
    );
    // At half time the requirement is 1 - 0.75 / 2 = 0.625 of 10 samples: 7 needed, 6 there.
    expect(nextPhase(f, rules, 5000)).toEqual({ to: 'stay' });
    // At 60% it is 0.55: 6 are enough.
    expect(nextPhase(f, rules, 6000)).toEqual({ to: 'merging', deadline: 26_000 });
  });

  it('abandons at the deadline below the floor, saying how many came', () => {
    const f = uploading(
      [
        ['a', 1, true],
        ['b', 9, true],
      ],
      [],
    );
    expect(nextPhase(f, rules, 10_000)).toEqual({
      to: 'abandoned',
      why: 'only 0 of 10 credited samples were uploaded by the deadline (floor 3)',
      dropAs: 'dropped:upload_failed',
    });
  });
});

describe('MERGING', () => {
  it('stays until the merge ends or the deadline passes', () => {
    expect(nextPhase({ phase: 'merging', deadline: 100, merge: undefined }, rules, 99)).toEqual({
      to: 'stay',
    });
  });

  it('trains the next epoch on the published manifest, passing on who was left out', () => {
    const merge = { manifest, excluded: { x: 'gradient_norm' } };
    expect(nextPhase({ phase: 'merging', deadline: 100, merge }, rules, 50)).toEqual({
      to: 'trained',
      manifest,
      excluded: { x: 'gradient_norm' },
    });
  });

  it('abandons a failed merge with its reason, and one that missed its deadline', () => {
    const failed = { failed: 'every participant was excluded from the merge' };
    expect(nextPhase({ phase: 'merging', deadline: 100, merge: failed }, rules, 50)).toEqual({
      to: 'abandoned',
      why: failed.failed,
      dropAs: 'dropped:merge_failed',
    });
    expect(nextPhase({ phase: 'merging', deadline: 100, merge: undefined }, rules, 100)).toEqual({
      to: 'abandoned',
      why: 'the merge did not finish by its deadline',
      dropAs: 'dropped:merge_failed',
    });
  });

  it('takes a published merge even at its deadline', () => {
    const merge = { manifest, excluded: {} };
    expect(nextPhase({ phase: 'merging', deadline: 100, merge }, rules, 500).to).toBe('trained');
  });
});

describe('draining an epoch', () => {
  it('is done when nothing is open, drops what is left at the deadline, else waits', () => {
    expect(drainNext(0, 100, 5)).toBe('drained');
    expect(drainNext(3, 100, 99)).toBe('wait');
    expect(drainNext(3, 100, 100)).toBe('close');
  });
});

describe('requirements', () => {
  it('decay linearly from the start fraction to the floor at the deadline, never below', () => {
    expect(requiredFraction(0.9, 0.25, 0, 100, 0)).toBeCloseTo(0.9);
    expect(requiredFraction(0.9, 0.25, 0, 100, 50)).toBeCloseTo(0.575);
    expect(requiredFraction(0.9, 0.25, 0, 100, 100)).toBeCloseTo(0.25);
    expect(requiredFraction(0.9, 0.25, 0, 100, 1e9)).toBeCloseTo(0.25);
  });

  it('require at least one sample when there are any, and round up', () => {
    expect(requiredSamples(0, 0.25)).toBe(0);
    expect(requiredSamples(2, 0.25)).toBe(1);
    expect(requiredSamples(8, 0.25)).toBe(2);
    expect(requiredSamples(8, 0.3)).toBe(3);
    expect(requiredSamples(8, 1)).toBe(8);
  });
});

describe('a call for a closed phase', () => {
  it('is refused with the phase, the reason and when it changes', () => {
    const e = phaseClosed(
      {
        stage: 1,
        epoch: 4,
        phase: 'merging',
        since: 0,
        deadline: 777,
        manifest,
        note: '',
      },
      'gradients of epoch 4 are accepted in UPLOADING(4) only',
      500,
    );
    expect(e.code).toBe('E_PHASE_CLOSED');
    expect(e.extra).toEqual({
      phase: 'MERGING(4)',
      reason: 'gradients of epoch 4 are accepted in UPLOADING(4) only',
      server_time: 500,
      next_change_at: 777,
    });
  });
});
