/** `iota miner`: train one stage of a run in the swarm. */
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import type { Command } from 'commander';
import chalk from 'chalk';
import ora from 'ora';
import { loadNodeConfig } from '../config/index.js';
import { IotaError } from '../errors.js';
import { Miner, type MinerEvent } from '../miner/miner.js';
import { readKeyFile } from '../protocol/keys.js';
import { addBackendOption, positiveInt, useBackend } from './common.js';
import { preflight } from './preflight.js';
import { note, printJson } from './output.js';
import { minerStanding } from './standing.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

interface MinerFlags {
  layer: string;
  orchestrator?: string;
  key?: string;
  node?: string;
  name?: string;
  backend: string;
  threads?: number;
  json?: boolean;
  healthPort?: number;
  maxSamples?: number;
  maxEpochs?: number;
  preflight?: boolean;
  recompute?: boolean;
}

export function registerMiner(program: Command): void {
  const cmd = program
    .command('miner')
    .description(
      'train one pipeline stage of a run: forward and backward work, gradient upload, merge',
    )
    .option(
      '--layer <auto|N>',
      "the stage to train: 'auto' joins the pipeline's bottleneck (alias --stage)",
      'auto',
    )
    .option('--stage <auto|N>', 'same as --layer')
    .option(
      '--orchestrator <url>',
      'orchestrator URL (default: orchestrator_url of the node config)',
    )
    .option(
      '--key <file>',
      'your Ed25519 key file (iota keys new --out FILE); default: key_file of the node config',
    )
    .option('--node <file>', 'node config')
    .option('--name <name>', 'a display name for status pages')
    .option('--json', 'print one JSON line per event instead of the terminal view')
    .option(
      '--health-port <port>',
      'serve GET /healthz with the miner state on this port',
      positiveInt('--health-port'),
    )
    .option(
      '--max-samples <n>',
      'stop after this many samples of backward work',
      positiveInt('--max-samples'),
    )
    .option(
      '--max-epochs <n>',
      'stop after this many epochs have been merged',
      positiveInt('--max-epochs'),
    )
    .option(
      '--preflight',
      'first check that this machine keeps up in the run (as iota doctor --orchestrator does); ' +
        'on by default on a terminal',
    )
    .option('--no-preflight', 'skip that check')
    .option(
      '--recompute',
      "recompute each backward's forward instead of keeping the forward's activations until " +
        'its backward comes (less memory: about 95 MB per item held for small, batch 4; ' +
        'more compute)',
    );
  addBackendOption(cmd).action(async (o: MinerFlags & { stage?: string }) => {
    const node = loadNodeConfig(o.node, { env: process.env });
    const orchestrator = o.orchestrator ?? node.orchestrator_url;
    if (!orchestrator)
      throw new IotaError(
        'E_NO_ORCHESTRATOR',
        'no orchestrator URL',
        'pass --orchestrator URL or set orchestrator_url in the node config',
      );
    const keyFile = o.key ?? node.key_file;
    if (!keyFile)
      throw new IotaError(
        'E_NO_KEY',
        'no key file',
        'create one with: iota keys new --out miner.key, then pass --key miner.key',
      );
    const layerText = o.stage ?? o.layer;
    const layer = layerText === 'auto' ? ('auto' as const) : Number(layerText);
    if (layer !== 'auto' && (!Number.isSafeInteger(layer) || layer < 0))
      throw new IotaError('E_BAD_FLAG', `--layer ${layerText}: expected 'auto' or a stage number`);
    if (o.threads) process.env.IOTA_THREADS = String(o.threads);
    const identity = readKeyFile(keyFile); // a bad key fails here, before anything is shown

    // The first thing: can this machine keep up in this run, and where would it help most?
    if (o.preflight ?? !o.json) {
      const check = o.json
        ? undefined
        : ora({ text: 'checking this machine against the run…', discardStdin: false }).start();
      await useBackend(o.backend, true);
      const p = await preflight(orchestrator.replace(/\/$/, ''), {
        key: keyFile,
        backend: o.backend,
        log: (s) => check && (check.text = s),
      });
      if (o.json) printJson({ event: 'preflight', ...p, at: Date.now() });
      else if (p.verdict.keeps_up) check!.succeed(p.verdict.text);
      else check!.warn(`${p.verdict.text} It joins all the same; its work may lapse.`);
    }
    const spinner = o.json ? undefined : ora({ text: 'joining…', discardStdin: false }).start();
    const started = Date.now();
    // Events may come while the Miner is being built: the view renders once it exists.
    const built: { miner?: Miner } = {};
    const render = () => {
      const miner = built.miner!;
      const s = miner.stats;
      const secs = Math.max(1, (Date.now() - started) / 1000);
      const parts = [
        chalk.bold(`stage ${miner.stage}`),
        `epoch ${miner.epoch} ${s.phase}`,
        `fwd ${(s.fwd / secs).toFixed(1)}/s bwd ${((s.bwd + s.tail) / secs).toFixed(1)}/s`,
        Number.isFinite(s.lastLoss) ? `loss ${s.lastLoss.toFixed(3)}` : '',
        `in ${(s.bytesIn / 2 ** 20).toFixed(1)} MB out ${(s.bytesOut / 2 ** 20).toFixed(1)} MB`,
        s.idle ? chalk.dim(`idle: ${s.idle}`) : '',
      ];
      spinner!.text = parts.filter(Boolean).join('  ');
    };
    const onEvent = (e: MinerEvent) => {
      if (o.json) {
        printJson({ ...e, at: Date.now() });
        return;
      }
      if (e.event === 'joined')
        spinner!
          .info(
            `joined run ${e.run} at stage ${e.stage} of ${e.stages} (epoch ${e.epoch}, backend ${e.backend})`,
          )
          .start();
      else if (e.event === 'upload')
        spinner!
          .info(
            `epoch ${e.epoch}: uploaded the gradient sum of ${e.samples} samples (${e.bytes} bytes)`,
          )
          .start();
      else if (e.event === 'weights' && Number(e.step) > 0)
        spinner!.info(`epoch ${e.epoch}: loaded the weights of step ${e.step}`).start();
      else if (e.event === 'refused' || e.event === 'warning')
        spinner!.warn(`${e.code ?? ''} ${e.message}`).start();
      if (built.miner) render();
    };
    const miner = new Miner({
      orchestrator,
      identity,
      layer,
      backend: o.backend,
      version: pkg.version,
      name: o.name,
      maxSamples: o.maxSamples,
      maxEpochs: o.maxEpochs,
      recompute: o.recompute,
      onEvent,
    });
    built.miner = miner;

    let health: ReturnType<typeof createServer> | undefined;
    if (o.healthPort) {
      health = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ ok: true, stage: miner.stage, epoch: miner.epoch, ...miner.stats }),
        );
      }).listen(o.healthPort, '127.0.0.1');
    }
    // The terminal view says where the miner stands (probation, quarantine, late uploads,
    // share) whenever that changes, from the public routes, every 15 s.
    let standing = '';
    const standingTimer = o.json
      ? undefined
      : setInterval(() => {
          minerStanding(orchestrator.replace(/\/$/, ''), identity.id)
            .then((m) => {
              const text = m.why.filter((w) => !/^(Idle|This epoch)/.test(w)).join(' ');
              if (text && text !== standing) spinner!.info((standing = text)).start();
            })
            .catch(() => {}); // the view goes on; the miner's own calls report real trouble
        }, 15_000);
    let signals = 0;
    const onSignal = (sig: string) => {
      signals++;
      if (signals > 1) process.exit(130);
      if (spinner)
        spinner.info(`${sig}: finishing the items in flight (again to quit at once)`).start();
      else note(`${sig}: finishing the items in flight`);
      miner.stop();
    };
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    try {
      await miner.run();
      spinner?.succeed(
        `stopped: ${miner.stats.samples} samples, ${miner.stats.epochsDone} epochs merged`,
      );
    } catch (e) {
      spinner?.fail('the miner stopped on an error');
      throw e;
    } finally {
      clearInterval(standingTimer);
      health?.close();
    }
  });
}
