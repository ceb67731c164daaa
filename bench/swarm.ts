/**
 * `npm run bench -- swarm [--model small|tiny|FILE] [--samples-per-epoch N] [--batch B]
 * [--epochs E] [--in-flight K] [--recompute] [--no-tiny] [--json]`: the same model, samples and schedule
 * (the shipped run config of the model, configs/runs/, with these sizes) trained in one
 * process (`iota train`, a step per epoch target) and as a swarm on this machine (an
 * orchestrator, 3 stages x 2 miners and a validator as real processes, threads shared among
 * the compute processes), in one run. Measured from the start of epoch 1 to the start of
 * epoch E (E - 1 merges; epoch 0 pays the start-up): tokens/s of each and their ratio, both
 * final losses (the swarm's tail losses of epoch E - 1 against the single process's loss of
 * the same samples), and where the swarm's time went: each stage's time training, uploading
 * and merging per epoch (from the status, polled), the share of epoch time the head spent
 * uploading and merging, each process's CPU seconds and peak RSS (/proc), the orchestrator's
 * CPU per merged sample, and each miner's time computing, reading inputs, encoding,
 * uploading, in calls to the orchestrator, merging, loading weights and idle (its own
 * stopwatch) and its backwards from kept forwards and by recompute (`--recompute`: miners keep
 * no forwards, for a before/after). Default: `small` with an epoch of 128 samples (30-60 s of single-process
 * compute here), then the tiny demo setting (configs/runs/tiny.yaml: 32 samples, batch 4) for
 * comparison. Needs `npm run build`.
 *
 * Targets (the swarm-efficiency issue): ratio >= 0.7, sync_share <= 0.15,
 * orchestrator_cpu_share <= 0.05, final losses within 1%.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { parse, stringify } from 'yaml';
import { loadModelConfig } from '../src/config/index.js';
import { IotaError } from '../src/errors.js';
import { newIdentity, writeKeyFile } from '../src/protocol/keys.js';
import type { SwarmStatus } from '../src/protocol/swarm-messages.js';
import { IotaProcess, runIota, serveArgs } from '../test/support/cli.js';

interface Setting {
  name: string;
  model: string;
  samples: number;
  batch: number;
  epochs: number;
  inFlight: number;
  /** miners run with --recompute (no kept forwards) */
  recompute?: boolean;
}

interface ProcessUse {
  role: string;
  cpu_s: number;
  peak_rss_mb: number;
}

interface Measured {
  setting: Setting;
  tokens_per_sample: number;
  single_tokens_per_s: number;
  swarm_tokens_per_s: number;
  ratio: number;
  single_final_loss: number;
  swarm_final_loss: number;
  loss_gap: number;
  /** share of the measured time the head spent uploading and merging */
  sync_share: number;
  /** share of the measured time the head spent draining (its samples allocated, not all done) */
  drain_share: number;
  orchestrator_cpu_share: number;
  orchestrator_cpu_ms_per_sample: number;
  epoch_seconds: number;
  /** per epoch and stage: seconds training, uploading, merging (from the polled status) */
  phases: Array<{
    epoch: number;
    stage: number;
    training: number;
    draining: number;
    uploading: number;
    merging: number;
  }>;
  processes: ProcessUse[];
  peak_rss_mb: Record<string, number>;
  miner_timing: Array<{ stage: number } & Record<string, number>>;
  ledger: Record<string, number>;
}

const log = (s: string) => process.stderr.write(`${s}\n`);

/**
 * Every process of both runs asks glibc for transparent huge pages on its large allocations
 * (unless GLIBC_TUNABLES is set): a logits tensor of `small` is 100 MB, allocated and freed per
 * item, and with 4 KB pages its page faults and TLB misses cost 20-30% (docs/performance.md).
 */
