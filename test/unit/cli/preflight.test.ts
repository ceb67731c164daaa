/**
 * The preflight's verdict: whether a machine keeps up, where it helps most (the swarm's slowest
 * stage it can serve), and what limits it.
 */
import { testRun } from '../../support/model.js';
import { verdict, type StageFit } from '../../../src/cli/preflight.js';

const run = testRun({ phases: { drain_s: 20, upload_s: 30, merge_s: 60, lease_s: 15 } });
const stageFit = (stage: number, o: Partial<StageFit>): StageFit => ({
  stage,
  samples_per_s: 10,
  item_s: 0.4,
  transfer_s: 0.1,
  gradient_upload_s: 1,
  keeps_up: true,
  limit: 'compute',
  swarm_samples_per_s: 20,
  ...o,
});

describe('the preflight verdict', () => {
  it('sends a machine to the slowest stage of the swarm it keeps up with', () => {
    const v = verdict(
      [
        stageFit(0, { swarm_samples_per_s: 30 }),
        stageFit(1, { swarm_samples_per_s: 5, keeps_up: false }), // the slowest, but too slow here
        stageFit(2, { swarm_samples_per_s: 12, limit: 'bandwidth' }),
      ],
      run,
    );
    expect(v).toMatchObject({ keeps_up: true, best_stage: 2 });
    expect(v.text).toMatch(
      /stage 2 .*12\.0 samples\/s now, \+10\.0 with it.*its link to the store/,
    );
  });

  it('says when it cannot keep up, and what limits its fastest stage', () => {
    const v = verdict(
      [
        stageFit(0, { keeps_up: false, item_s: 20, transfer_s: 1 }),
        stageFit(1, { keeps_up: false, item_s: 9, transfer_s: 1 }),
      ],
      run,
    );
    expect(v).toEqual({
      keeps_up: false,
      text:
        'This machine cannot keep up: its fastest stage (1) needs 10.0 s an item against a lease ' +
        'of 15 s (limited by its compute).',
    });
  });
});
