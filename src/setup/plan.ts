/**
 * What `iota setup` writes, from the answers: the node config of a miner or validator, or the
 * node and run configs of an orchestrator, and the command that starts the role. Pure, apart
 * from `writePlan`, which writes every file at the end (nothing is written before).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { PACKAGE_ROOT, shippedModelFile, shippedRun } from '../config/shipped.js';
import { IotaError } from '../errors.js';

export const ROLES = ['miner', 'validator', 'orchestrator'] as const;
export type Role = (typeof ROLES)[number];

export interface ParticipantAnswers {
  role: 'miner' | 'validator';
  orchestrator: string;
  key: string;
  /** miners only */
  stage: string;
  backend: string;
  threads: number;
  out: string;
}

export interface S3Answers {
  endpoint?: string;
  bucket: string;
  region: string;
  prefix: string;
  forcePathStyle: boolean;
}

export interface OrchestratorAnswers {
  role: 'orchestrator';
  model: string;
  samplesPerEpoch: number;
  corpus: string;
  host: string;
  port: number;
  publicUrl: string;
  store: 'local' | 's3';
  s3?: S3Answers;
  validators: string[];
  out: string;
}

export type Answers = ParticipantAnswers | OrchestratorAnswers;

export interface Plan {
  files: Array<{ path: string; text: string }>;
  command: string;
  /** lines to show beside the command (a validator's key id to allow-list) */
  notes: string[];
}

const header = '# written by iota setup\n';

export function planFor(a: Answers, keyId?: string): Plan {
  const bin = join(PACKAGE_ROOT, 'bin', 'iota');
  if (a.role === 'orchestrator') {
    const dir = resolve(a.out);
    const run = shippedRun(a.model);
    run.model = shippedModelFile(a.model);
    run.samples_per_epoch = a.samplesPerEpoch;
    run.data = {
      ...run.data,
      corpus: a.corpus === 'demo' ? 'demo' : resolve(a.corpus),
    };
    const storage =
      a.store === 's3' && a.s3
        ? {
            kind: 's3',
            bucket: a.s3.bucket,
            region: a.s3.region,
            ...(a.s3.endpoint ? { endpoint: a.s3.endpoint } : {}),
            ...(a.s3.prefix ? { prefix: a.s3.prefix } : {}),
            force_path_style: a.s3.forcePathStyle,
          }
        : { kind: 'local' };
    const node = {
      host: a.host,
      port: a.port,
      orchestrator_url: a.publicUrl,
      state_dir: join(dir, 'state'),
      storage,
      validators: a.validators,
      admins: [],
    };
    return {
      files: [
        { path: join(dir, 'node.yaml'), text: header + stringify(node) },
        { path: join(dir, 'run.yaml'), text: header + stringify(run) },
      ],
      command: `${bin} orchestrator serve --run ${join(dir, 'run.yaml')} --node ${join(dir, 'node.yaml')}`,
      notes: [
        `miners join with: ${bin} miner --layer auto --orchestrator ${a.publicUrl} --key FILE`,
        `the dashboard: ${a.publicUrl}/dashboard`,
      ],
    };
  }
  const out = resolve(a.out);
  const node = { orchestrator_url: a.orchestrator, key_file: resolve(a.key) };
  const flags = `--backend ${a.backend} --threads ${a.threads}`;
  return {
    files: [{ path: out, text: header + stringify(node) }],
    command:
      a.role === 'miner'
        ? `${bin} miner --node ${out} --layer ${a.stage} ${flags}`
        : `${bin} validator --node ${out} ${flags}`,
    notes:
      a.role === 'validator' && keyId
        ? [
            `your key id: ${keyId}: the orchestrator's operator must list it under validators ` +
              `(or start it with --validator ${keyId})`,
          ]
        : [],
  };
}

/** Writes every file of the plan; refuses to overwrite one that holds something else. */
export function writePlan(plan: Plan, overwrite: boolean): void {
  for (const f of plan.files)
    if (existsSync(f.path) && !overwrite && readFileSync(f.path, 'utf8') !== f.text)
      throw new IotaError(
        'E_FILE_EXISTS',
        `${f.path} exists and holds something else`,
        'choose another --out, or pass --force to replace it',
      );
  for (const f of plan.files) {
    mkdirSync(dirname(f.path), { recursive: true });
    writeFileSync(f.path, f.text);
  }
}
