/**
 * `iota setup`: a guided start for a miner, a validator or an orchestrator. Each question has a
 * flag; `--yes` takes the defaults of the questions no flag answered, so the same command runs
 * in scripts. An invalid answer is asked again with the reason (a flag's is an error); nothing
 * is written until every answer is in.
 */
import { existsSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import type { Command } from 'commander';
import chalk from 'chalk';
import { loadModelConfig } from '../config/index.js';
import { shippedModelFile, shippedRun } from '../config/shipped.js';
import { stageParamCount, stageSpecs } from '../config/model.js';
import { IotaError } from '../errors.js';
import { BACKENDS } from '../kernels/backends.js';
import { newIdentity, readKeyFile, writeKeyFile } from '../protocol/keys.js';
import { checkOrchestrator, checkStore } from '../setup/checks.js';
import { planFor, ROLES, writePlan, type Answers, type S3Answers } from '../setup/plan.js';
import { collect } from './common.js';
import { note, printJson } from './output.js';

type Flags = Record<string, string | string[] | boolean | undefined>;
type Check = (v: string) => string | undefined | Promise<string | undefined>;

interface Question {
  flag: string;
  message: string;
  default?: string;
  choices?: Array<{ value: string; name?: string }>;
  /** the reason an answer is refused, or undefined */
  check?: Check;
}

/** Asks one question: from its flag, else its default under --yes, else at the prompt. */
class Asker {
  constructor(
    private readonly flags: Flags,
    private readonly yes: boolean,
  ) {}

  /** Whether these questions are asked at the prompt (no flag, no --yes). */
  prompts(...flags: string[]): boolean {
    return !this.yes && flags.every((f) => this.flags[camel(f)] === undefined);
  }

  async ask(q: Question): Promise<string> {
    const given = this.flags[camel(q.flag)];
    const check: Check = async (v) =>
      q.choices && !q.choices.some((c) => c.value === v)
        ? `choose one of ${q.choices.map((c) => c.value).join(', ')}`
        : q.check?.(v);
    if (typeof given === 'string' || (this.yes && q.default !== undefined)) {
      const v = typeof given === 'string' ? given : q.default!;
      const why = await check(v);
      if (why) throw new IotaError('E_BAD_FLAG', `--${q.flag} ${v}: ${why}`);
      return v;
    }
    if (!process.stdin.isTTY)
      throw new IotaError(
        'E_NOT_INTERACTIVE',
        `no answer for --${q.flag} and no terminal to ask on`,
        'answer with flags, and add --yes to take the defaults of the rest',
      );
    const prompts = await import('@inquirer/prompts');
    if (q.choices)
      return prompts.select({ message: q.message, choices: q.choices, default: q.default });
    return prompts
      .input({
        message: q.message,
        default: q.default,
        validate: async (v) => (await check(v.trim())) ?? true,
      })
      .then((v) => v.trim());
  }
}

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const positive = (v: string) =>
  Number.isSafeInteger(Number(v)) && Number(v) > 0 ? undefined : 'expected a whole number > 0';
const keyIds = (v: string) =>
  v === '' || v.split(',').every((id) => /^[A-Za-z0-9_-]{8,}$/.test(id.trim()))
    ? undefined
    : 'expected key ids (what `iota keys show FILE` prints), separated by commas';

function modelChoice(name: string): { value: string; name: string } {
  const m = loadModelConfig(shippedModelFile(name));
  const params = stageSpecs(m).reduce((a, s) => a + stageParamCount(m, s), 0);
  return {
    value: name,
    name: `${name}: ${(params / 1e6).toFixed(2)} M parameters, ${m.tokenizer} tokens`,
  };
}

async function participant(a: Asker, role: 'miner' | 'validator'): Promise<Answers> {
  let serves = '';
  const orchestrator = await a.ask({
    flag: 'orchestrator',
    message: 'Orchestrator URL',
    default: 'http://127.0.0.1:4100',
    check: async (v) => {
      try {
        serves = await checkOrchestrator(v);
        return undefined;
      } catch (e) {
        return (e as Error).message;
      }
    },
  });
  note(`  ${orchestrator}: ${serves}`);
  const key = await a.ask({
    flag: 'key',
    message: 'Key file (made if missing, never overwritten)',
    default: `${role}.key`,
    check: (v) => {
      if (!existsSync(v)) return undefined;
      try {
        readKeyFile(v);
        return undefined;
      } catch (e) {
        return `${v} exists but is not a usable key: ${(e as Error).message}`;
      }
    },
  });
  const stage =
    role === 'miner'
      ? await a.ask({
          flag: 'stage',
          message: "Stage to train ('auto' joins the one that needs miners most)",
          default: 'auto',
          check: (v) =>
            v === 'auto' || /^\d{1,4}$/.test(v) ? undefined : "expected 'auto' or a stage number",
        })
      : 'auto';
  const backend = await a.ask({
    flag: 'backend',
    message: 'Compute backend (`iota doctor` measures them)',
    default: 'auto',
    choices: ['auto', ...BACKENDS].map((value) => ({ value })),
  });
  const threads = await a.ask({
    flag: 'threads',
    message: 'Threads for its kernels',
    default: String(availableParallelism()),
    check: positive,
  });
  const out = await a.ask({
    flag: 'out',
    message: 'Node config to write',
    default: `${role}.node.yaml`,
  });
  return {
    role,
    orchestrator: orchestrator.replace(/\/$/, ''),
    key,
    stage,
    backend,
    threads: Number(threads),
    out,
  };
}

async function orchestrator(a: Asker): Promise<Answers> {
  const model = await a.ask({
    flag: 'model',
    message: 'Model',
    default: 'tiny',
    choices: ['tiny', 'small'].map(modelChoice),
  });
  const samples = await a.ask({
    flag: 'samples-per-epoch',
    message: 'Samples per epoch (one optimizer step)',
    default: String(shippedRun(model).samples_per_epoch),
    check: positive,
  });
  const corpus = await a.ask({
    flag: 'corpus',
    message: "Corpus ('demo': the bundled one, or a folder of .txt files)",
    default: 'demo',
    check: (v) => (v === 'demo' || existsSync(v) ? undefined : `no folder ${v}`),
  });
  const host = await a.ask({ flag: 'host', message: 'Address to listen on', default: '0.0.0.0' });
  const port = await a.ask({
    flag: 'port',
    message: 'Port',
    default: '4100',
    check: (v) =>
      Number(v) >= 1 && Number(v) <= 65535 && Number.isInteger(Number(v))
        ? undefined
        : 'expected 1 to 65535',
  });
  const publicUrl = await a.ask({
    flag: 'public-url',
    message: 'URL the miners reach it at',
    default: `http://${hostname()}:${port}`,
    check: (v) => (/^https?:\/\/[^/\s]+\/?$/.test(v) ? undefined : 'expected http(s)://HOST:PORT'),
  });
  const store = await a.ask({
    flag: 'store',
    message: 'Object store',
    default: 'local',
    choices: [
      { value: 'local', name: 'local: files under the state folder, served by the orchestrator' },
      {
        value: 's3',
        name: 's3: an S3-compatible bucket (AWS, R2, MinIO), credentials from the environment',
      },
    ],
  });
  let s3: S3Answers | undefined;
  if (store === 's3') s3 = await s3Answers(a);
  const validators = await a.ask({
    flag: 'validators',
    message: 'Validator key ids, separated by commas (may be empty)',
    default: '',
    check: keyIds,
  });
  const out = await a.ask({
    flag: 'out',
    message: 'Folder for its configs',
    default: 'orchestrator',
  });
  return {
    role: 'orchestrator',
    model,
    samplesPerEpoch: Number(samples),
    corpus,
    host,
    port: Number(port),
    publicUrl: publicUrl.replace(/\/$/, ''),
    store: store as 'local' | 's3',
    ...(s3 ? { s3 } : {}),
    validators: validators ? validators.split(',').map((v) => v.trim()) : [],
    out,
  };
}

/** The bucket's settings, checked with a scratch write, read and delete; asked again if it fails. */
async function s3Answers(a: Asker): Promise<S3Answers> {
  for (;;) {
    const endpoint = await a.ask({
      flag: 's3-endpoint',
      message: 'S3 endpoint (empty: AWS)',
      default: '',
    });
    const s3: S3Answers = {
      endpoint: endpoint || undefined,
      bucket: await a.ask({
        flag: 's3-bucket',
        message: 'Bucket',
        check: (v) => (v.length >= 3 ? undefined : 'expected a bucket name'),
      }),
      region: await a.ask({ flag: 's3-region', message: 'Region', default: 'us-east-1' }),
      prefix: await a.ask({ flag: 's3-prefix', message: 'Key prefix (may be empty)', default: '' }),
      forcePathStyle: Boolean(endpoint),
    };
    try {
      await checkStore(s3);
      note('  the store took a scratch write, read and delete');
      return s3;
    } catch (e) {
      const why = `the store check failed: ${(e as Error).message}`;
      // Answers typed at the prompt are asked again; flags' answers would only fail again.
      if (!a.prompts('s3-endpoint', 's3-bucket', 's3-region', 's3-prefix'))
        throw new IotaError(
          'E_STORE_CHECK',
          why,
          'check the endpoint, bucket, region and AWS_* credentials',
        );
      note(`  ${why}`);
    }
  }
}

export function registerSetup(program: Command): void {
  const cmd = program
    .command('setup')
    .description(
      'a guided start for a miner, validator or orchestrator: asks, checks, writes its config',
    )
    .option('--role <role>', ROLES.join(', '))
    .option('--orchestrator <url>', 'miner, validator: the orchestrator (checked at once)')
    .option(
      '--key <file>',
      'miner, validator: key file, made if missing (mode 0600, never overwritten)',
    )
    .option('--stage <auto|N>', 'miner: the stage to train')
    .option('--backend <name>', `miner, validator: auto, ${BACKENDS.join(', ')}`)
    .option('--threads <n>', 'miner, validator: threads of its kernels')
    .option('--model <name>', 'orchestrator: tiny or small')
    .option('--samples-per-epoch <n>', 'orchestrator: samples per optimizer step')
    .option('--corpus <demo|dir>', 'orchestrator: the bundled corpus or a folder of .txt files')
    .option('--host <addr>', 'orchestrator: address to listen on')
    .option('--port <n>', 'orchestrator: port')
    .option('--public-url <url>', 'orchestrator: the URL miners reach it at')
    .option('--store <local|s3>', 'orchestrator: object store')
    .option('--s3-endpoint <url>', 'orchestrator: S3-compatible endpoint (empty: AWS)')
    .option('--s3-bucket <name>', 'orchestrator: bucket')
    .option('--s3-region <name>', 'orchestrator: region')
    .option('--s3-prefix <prefix>', 'orchestrator: key prefix in the bucket')
    .option('--validators <ids>', 'orchestrator: validator key ids, separated by commas')
    .option('--validator <id>', 'orchestrator: one validator key id (repeatable)', collect, [])
    .option('--out <path>', 'where to write: a node config file, or a folder for an orchestrator')
    .option('--yes', 'take the default of every question no flag answers')
    .option('--force', 'replace files that exist')
    .option('--json', 'print what was written and the command as one JSON object');
  cmd.action(
    async (o: Flags & { validator: string[]; yes?: boolean; force?: boolean; json?: boolean }) => {
      if (o.validator.length && !o.validators) o.validators = o.validator.join(',');
      const a = new Asker(o, Boolean(o.yes));
      const role = (await a.ask({
        flag: 'role',
        message: 'What will this machine be?',
        default: 'miner',
        choices: [
          { value: 'miner', name: 'miner: trains a stage of the model' },
          {
            value: 'validator',
            name: 'validator: replays miners’ work (its key must be allow-listed)',
          },
          {
            value: 'orchestrator',
            name: 'orchestrator: hosts a run (the database and the object store)',
          },
        ],
      })) as (typeof ROLES)[number];
      const answers = role === 'orchestrator' ? await orchestrator(a) : await participant(a, role);
      // Every answer is in: now, and only now, write.
      let keyId: string | undefined;
      if (answers.role !== 'orchestrator') {
        if (!existsSync(answers.key)) writeKeyFile(answers.key, newIdentity());
        keyId = readKeyFile(answers.key).id;
      }
      const plan = planFor(answers, keyId);
      writePlan(plan, Boolean(o.force));
      if (o.json) {
        printJson({
          role,
          files: plan.files.map((f) => f.path),
          command: plan.command,
          notes: plan.notes,
        });
        return;
      }
      for (const f of plan.files)
        console.log(`${chalk.bold(`wrote ${f.path}`)}\n${chalk.dim(f.text.trimEnd())}\n`);
      for (const n of plan.notes) console.log(n);
      console.log(`${chalk.bold('start it with:')}\n  ${plan.command}`);
    },
  );
}
