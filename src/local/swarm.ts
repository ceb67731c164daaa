/**
 * `iota local`'s swarm: an orchestrator, S stages x M miners and V validators as child processes
 * of this one, on the embedded defaults (SQLite and the local object store under the state
 * folder, the bundled corpus). The state folder holds everything of the run: its configs
 * (written once; a later start with other settings is refused), keys, database, store and each
 * child's log; starting again resumes the run. Readiness comes from the children's events and
 * the orchestrator's status, never from waiting a fixed time.
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { loadRunConfig, type LoadedRun } from '../config/index.js';
import { SHIPPED_MODELS, shippedModelFile, shippedRun } from '../config/shipped.js';
import { IotaError } from '../errors.js';
import { newIdentity, readKeyFile, writeKeyFile } from '../protocol/keys.js';
import type { ScoresReply, SwarmStatus } from '../protocol/swarm-messages.js';
import { Child } from './child.js';

export { SHIPPED_MODELS };

export interface LocalOptions {
  /** a shipped model (`tiny`, `small`) or a model config file (trained with small's run settings) */
  model: string;
  /** train until every stage has merged this many epochs */
  epochs: number;
  samplesPerEpoch?: number;
  minersPerStage: number;
  validators: number;
  backend: string;
  stateDir?: string;
  port: number;
}

/** What the view shows: the newest status and the swarm's notable events. */
export interface SwarmListener {
  status(s: SwarmStatus): void;
  notable(text: string, level?: 'info' | 'warn'): void;
  /** each verdict a validator issued (passed: false for a failed check, null if it abstained) */
  verdict(passed: boolean | null): void;
}

/** The run's files in the state folder, written on its first start and checked on later ones. */
export function prepareStateDir(o: LocalOptions): { dir: string; loaded: LoadedRun } {
  const shipped = (SHIPPED_MODELS as readonly string[]).includes(o.model);
  const modelFile = shipped ? shippedModelFile(o.model) : resolve(o.model);
  if (!existsSync(modelFile))
    throw new IotaError(
      'E_NO_MODEL',
      `no model config ${o.model}`,
      `pass ${SHIPPED_MODELS.join(' or ')}, or the path of a model config file`,
    );
  // The package's data folder, whatever the working folder: the corpus is tokenized once.
  const run = shippedRun(o.model === 'tiny' ? 'tiny' : 'small');
  if (!shipped) run.name = `local-${modelFile.replace(/.*\//, '').replace(/\.ya?ml$/, '')}`;
  if (o.samplesPerEpoch !== undefined) {
    run.samples_per_epoch = o.samplesPerEpoch;
    run.name = `${run.name}-s${o.samplesPerEpoch}`;
  }
  run.model = 'model.yaml';
  const dir = resolve(o.stateDir ?? join('.iota', 'local', run.name));
  mkdirSync(join(dir, 'logs'), { recursive: true });
  mkdirSync(join(dir, 'keys'), { recursive: true });
  const text = `# written by iota local; the run refuses to resume under other settings\n${stringify(run)}`;
  const runFile = join(dir, 'run.yaml');
  const modelText = readFileSync(modelFile, 'utf8');
  if (existsSync(runFile)) {
    const same =
      readFileSync(runFile, 'utf8') === text &&
      readFileSync(join(dir, 'model.yaml'), 'utf8') === modelText;
    if (!same)
      throw new IotaError(
        'E_RUN_CHANGED',
        `${dir} holds a run with other settings (model or samples per epoch)`,
        'start it with the settings it was created with, or pass another --state-dir',
      );
  } else {
    copyFileSync(modelFile, join(dir, 'model.yaml'));
    writeFileSync(runFile, text);
  }
  return { dir, loaded: loadRunConfig(runFile) };
}

/** The names of the state folder's keys (`miner-s0-1`), by key id. */
export function keyNames(dir: string): Map<string, string> {
  const keys = join(dir, 'keys');
  if (!existsSync(keys)) return new Map();
  return new Map(
    readdirSync(keys)
      .filter((f) => f.endsWith('.key'))
      .map((f) => [readKeyFile(join(keys, f)).id, f.replace(/\.key$/, '')]),
  );
}