const HUGE_PAGES = { GLIBC_TUNABLES: process.env.GLIBC_TUNABLES ?? 'glibc.malloc.hugetlb=1' };

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string', default: 'small' },
      'samples-per-epoch': { type: 'string', default: '128' },
      batch: { type: 'string', default: '4' },
      epochs: { type: 'string', default: '6' },
      'in-flight': { type: 'string' },
      'no-tiny': { type: 'boolean', default: false },
      recompute: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  if (!existsSync('dist/cli/main.js') || !existsSync('dist/compute/compute-worker.js'))
    throw new IotaError(
      'E_NOT_BUILT',
      'the bench runs the built iota (dist/)',
      'run `npm run build` first',
    );
  const model = ['small', 'tiny'].includes(values.model!)
    ? resolve(`configs/${values.model}.yaml`)
    : resolve(values.model!);
  const settings: Setting[] = [
    {
      name: 'default',
      model,
      samples: Number(values['samples-per-epoch']),
      batch: Number(values.batch),
      epochs: Number(values.epochs),
      inFlight: Number(values['in-flight'] ?? shippedInFlight(model)),
      recompute: values.recompute,
    },
  ];
  if (!values['no-tiny'])
    settings.push({
      name: 'tiny demo',
      model: resolve('configs/tiny.yaml'),
      samples: 32,
      batch: 4,
      epochs: 8,
      inFlight: shippedInFlight(resolve('configs/tiny.yaml')),
      recompute: values.recompute,
    });
  const results: Measured[] = [];
  for (const s of settings) {
    log(
      `${s.name}: ${s.model}, ${s.samples} samples per epoch in items of ${s.batch}, ${s.epochs} epochs`,
    );
    const r = await measure(s);
    results.push(r);
    report(r);
  }
  const main = results[0];
  if (values.json)
    process.stdout.write(
      `${JSON.stringify({
        bench: 'swarm',
        swarm_tokens_per_s: main.swarm_tokens_per_s,
        single_tokens_per_s: main.single_tokens_per_s,
        ratio: main.ratio,
        swarm_final_loss: main.swarm_final_loss,
        single_final_loss: main.single_final_loss,
        sync_share: main.sync_share,
        orchestrator_cpu_share: main.orchestrator_cpu_share,
        peak_rss_mb: main.peak_rss_mb,
        targets_met: {
          ratio: main.ratio >= 0.7,
          sync_share: main.sync_share <= 0.15,
          orchestrator_cpu_share: main.orchestrator_cpu_share <= 0.05,
          final_loss: main.loss_gap <= 0.01,
        },
        settings: results,
      })}\n`,
    );
}

function report(r: Measured): void {
  const f = (x: number, d = 2) => x.toFixed(d);
  log(
    `  single ${f(r.single_tokens_per_s, 0)} tokens/s, swarm ${f(r.swarm_tokens_per_s, 0)} tokens/s: ratio ${f(r.ratio, 3)}; final loss ${f(r.single_final_loss, 4)} vs ${f(r.swarm_final_loss, 4)} (${f(100 * r.loss_gap)}%)`,
  );
  log(
    `  epoch ${f(r.epoch_seconds)} s, ${f(100 * r.sync_share, 0)}% of it uploading and merging at the head, ${f(100 * r.drain_share, 0)}% draining; orchestrator ${f(100 * r.orchestrator_cpu_share, 1)}% of the swarm's CPU, ${f(r.orchestrator_cpu_ms_per_sample)} ms per merged sample`,
  );
  for (const p of r.processes)
    log(`  ${p.role.padEnd(14)} ${f(p.cpu_s, 1)} CPU s, peak RSS ${f(p.peak_rss_mb, 0)} MB`);
  for (const t of r.miner_timing) {
    const { stage, ...rest } = t;
    log(
      `  miner stage ${stage}: ${Object.entries(rest)
        .map(([k, v]) =>
          k.endsWith('_ms') ? `${k.replace('_ms', '')} ${f(v / 1000, 1)}s` : `${k} ${v}`,
        )
        .join(', ')}`,
    );
  }
  log(`  ledger of the measured epochs: ${JSON.stringify(r.ledger)}`);
}

/**
 * The run config of a setting: the shipped run config of its model (configs/runs/small.yaml
 * for any model but tiny) with the setting's sizes, on the demo corpus (prepared under data/).
 */
function writeRunConfig(dir: string, s: Setting): string {
  const shipped = s.model.endsWith('tiny.yaml') ? 'tiny' : 'small';
  const base = parse(readFileSync(resolve(`configs/runs/${shipped}.yaml`), 'utf8')) as Record<
    string,
    unknown
  >;
  const file = join(dir, 'run.yaml');
  writeFileSync(
    file,
    stringify({
      ...base,
      name: 'bench-swarm',
      model: s.model,
      samples_per_epoch: s.samples,
      batch: s.batch,
      in_flight: s.inFlight,
      data: { corpus: 'demo', dir: resolve('data') },
    }),
  );
  return file;
}

/** The shipped run config's in_flight for a model (small's for any model but tiny). */
function shippedInFlight(model: string): number {
  const shipped = model.endsWith('tiny.yaml') ? 'tiny' : 'small';
  const run = parse(readFileSync(resolve(`configs/runs/${shipped}.yaml`), 'utf8')) as {
    in_flight: number;
  };
  return run.in_flight;
}

/** CPU seconds and peak RSS of a live process, from /proc. */
function usage(pid: number): { cpu_s: number; peak_rss_mb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return { cpu_s: ticks / 100, peak_rss_mb: Number(hwm ?? 0) / 1024 };
}

