/**
 * The validator's harness, short version (test/support/validator-harness.ts): honest miners on
 * native and wasm beside every adversary, a validator replaying every item, every gradient
 * upload and every merged partition. Every adversary is caught and quarantined; honest miners
 * get no failed verdict over at least 50 checks; the scores match the work the harness counted
 * itself; the held-out loss falls over the epochs and `iota status` shows it.
 */
import { ADVERSARIES, HONEST_ITEMS } from '../support/adversaries.js';
import { killAll } from '../support/cli.js';
import { runValidatorHarness, type HarnessResult } from '../support/validator-harness.js';

afterAll(killAll);

describe('iota validator', () => {
  let r: HarnessResult;
  beforeAll(async () => {
    r = await runValidatorHarness({
      samplesPerEpoch: 24,
      honestChecks: 50,
      evals: 3,
      deadlineMs: 300_000,
      validation: { rate: 1, upload_rate: 1, probation_passes: 2 },
    });
  }, 330_000);

  it('catches every adversary and never fails an honest miner', () => {
    expect(r.adversaries.filter((a) => !a.detected).map((a) => a.kind)).toEqual([]);
    expect(r.adversaries.map((a) => a.kind)).toEqual([...ADVERSARIES]);
    const caught = new Map(r.adversaries.map((a) => [a.kind, a.verdict!]));
    // Stale weights only differ once the weights have moved on: caught from epoch 1.
    expect(caught.get('stale_weights')!.epoch as number).toBeGreaterThanOrEqual(1);
    // The subtle ones fail by measured error, not by a malformed tensor.
    for (const k of ['int8_roundtrip', 'skipped_block', 'stale_weights', 'copy_input'] as const)
      expect(caught.get(k)!.detail).toMatch(/rel err/);
    expect(caught.get('lying_loss')!.detail).toMatch(/loss/);
    for (const k of ['free_rider', 'inflated_claims'] as const)
      expect(caught.get(k)!).toMatchObject({
        kind: 'upload',
        detail: expect.stringMatching(/gradient sum/),
      });
    // The tampered merger: failed by a spot check of its merged partition (and by a lost dispute where its co-merger was honest).
    expect(caught.get('tampered_merge')!).toMatchObject({
      kind: 'merge',
      detail: expect.stringMatching(/merged partition \d+: [1-9]\d* of \d+ values differ/),
    });
    expect(r.adversaries.find((a) => a.kind === 'tampered_merge')!.first).toMatchObject({
      kind: 'merge',
      passed: false,
    });
    for (const a of r.adversaries) expect([a.kind, a.first?.passed]).toEqual([a.kind, false]);
    expect(r.honest_checks).toBeGreaterThanOrEqual(50);
    expect(r.false_positive_details).toEqual([]); // the details, should one fail
    expect(r.false_positives).toBe(0);
  });

  it('credits the work the harness counted and shares the weights by it; quarantined miners score zero', () => {
    const honest = r.work.filter((w) => w.who.startsWith('honest'));
    for (const w of honest) {
      expect(w.counted_flops).toBeGreaterThan(0);
      expect(Math.abs(w.work_flops - w.counted_flops) / w.counted_flops).toBeLessThanOrEqual(0.01);
      expect([w.who, w.failures, w.probation]).toEqual([w.who, 0, false]);
    }
    const adversaries = r.work.filter((w) => !w.who.startsWith('honest'));
    expect(adversaries.map((w) => w.who).sort()).toEqual([...ADVERSARIES].sort());
    for (const w of adversaries) expect([w.who, w.failures > 0]).toEqual([w.who, true]);
    // Cheats in the work items stay quarantined; the others may be released by honest items
    // reported after their quarantine, and then score what their penalty leaves.
    const released = adversaries.filter((w) => !w.probation);
    expect(
      released.map((w) => w.who).filter((k) => !(HONEST_ITEMS as readonly string[]).includes(k)),
    ).toEqual([]);
    for (const w of released)
      expect([w.who, w.score]).toEqual([w.who, Math.max(0, w.work_flops - w.penalty_flops)]);
    const quarantined = adversaries.filter((w) => w.probation);
    expect(quarantined.length).toBeGreaterThanOrEqual(ADVERSARIES.length - HONEST_ITEMS.length);
    for (const w of quarantined) expect([w.who, w.score, w.weight]).toEqual([w.who, 0, 0]);
    // Among the unpenalised, weight shares are work shares (by the harness's own count).
    const paid = r.work.filter((w) => w.score > 0 && w.failures === 0);
    expect(paid.length).toBeGreaterThanOrEqual(honest.length);
    const totalWork = paid.reduce((a, w) => a + w.counted_flops, 0);
    const totalWeight = paid.reduce((a, w) => a + w.weight, 0);
    for (const w of paid)
      expect(Math.abs(w.weight / totalWeight - w.counted_flops / totalWork)).toBeLessThanOrEqual(
        0.05 * (w.counted_flops / totalWork),
      );
  });

  it('measures a falling held-out loss every epoch and `iota status` shows it', () => {
    expect(r.evals.length).toBeGreaterThanOrEqual(3);
    const epochs = r.evals.map((e) => e.epoch);
    expect(epochs).toEqual([...epochs].sort((a, b) => a - b));
    expect(r.evals[r.evals.length - 1].loss).toBeLessThan(r.evals[0].loss);
    const last = r.evals[r.evals.length - 1];
    expect(r.status).toMatch(new RegExp(`held-out loss: .*e${last.epoch} ${last.loss.toFixed(3)}`));
    expect(r.exits).toEqual([0, 0, 0, 0, 0]);
  });
});