/** A key file in the state folder, made on first use. */
function keyFile(dir: string, name: string): { file: string; id: string } {
  const file = join(dir, 'keys', `${name}.key`);
  if (!existsSync(file)) writeKeyFile(file, newIdentity());
  return { file, id: readKeyFile(file).id };
}

export class LocalSwarm {
  readonly dir: string;
  readonly loaded: LoadedRun;
  url = '';
  private orchestrator?: Child;
  private workers: Array<Child & { stage?: number }> = [];
  private failure?: IotaError;
  private wake: () => void = () => {};

  constructor(
    readonly o: LocalOptions,
    prepared: { dir: string; loaded: LoadedRun },
    private readonly listener: SwarmListener,
  ) {
    this.dir = prepared.dir;
    this.loaded = prepared.loaded;
  }

  get stages(): number {
    return this.loaded.model.stages.length;
  }

  get logs(): string {
    return join(this.dir, 'logs');
  }

  /** Compute processes sharing this host's cores: every miner and validator. */
  private env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      IOTA_PROCESSES: String(this.stages * this.o.minersPerStage + this.o.validators),
      // Large tensors on huge pages: 20-30% faster on the big models (docs/performance.md).
      GLIBC_TUNABLES: process.env.GLIBC_TUNABLES ?? 'glibc.malloc.hugetlb=1',
    };
  }

  /** Starts the orchestrator and waits until it listens; returns its URL. */
  async startOrchestrator(): Promise<string> {
    const validators = Array.from({ length: this.o.validators }, (_, j) =>
      keyFile(this.dir, `validator-${j}`),
    );
    const node = join(this.dir, 'node.yaml');
    writeFileSync(
      node,
      stringify({
        host: '127.0.0.1',
        port: this.o.port,
        state_dir: this.dir,
        validators: validators.map((v) => v.id),
      }),
    );
    let listening: (url: string) => void = () => {};
    const ready = new Promise<string>((r) => (listening = r));
    const orch = new Child({
      name: 'orchestrator',
      args: [
        'orchestrator',
        'serve',
        '--run',
        join(this.dir, 'run.yaml'),
        '--node',
        node,
        '--json',
      ],
      log: join(this.logs, 'orchestrator.log'),
      env: this.env(),
      onEvent: (e) => {
        if (e.event === 'listening') listening(String(e.url));
        // Until it listens, what it does (tokenizing the corpus on a first start) is news.
        else if (e.event === 'log' && !this.url)
          this.listener.notable(`orchestrator: ${String(e.message)}`);
      },
    });
    this.orchestrator = orch;
    const exited = orch.exited.then(() => {
      throw this.childFailed(orch);
    });
    this.url = await Promise.race([ready, exited]);
    void exited.catch((e: IotaError) => this.fail(e));
    return this.url;
  }

  /** Starts the miners (M per stage, each pinned to its stage) and the validators. */
  startWorkers(): void {
    const common = ['--orchestrator', this.url, '--json', '--backend', this.o.backend];
    for (let s = 0; s < this.stages; s++)
      for (let i = 0; i < this.o.minersPerStage; i++) {
        const name = `miner-s${s}-${i}`;
        this.spawnWorker(name, s, ['miner', '--layer', String(s), '--name', name, ...common]);
      }
    for (let j = 0; j < this.o.validators; j++)
      this.spawnWorker(`validator-${j}`, undefined, ['validator', ...common]);
  }

  private spawnWorker(name: string, stage: number | undefined, args: string[]): void {
    const key = keyFile(this.dir, name);
    const child: Child & { stage?: number } = new Child({
      name,
      args: [...args, '--key', key.file],
      log: join(this.logs, `${name}.log`),
      env: this.env(),
      onEvent: (e) => {
        if (e.event === 'joined')
          this.listener.notable(`${name} joined stage ${String(e.stage)} (${String(e.backend)})`);
        else if (e.event === 'verdict') {
          const passed = e.abstained ? null : Boolean(e.passed);
          this.listener.verdict(passed);
          if (passed === false)
            this.listener.notable(
              `verdict FAILED: ${String(e.kind)} of miner ${String(e.miner).slice(0, 12)} ` +
                `(stage ${String(e.stage)}, epoch ${String(e.epoch)})`,
              'warn',
            );
        }
      },
    });
    child.stage = stage;
    this.workers.push(child);
    void child.exited.then(({ code, signal }) => {
      if (child.stopping) return;
      this.listener.notable(
        `${name} exited (${signal ?? `code ${code}`}); its log (${child.log}) ends:\n${child.tail()}`,
        'warn',
      );
      if (stage !== undefined && !this.workers.some((w) => w.stage === stage && w.running))
        this.fail(
          new IotaError(
            'E_STAGE_EMPTY',
            `every miner of stage ${stage} exited; the swarm cannot go on`,
            `see the logs in ${this.logs}`,
          ),
        );
    });
  }

  private childFailed(c: Child): IotaError {
    return new IotaError(
      'E_CHILD_FAILED',
      `the ${c.name} exited; its log (${c.log}) ends:\n${c.tail()}`,
      `fix what the log says, then run the same command again: the run resumes from ${this.dir}`,
    );
  }

  private fail(e: IotaError): void {
    if (this.orchestrator?.stopping) return;
    this.failure ??= e;
    this.wake();
  }

  async status(ledgerFrom?: number): Promise<SwarmStatus> {
    return this.get<SwarmStatus>(
      `/v1/swarm${ledgerFrom === undefined ? '' : `?ledger_from=${ledgerFrom}`}`,
    );
  }

  async scores(): Promise<ScoresReply> {
    return this.get<ScoresReply>('/v1/scores');
  }

  private async get<T>(path: string): Promise<T> {
    const r = await request(`${this.url}${path}`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
    if (r.statusCode !== 200) {
      await r.body.dump();
      throw new IotaError('E_HTTP', `GET ${path}: HTTP ${r.statusCode}`);
    }
    return (await r.body.json()) as T;
  }

  /**
   * Polls the status until every stage has merged `epochs` epochs (true), or `interrupted`
   * resolves first (false); a failed child ends it with that child's error.
   */
  async watch(interrupted: Promise<void>, everyMs = 500): Promise<boolean> {
    let stop = false;
    void interrupted.then(() => {
      stop = true;
      this.wake();
    });
    const seen = new Map<number, number>();
    while (!stop) {
      if (this.failure) throw this.failure;
      let st: SwarmStatus | undefined;
      try {
        st = await this.status();
      } catch (e) {
        if (this.failure) throw this.failure;
        this.listener.notable(`status unavailable: ${(e as Error).message}`, 'warn');
      }
      if (st) {
        for (const s of st.stages) {
          const before = seen.get(s.stage);
          if (before !== undefined && s.manifest.epoch > before)
            this.listener.notable(
              `stage ${s.stage} published the weights of epoch ${s.manifest.epoch} (step ${s.manifest.step})`,
            );
          seen.set(s.stage, s.manifest.epoch);
        }
        this.listener.status(st);
        if (st.stages.every((s) => s.manifest.epoch >= this.o.epochs)) return true;
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, everyMs);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    if (this.failure) throw this.failure;
    return false;
  }

  /**
   * Stops the miners and validators (they finish or release their leases), then the
   * orchestrator; a child that takes longer than its grace period is killed.
   */
  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop(20_000)));
    await this.orchestrator?.stop(15_000);
  }

  /** Every child at once, without waiting (the second Ctrl-C). */
  kill(): void {
    for (const c of [...this.workers, this.orchestrator]) {
      if (!c) continue;
      c.stopping = true;
      c.signal('SIGKILL');
    }
  }
}
