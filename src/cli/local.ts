/** `iota local`: a whole swarm on this machine, watched live, summarised at the end. */
import { join } from 'node:path';
import type { Command } from 'commander';
import chalk from 'chalk';
import { IotaError } from '../errors.js';
import {
  keyNames,
  LocalSwarm,
  prepareStateDir,
  SHIPPED_MODELS,
  type LocalOptions,
} from '../local/swarm.js';
import { minerScores, readRecord, sampleText } from '../local/summary.js';
import { LiveView } from '../local/view.js';
import { addBackendOption, positiveInt, useBackend } from './common.js';
import { note, printJson } from './output.js';

type LocalFlags = LocalOptions & { json?: boolean };

export function registerLocal(program: Command): void {
  const cmd = program
    .command('local')
    .description(
      'run a whole swarm on this machine (orchestrator, miners, validators as child processes) ' +
        'and watch it train; run again to resume',
    )
    .option('--model <name|file>', `${SHIPPED_MODELS.join(' or ')}, or a model config file`, 'tiny')
    .option(
      '--epochs <n>',
      'train until every stage has merged this many epochs',
      positiveInt('--epochs'),
      60,
    )
    .option(
      '--samples-per-epoch <n>',
      'samples per optimizer step (default: the shipped run config’s)',
      positiveInt('--samples-per-epoch'),
    )
    .option(
      '--miners-per-stage <n>',
      'miners training each stage',
      positiveInt('--miners-per-stage'),
      2,
    )
    .option(
      '--validators <n>',
      'validators replaying the miners’ work (0: none)',
      nonNegativeInt,
      1,
    )
    .option('--state-dir <dir>', 'the run’s folder (default .iota/local/<run>)')
    .option('--port <port>', 'the orchestrator’s port; 0 picks a free one', nonNegativeInt, 0)
    .option('--json', 'print events as JSON lines and the summary as one JSON object last');
  addBackendOption(cmd).action(local);
}

function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new IotaError('E_BAD_FLAG', `${v}: expected an integer >= 0`);
  return n;
}

async function local(o: LocalFlags): Promise<void> {
  const started = performance.now();
  const out = o.json ? process.stderr : process.stdout;
  const { json: _json, ...options } = o;
  const prepared = prepareStateDir(options);
  let names = new Map<string, string>();
  const view = new LiveView({
    json: Boolean(o.json),
    seq: prepared.loaded.model.seq,
    logs: join(prepared.dir, 'logs'),
    name: (id) => (names.has(id) ? names : (names = keyNames(prepared.dir))).get(id),
  });
  const swarm = new LocalSwarm(options, prepared, view);
  const say = (s: string) => (o.json ? note(s) : view.print(s));

  // Ctrl-C: stop cleanly; again: kill every child at once.
  let interrupts = 0;
  let interrupted: () => void = () => {};
  const onInterrupt = new Promise<void>((r) => (interrupted = r));
  const onSignal = (sig: string) => {
    interrupts++;
    if (interrupts === 1) {
      say(`${sig}: stopping the swarm (miners finish or release their work; again to kill)`);
      interrupted();
    } else {
      swarm.kill();
      process.exit(130);
    }
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  const url = await swarm.startOrchestrator();
  if (o.json)
    printJson({
      event: 'started',
      url,
      dashboard: `${url}/dashboard`,
      state_dir: swarm.dir,
      logs: swarm.logs,
    });
  say(
    `swarm of ${swarm.loaded.model.name} (${swarm.stages} stages x ${o.minersPerStage} miners, ` +
      `${o.validators} validator${o.validators === 1 ? '' : 's'}) at ${url}; state and logs in ${swarm.dir}\n` +
      `dashboard: ${url}/dashboard`,
  );
  const tokensBefore = readRecord(swarm.dir).tokens;
  let reached: boolean;
  try {
    const at = readRecord(swarm.dir).epochs;
    if (at < o.epochs) swarm.startWorkers();
    else say(`the run already reached epoch ${at}; pass a larger --epochs to train on`);
    reached = await swarm.watch(onInterrupt);
  } catch (e) {
    swarm.kill();
    throw e;
  }
  names = keyNames(swarm.dir);
  const scores = await swarm.scores().catch(() => undefined);
  const wall = (performance.now() - started) / 1000;
  await swarm.stop();
  const record = readRecord(swarm.dir);
  if (!reached) {
    say(`stopped at epoch ${record.epochs} of ${o.epochs}; run the same command to resume`);
    process.exitCode = 130;
  }
  await useBackend(o.backend, true);
  const text = await sampleText(swarm.dir);
  const summary = {
    ...record,
    reached,
    wall_s: wall,
    tokens_per_s: (record.tokens - tokensBefore) / wall,
    scores: scores ? minerScores(scores, names) : [],
    text,
    state_dir: swarm.dir,
    logs: swarm.logs,
  };
  if (o.json) printJson(summary);
  else out.write(render(summary));
}

function render(s: ReturnType<typeof readRecord> & Record<string, unknown>): string {
  const f = (x: unknown, d: number) => (typeof x === 'number' ? x.toFixed(d) : '-');
  const scores = s.scores as Array<{ name?: string; miner: string; score: number; weight: number }>;
  const lines = [
    '',
    chalk.bold(
      `trained ${s.epochs} epochs of ${s.stages} stages: ${s.tokens.toLocaleString()} tokens`,
    ),
    `wall ${f(s.wall_s, 1)} s, ${f(s.tokens_per_s, 0)} tokens/s this session`,
    `training loss ${f(s.loss_first, 4)} (first epoch) -> ${f(s.loss_last, 4)} (last); held-out ${f(s.eval_loss, 4)}`,
    `merges ${s.merges}, verdicts ${s.verdicts} (${s.failed_verdicts} failed)`,
    'scores:',
    ...scores.map(
      (m) =>
        `  ${(m.name ?? m.miner.slice(0, 12)).padEnd(16)} verified work ${f(m.score / 1e9, 2)} GFLOP, ` +
        `share ${f(100 * m.weight, 1)}%`,
    ),
    'sampled from the final weights:',
    ...(s.text as string[]).map((t) => `  ${t.length > 120 ? `${t.slice(0, 119)}…` : t}`),
    chalk.dim(`take the model away: iota export --state-dir ${String(s.state_dir)} --out DIR`),
    '',
  ];
  return lines.join('\n');
}
