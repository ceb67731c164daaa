/** `iota validator` and `iota scores`: replay miners' work, and read the incentive weights. */
import { createRequire } from 'node:module';
import type { Command } from 'commander';
import chalk from 'chalk';
import ora from 'ora';
import { loadNodeConfig } from '../config/index.js';
import { IotaError } from '../errors.js';
import { readKeyFile } from '../protocol/keys.js';
import type { ScoresReply } from '../protocol/swarm-messages.js';
import { Validator } from '../validator/validator.js';
import { addBackendOption, getPublic, orchestratorBase, positiveInt } from './common.js';
import { note, printJson } from './output.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

export function registerValidator(program: Command): void {
  const cmd = program
    .command('validator')
    .description(
      'replay a sample of the miners’ work from the same inputs and weights, and report verdicts',
    )
    .option(
      '--orchestrator <url>',
      'orchestrator URL (default: orchestrator_url of the node config)',
    )
    .option(
      '--key <file>',
      'a validator key file (its id must be listed under validators in the orchestrator’s node config)',
    )
    .option('--node <file>', 'node config')
    .option('--json', 'print one JSON line per event')
    .option('--max-tasks <n>', 'stop after this many verdicts', positiveInt('--max-tasks'));
  addBackendOption(cmd).action(
    async (o: {
      orchestrator?: string;
      key?: string;
      node?: string;
      json?: boolean;
      maxTasks?: number;
      backend: string;
    }) => {
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
          'create one with: iota keys new --out validator.key, and have the operator list its id',
        );
      const spinner = o.json ? undefined : ora({ text: 'starting…', discardStdin: false }).start();
      const v = new Validator({
        orchestrator,
        identity: readKeyFile(keyFile),
        backend: o.backend,
        version: pkg.version,
        maxTasks: o.maxTasks,
        onEvent: (e) => {
          if (o.json) return printJson({ ...e, at: Date.now() });
          if (e.event === 'verdict' && e.passed === false)
            spinner!
              .warn(
                `${String(e.miner).slice(0, 12)} failed: ${e.kind} at stage ${e.stage}, epoch ${e.epoch}: ${e.detail}`,
              )
              .start();
          spinner!.text =
            `checked ${v.stats.checked}: ${chalk.green(`${v.stats.passed} passed`)}, ` +
            `${chalk.red(`${v.stats.failed} failed`)}, ${v.stats.abstained} abstained`;
        },
      });
      let signals = 0;
      const onSignal = () => {
        if (++signals > 1) process.exit(130);
        note('stopping after the current task');
        v.stop();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      await v.runLoop();
      spinner?.succeed(`stopped: ${v.stats.checked} verdicts (${v.stats.failed} failed)`);
    },
  );

  program
    .command('scores')
    .description(
      'verified work, penalties, scores and incentive weights of a run (JSON for a chain or payout script with --json)',
    )
    .option(
      '--orchestrator <url>',
      'orchestrator URL (default: orchestrator_url of the node config, else http://127.0.0.1:<port>)',
    )
    .option('--node <file>', 'node config')
    .option('--json', 'print the scores object as JSON')
    .action(async (o: { orchestrator?: string; node?: string; json?: boolean }) => {
      const s = await getPublic<ScoresReply>(
        orchestratorBase(o.orchestrator, o.node),
        '/v1/scores',
      );
      if (o.json) return printJson(s);
      console.log(chalk.bold(`scores over epochs ${s.epoch_from} and later`));
      for (const r of s.scores) {
        console.log(
          `  ${r.miner.slice(0, 12)}  weight ${(100 * r.weight).toFixed(2)}%  score ` +
            `${r.score.toExponential(3)}  work ${r.work_flops.toExponential(3)} FLOPs  ` +
            `failures ${r.failures}${r.probation ? chalk.yellow('  on probation') : ''}`,
        );
      }
      if (s.burn) console.log(`  burn: ${(100 * s.burn.weight).toFixed(2)}% to ${s.burn.owner}`);
    });
}
