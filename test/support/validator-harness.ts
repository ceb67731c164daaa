/**
 * The validator's harness (test code, shared by `test/e2e/validator.test.ts` and
 * `npm run bench -- validator`): an orchestrator, honest miners on mixed backends and a
 * validator as real processes, beside every adversary of `adversaries.ts` in this process.
 * Each adversary works until a check fails it; the run goes on until the honest miners have
 * had `honestChecks` verdicts and the held-out loss has been measured `evals` times. The
 * harness counts the work every miner really did (honest miners' accepted items from their
 * own event stream, adversaries' from their own loop), independently of the orchestrator, and
 * sets it beside the orchestrator's scores.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { loadRunConfig } from '../../src/config/index.js';
import { newIdentity, writeKeyFile } from '../../src/protocol/keys.js';
import type { ScoresReply, VerdictsReply } from '../../src/protocol/swarm-messages.js';
import { ADVERSARIES, Adversary, type AdversaryKind } from './adversaries.js';
import { IotaProcess, killAll, runIota, serveArgs } from './cli.js';
import { writeRun } from './run-files.js';

export interface HarnessOptions {
  samplesPerEpoch: number;
  /** verdicts on honest miners' work to wait for */
  honestChecks: number;
  /** held-out evaluations to wait for (one per epoch) */
  evals: number;
  deadlineMs: number;
  validation: { rate: number; upload_rate: number; probation_passes: number };
  log?: (s: string) => void;
}

export interface AdversaryOutcome {
  kind: AdversaryKind;
  miner: string;
  detected: boolean;
  /** checks of its work up to and including the first failed one */
  tasks_to_detect: number | null;
  /** the first failed verdict on its work (the validator's or, for a lost merge dispute, the orchestrator's) */
  first?: VerdictsReply['verdicts'][number];
  /** the validator's first failed verdict (the event it printed) */
  verdict?: Record<string, unknown>;
  /** the checks up to the first failed one (all of them if none failed), as `e<epoch> <kind> <reason> pass|FAIL` */
  trail: string[];
}

export interface MinerWork {
  miner: string;
  who: string;
  /** FLOPs of the accepted work the harness counted */
  counted_flops: number;
  /** what the orchestrator's scores say */
  work_flops: number;
  penalty_flops: number;
  score: number;
  weight: number;
  failures: number;
  probation: boolean;
}

export interface HarnessResult {
  adversaries: AdversaryOutcome[];
  honest_checks: number;
  false_positives: number;
  /** each failed verdict on honest work: kind, epoch and the validator's detail */
  false_positive_details: string[];
  evals: Array<{ epoch: number; loss: number }>;
  work: MinerWork[];
  /** `iota status` as printed */
  status: string;
  /** exit codes of the honest miners, the validator and the orchestrator after SIGTERM */
  exits: Array<number | null>;
  seconds: number;
  /** the folder with each process's events and stderr (orchestrator, miners, validator) */
  logs: string;
}

/** Units of work per sample of each kind (forward 1, backward 2, tail 3), as the scores count. */
const UNITS: Record<string, number> = { fwd: 1, bwd: 2, tail: 3 };

