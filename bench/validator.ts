/**
 * `npm run bench -- validator [--checks N] [--samples S] [--rate R] [--json]`: the validator's
 * harness, full version, at a realistic replay rate (25% of items; every item of a miner on
 * probation; every upload) (test/support/validator-harness.ts; needs `npm run build`): honest
 * miners on native and wasm beside every adversary, until the honest miners have had N
 * verdicts. Target: every adversary detected and quarantined within 20 checks of its work,
 * no failed verdict for an honest miner over >= 500 checks; the scores match the work the
 * harness counted within 1% (credits) and 5% (shares of the weights).
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { IotaError } from '../src/errors.js';
import { runValidatorHarness } from '../test/support/validator-harness.js';

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      checks: { type: 'string', default: '500' },
      samples: { type: 'string', default: '48' },
      rate: { type: 'string', default: '0.25' },
      'upload-rate': { type: 'string', default: '1' },
      evals: { type: 'string', default: '3' },
      minutes: { type: 'string', default: '25' },
      json: { type: 'boolean', default: false },
    },
  });
  if (!existsSync('dist/cli/main.js') || !existsSync('dist/compute/compute-worker.js'))
    throw new IotaError(
      'E_NOT_BUILT',
      'the harness runs the built iota (dist/)',
      'run `npm run build` first',
    );
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const checks = Number(values.checks);
  const r = await runValidatorHarness({
    samplesPerEpoch: Number(values.samples),
    honestChecks: checks,
    evals: Number(values.evals),
    deadlineMs: Number(values.minutes) * 60_000,
    validation: {
      rate: Number(values.rate),
      upload_rate: Number(values['upload-rate']),
      probation_passes: 3,
    },
    log,
  });
  const honest = r.work.filter((w) => w.who.startsWith('honest'));
  const creditError = Math.max(
    ...honest.map((w) => Math.abs(w.work_flops - w.counted_flops) / Math.max(1, w.counted_flops)),
  );
  // Shares of the unpenalised (a released adversary scores what its penalty leaves).
  const paid = r.work.filter((w) => w.score > 0 && w.failures === 0);
  const work = paid.reduce((a, w) => a + w.counted_flops, 0);
  const weight = paid.reduce((a, w) => a + w.weight, 0);
  const shareError = Math.max(
    ...paid.map(
      (w) => Math.abs(w.weight / weight - w.counted_flops / work) / (w.counted_flops / work),
    ),
  );
  const quarantined = r.work.filter((w) => w.probation && w.failures > 0);
  const result = {
    bench: 'validator',
    rate: Number(values.rate),
    upload_rate: Number(values['upload-rate']),
    adversaries: r.adversaries.map((a) => ({
      kind: a.kind,
      detected: a.detected,
      tasks_to_detect: a.tasks_to_detect,
      detected_by: a.first ? `${a.first.by}: ${a.first.kind}` : null,
      quarantined: quarantined.some((w) => w.miner === a.miner),
      scored: r.work.find((w) => w.miner === a.miner)?.score ?? 0,
      trail: a.trail,
    })),
    honest_checks: r.honest_checks,
    false_positives: r.false_positives,
    credit_error_max: creditError,
    share_error_max: shareError,
    evals: r.evals,
    seconds: r.seconds,
  };
  for (const a of result.adversaries)
    log(
      `${a.kind.padEnd(16)} ${a.detected ? `detected after ${a.tasks_to_detect} check(s) (${a.detected_by})` : 'NOT detected'}${a.quarantined ? ', quarantined' : ''}, score ${a.scored}`,
    );
  log(
    `honest: ${r.honest_checks} checks, ${r.false_positives} failed; credits vs the harness's count: max error ${(100 * creditError).toFixed(3)}%; weight shares vs work shares: max error ${(100 * shareError).toFixed(3)}%`,
  );
  log(
    `held-out loss: ${r.evals.map((e) => `e${e.epoch} ${e.loss.toFixed(3)}`).join(', ')}; ${r.seconds.toFixed(0)} s`,
  );
  const met =
    result.adversaries.every((a) => a.detected && a.tasks_to_detect! <= 20) &&
    r.honest_checks >= 500 &&
    r.false_positives === 0;
  log(
    `target (every adversary within 20 checks, 0 false positives over >= 500 honest checks): ${met ? 'met' : 'missed'}`,
  );
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
}