async function single(s: Setting, runFile: string, dir: string) {
  const r = await runIota(
    ['train', '--run', runFile, '--steps', String(s.epochs), '--out', join(dir, 'ck'), '--json'],
    { env: { IOTA_PROCESSES: '1', ...HUGE_PAGES } },
  );
  if (r.code !== 0) throw new Error(`iota train failed: ${r.stderr}`);
  const steps = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map(
      (l) =>
        JSON.parse(l) as { event: string; step?: number; loss?: number; tokens_per_s?: number },
    )
    .filter((e) => e.event === 'step');
  // Steps 2..E (the first pays the start-up), as the swarm is measured from epoch 1.
  const measured = steps.filter((e) => e.step! >= 2);
  const seconds = measured.reduce((a, e) => a + 1 / e.tokens_per_s!, 0);
  return { tokens_per_s: measured.length / seconds, final_loss: steps[s.epochs - 1].loss! };
}

/**
 * One setting in a folder of its own, removed afterwards (a run leaves gigabytes of store
 * objects behind); kept, and named, when the run fails.
 */
async function measure(s: Setting): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'iota-bench-swarm-'));
  try {
    const r = await measureIn(s, dir);
    rmSync(dir, { recursive: true, force: true });
    return r;
  } catch (e) {
    log(`  the run's folder is kept for a look: ${dir}`);
    throw e;
  }
}

async function measureIn(s: Setting, dir: string): Promise<Measured> {
  const runFile = writeRunConfig(dir, s);
  const seq = loadModelConfig(s.model).seq;
  log('  single process...');
  const one = await single(s, runFile, dir);

  log('  swarm...');
  const validator = newIdentity();
  writeKeyFile(join(dir, 'validator.key'), validator);
  // IOTA_BENCH_PROFILE=DIR: V8 CPU profiles of the orchestrator and the validator, written there at exit.
  const prof = process.env.IOTA_BENCH_PROFILE;
  const profiled = prof ? ['--cpu-prof', `--cpu-prof-dir=${resolve(prof)}`] : [];
  const orch = new IotaProcess(serveArgs(runFile, dir, '--set', `validators=[${validator.id}]`), {
    env: HUGE_PAGES,
    node: profiled,
  });
  const url = ((await orch.waitFor((e) => e.event === 'listening')) as { url: string }).url;
  const env = { IOTA_PROCESSES: '7', ...HUGE_PAGES };
  const miners = [0, 0, 1, 1, 2, 2].map((stage, i) => {
    const key = join(dir, `m${i}.key`);
    writeKeyFile(key, newIdentity());
    return {
      stage,
      p: new IotaProcess(
        [
          'miner',
          ...['--layer', String(stage), '--orchestrator', url, '--key', key, '--json'],
          ...(s.recompute ? ['--recompute'] : []),
        ],
        { env },
      ),
    };
  });
  const val = new IotaProcess(
    ['validator', '--orchestrator', url, '--key', join(dir, 'validator.key'), '--json'],
    { env, node: profiled },
  );
  const all = [
    { role: 'orchestrator', p: orch },
    ...miners.map((m, i) => ({ role: `miner ${m.stage}.${i % 2}`, p: m.p })),
    { role: 'validator', p: val },
  ];

  // Each stage's phase over time, from the public status.
  const timeline: Array<{ at: number; stages: Array<{ phase: string; epoch: number }> }> = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const st = (await (await request(`${url}/v1/swarm`)).body.json()) as SwarmStatus;
      // Training after the head's allocation closed is the pipeline's drain.
      const closed = st.allocation.closed_at !== undefined;
      timeline.push({
        at: Date.now(),
        stages: st.stages.map((x) => ({
          phase:
            x.phase === 'training' && closed && st.allocation.epoch === x.epoch
              ? 'draining'
              : x.phase,
          epoch: x.epoch,
        })),
      });
      // Four times a second: finer would load the orchestrator with the bench's own requests.
      await new Promise((r) => setTimeout(r, 250));
    }
  })();

  const head = miners.filter((m) => m.stage === 0).map((m) => m.p);
  // A process that exits before the end ends the measurement, with the end of its log.
  const died = Promise.race(
    all.map(async (x) => {
      const code = await x.p.exited;
      throw new Error(
        `the ${x.role} exited (${code}) during the run: ${x.p.stderr.join('').slice(-2000)}`,
      );
    }),
  );
  died.catch(() => undefined);
  const started = (epoch: number) =>
    Promise.race([
      died,
      ...head.map((p) => p.waitFor((e) => e.event === 'weights' && e.epoch === epoch)),
    ]);
  let t1: number;
  let tE: number;
  let cpu1: number[] = [];
  let end: Array<ReturnType<typeof usage>> = [];
  try {
    await started(1);
    t1 = Date.now();
    cpu1 = all.map((x) => usage(x.p.child.pid!).cpu_s);
    await started(s.epochs);
    tE = Date.now();
    end = all.map((x) => usage(x.p.child.pid!));
  } catch (e) {
    await Promise.all(all.map((x) => x.p.kill('SIGKILL')));
    throw e;
  } finally {
    polling = false;
    await poller.catch(() => undefined);
  }

  const tails = miners.filter((m) => m.stage === 2).flatMap((m) => m.p.events);
  const lastLosses = tails.filter((e) => e.event === 'loss' && e.epoch === s.epochs - 1) as Array<{
    loss: number;
    samples: number[];
  }>;
  const lossSamples = lastLosses.reduce((a, l) => a + l.samples.length, 0);
  const swarmLoss = lastLosses.reduce((a, l) => a + l.loss * l.samples.length, 0) / lossSamples;
  const st = (await (await request(`${url}/v1/swarm?ledger_from=1`)).body.json()) as SwarmStatus;
  const ledger: Record<string, number> = {};
  for (const l of st.ledger)
    if (l.epoch >= 1 && l.epoch < s.epochs) ledger[l.state] = (ledger[l.state] ?? 0) + l.samples;

  await Promise.all(miners.map((m) => m.p.kill('SIGTERM')));
  await val.kill('SIGTERM');
  await orch.kill('SIGTERM');
  const miner_timing = miners.map((m) => {
    const stopped = m.p.events.find((e) => e.event === 'stopped') as {
      timing?: Record<string, number>;
      backwards?: { kept: number; recomputed: number };
    };
    const b = stopped?.backwards;
    return {
      stage: m.stage,
      ...(stopped?.timing ?? {}),
      ...(b ? { bwd_kept_samples: b.kept, bwd_recomputed_samples: b.recomputed } : {}),
    };
  });

  const cpu = end.map((u, i) => u.cpu_s - cpu1[i]);
  const total = cpu.reduce((a, b) => a + b, 0);
  const merged = (s.epochs - 1) * s.samples;
  const seconds = (tE - t1) / 1000;
  const swarmTps = (merged * seq) / seconds;
  const peak: Record<string, number> = {};
  all.forEach((x, i) => {
    const role = x.role.split(' ')[0];
    peak[role] = Math.max(peak[role] ?? 0, end[i].peak_rss_mb);
  });
  return {
    setting: s,
    tokens_per_sample: seq,
    single_tokens_per_s: one.tokens_per_s,
    swarm_tokens_per_s: swarmTps,
    ratio: swarmTps / one.tokens_per_s,
    single_final_loss: one.final_loss,
    swarm_final_loss: swarmLoss,
    loss_gap: Math.abs(swarmLoss - one.final_loss) / one.final_loss,
    sync_share: headShare(timeline, t1, tE, ['uploading', 'merging']),
    drain_share: headShare(timeline, t1, tE, ['draining']),
    orchestrator_cpu_share: cpu[0] / total,
    orchestrator_cpu_ms_per_sample: (1000 * cpu[0]) / merged,
    epoch_seconds: seconds / (s.epochs - 1),
    phases: phaseTimes(timeline),
    processes: all.map((x, i) => ({
      role: x.role,
      cpu_s: cpu[i],
      peak_rss_mb: end[i].peak_rss_mb,
    })),
    peak_rss_mb: peak,
    miner_timing: miner_timing as Measured['miner_timing'],
    ledger,
  };
}