export async function runValidatorHarness(o: HarnessOptions): Promise<HarnessResult> {
  const log = o.log ?? (() => {});
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'iota-validator-harness-'));
  const runFile = writeRun(dir, {
    samples_per_epoch: o.samplesPerEpoch,
    batch: 1,
    in_flight: 2,
    eval_every: 1,
    validation: { ...o.validation, window_epochs: 1000 },
    phases: { drain_s: 60, upload_s: 10, merge_s: 60, lease_s: 5 },
  });
  const validatorKey = join(dir, 'validator.key');
  const validatorId = newIdentity();
  writeKeyFile(validatorKey, validatorId);
  const orch = new IotaProcess(
    serveArgs(
      runFile,
      dir,
      '--set',
      'rate_limits.exempt_loopback=true',
      '--set',
      `validators=[${validatorId.id}]`,
    ),
  );
  const adversaries: Adversary[] = [];
  const processes: Array<[string, IotaProcess]> = [['orchestrator', orch]];
  // Each process's events and stderr, kept for a failed run to be read.
  const keepLogs = () => {
    for (const [name, p] of processes) {
      writeFileSync(join(dir, `${name}.jsonl`), p.events.map((e) => JSON.stringify(e)).join('\n'));
      writeFileSync(join(dir, `${name}.stderr`), p.stderr.join(''));
    }
  };
  try {
    const url = ((await orch.waitFor((e) => e.event === 'listening')) as { url: string }).url;
    const honestIds: string[] = [];
    const honest = (['native', 'wasm', 'native'] as const).map((backend, s) => {
      const file = join(dir, `m${s}.key`);
      const id = newIdentity();
      writeKeyFile(file, id);
      honestIds.push(id.id);
      return new IotaProcess([
        'miner',
        '--layer',
        String(s),
        '--orchestrator',
        url,
        '--key',
        file,
        '--json',
        '--backend',
        backend,
      ]);
    });
    const validator = new IotaProcess([
      'validator',
      '--orchestrator',
      url,
      '--key',
      validatorKey,
      '--json',
    ]);
    processes.push(...honest.map((p, i): [string, IotaProcess] => [`miner-${i}`, p]), [
      'validator',
      validator,
    ]);
    await validator.waitFor((e) => e.event === 'started');
    log(`orchestrator at ${url}; 3 honest miners and a validator started`);

    const { run, model } = loadRunConfig(runFile);
    const info = (await (await request(`${url}/v1/info`)).body.json()) as { config_hash: string };
    for (const kind of ADVERSARIES)
      adversaries.push(
        new Adversary(url, run.name, kind, kind === 'lying_loss' ? 2 : 1, model, run),
      );
    for (const a of adversaries) await a.start(info.config_hash);
    const deadline = t0 + o.deadlineMs;
    const failed = (a: Adversary) =>
      validator.events.find((e) => e.event === 'verdict' && e.miner === a.id && e.passed === false);
    // Every adversary works until a check fails it.
    await Promise.all(
      adversaries.map(async (a) => {
        while (!failed(a) && Date.now() < deadline) {
          if ((await a.play().catch(() => 0)) === 0) await new Promise((r) => setTimeout(r, 50));
        }
        log(`${a.kind}: ${failed(a) ? 'caught' : 'not caught by the deadline'}`);
      }),
    );
    const honestVerdicts = () =>
      validator.events.filter(
        (e) =>
          e.event === 'verdict' && honestIds.includes(e.miner as string) && e.abstained !== true,
      );
    const evalEvents = () => validator.events.filter((e) => e.event === 'eval');
    // Waits for an event, or for the deadline (the outcome then says what was missing).
    const until = async (test: () => boolean) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        validator.waitFor(test).catch(() => undefined),
        new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
    };
    await until(() => honestVerdicts().length >= o.honestChecks);
    log(`${honestVerdicts().length} verdicts on honest work`);
    await until(() => evalEvents().length >= o.evals);
    log(`${evalEvents().length} held-out evaluations`);

    const { params } = await adversaries[0].runInfo();
    // Stop the work first, so the scores and the counts cover the same items.
    const minerExits = await Promise.all(honest.map((p) => p.kill('SIGTERM')));
    await Promise.all(adversaries.map((a) => a.close()));
    const status = (await runIota(['status', '--orchestrator', url])).stdout;
    const scores = JSON.parse(
      (await runIota(['scores', '--orchestrator', url, '--json'])).stdout,
    ) as ScoresReply;
    const flops = (stage: number, kind: string, samples: number) =>
      2 * params[stage] * model.seq * UNITS[kind] * samples;

    const counted = new Map<string, number>();
    honest.forEach((p, i) => {
      for (const e of p.events)
        if (e.event === 'item')
          counted.set(
            honestIds[i],
            (counted.get(honestIds[i]) ?? 0) +
              flops(e.stage as number, e.kind as string, e.samples as number),
          );
    });
    for (const a of adversaries)
      for (const [k, n] of a.worked)
        counted.set(
          a.id,
          (counted.get(a.id) ?? 0) + flops(Number(k.split('/')[0]), k.split('/')[1], n),
        );
    const work: MinerWork[] = [
      ...honestIds.map((id, i) => [id, `honest-${i}`]),
      ...adversaries.map((a) => [a.id, a.kind]),
    ].map(([miner, who]) => {
      const s = scores.scores.find((x) => x.miner === miner);
      return {
        miner,
        who,
        counted_flops: counted.get(miner) ?? 0,
        work_flops: s?.work_flops ?? 0,
        penalty_flops: s?.penalty_flops ?? 0,
        score: s?.score ?? 0,
        weight: s?.weight ?? 0,
        failures: s?.failures ?? 0,
        probation: s?.probation ?? false,
      };
    });

    // Every check that touched an adversary, in order (the validator's and the orchestrator's, who settles merge disputes).
    const outcomes: AdversaryOutcome[] = [];
    for (const a of adversaries) {
      const res = await request(`${url}/v1/verdicts?miner=${encodeURIComponent(a.id)}&limit=1000`);
      const body = (await res.body.json()) as VerdictsReply;
      if (res.statusCode !== 200)
        throw new Error(`GET /v1/verdicts answered ${res.statusCode}: ${JSON.stringify(body)}`);
      const { verdicts } = body;
      const first = verdicts.findIndex((v) => !v.passed);
      const replay = validator.events.find(
        (e) => e.event === 'verdict' && e.miner === a.id && e.passed === false,
      );
      const trail = verdicts
        .slice(0, first >= 0 ? first + 1 : verdicts.length)
        .map((v) => `e${v.epoch} ${v.kind} ${v.reason} ${v.passed ? 'pass' : 'FAIL'}`);
      outcomes.push({
        kind: a.kind as AdversaryKind,
        miner: a.id,
        detected: first >= 0,
        tasks_to_detect: first >= 0 ? first + 1 : null,
        ...(first >= 0 ? { first: verdicts[first] } : {}),
        ...(replay ? { verdict: replay } : {}),
        trail,
      });
    }
    const exits = [...minerExits, await validator.kill('SIGTERM'), await orch.kill('SIGTERM')];
    return {
      adversaries: outcomes,
      honest_checks: honestVerdicts().length,
      false_positives: honestVerdicts().filter((e) => e.passed === false).length,
      false_positive_details: honestVerdicts()
        .filter((e) => e.passed === false)
        .map((e) => `${String(e.kind)} of epoch ${String(e.epoch)}: ${String(e.detail)}`),
      evals: evalEvents().map((e) => ({ epoch: e.epoch as number, loss: e.loss as number })),
      work,
      status,
      exits,
      seconds: (Date.now() - t0) / 1000,
      logs: dir,
    };
  } finally {
    keepLogs();
    await Promise.all(adversaries.map((a) => a.close().catch(() => undefined)));
    await killAll();
  }
}