/** The share of [t1, tE] in which the head stage was in one of `phases`. */
function headShare(
  timeline: Array<{ at: number; stages: Array<{ phase: string }> }>,
  t1: number,
  tE: number,
  phases: string[],
): number {
  let within = 0;
  for (let i = 1; i < timeline.length; i++) {
    const a = Math.max(t1, timeline[i - 1].at);
    const b = Math.min(tE, timeline[i].at);
    if (b > a && phases.includes(timeline[i - 1].stages[0].phase)) within += b - a;
  }
  return within / (tE - t1);
}

/** Seconds each stage spent in each phase of each epoch, from the polled status. */
function phaseTimes(
  timeline: Array<{ at: number; stages: Array<{ phase: string; epoch: number }> }>,
): Measured['phases'] {
  const out = new Map<string, Measured['phases'][number]>();
  for (let i = 1; i < timeline.length; i++) {
    const dt = (timeline[i].at - timeline[i - 1].at) / 1000;
    timeline[i - 1].stages.forEach((x, stage) => {
      const k = `${x.epoch}/${stage}`;
      const row = out.get(k) ?? {
        epoch: x.epoch,
        stage,
        training: 0,
        draining: 0,
        uploading: 0,
        merging: 0,
      };
      row[x.phase as 'training' | 'draining' | 'uploading' | 'merging'] += dt;
      out.set(k, row);
    });
  }
  return [...out.values()].sort((a, b) => a.epoch - b.epoch || a.stage - b.stage);
}
