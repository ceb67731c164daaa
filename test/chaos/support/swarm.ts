/**
 * A real swarm for the chaos scenarios: an orchestrator (local store, tiny model, byte
 * tokenizer) and S stages x M miners as `iota` processes on loopback, with the faults a scenario
 * asks for: miners SIGKILLed and replaced on a schedule (churn), the fault proxy in front of the
 * store (its URLs point at the proxy; the orchestrator's API is reached directly). It runs until
 * every stage has merged `epochs` epochs, then reads what the run kept: the ledger, the
 * manifests, the replicas' hashes. Progress is read from the processes' events, never waited
 * for by time; only the faults are on a clock.
 */
import Database from 'better-sqlite3';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newIdentity, writeKeyFile } from '../../../src/protocol/keys.js';
import { IotaProcess, serveArgs } from '../../support/cli.js';
import { relErr } from '../../support/model.js';
import { localObjectFile, storedWeights, subsetWeights } from '../../support/oracle.js';
import { rng } from '../../support/rng.js';
import { startS3rver } from '../../support/s3rver.js';
import { writeRun } from '../../support/run-files.js';
import { FaultProxy, type Fault, type FaultProxyOptions } from './fault-proxy.js';

export interface ChaosOptions {
  name: string;
  epochs: number;
  samplesPerEpoch: number;
  minersPerStage?: number;
  /** SIGKILL a random miner this often and start another for its stage */
  churnEveryMs?: number;
  /** SIGKILL the orchestrator when a miner first reports `on` in `epoch` (an item: training; its
   * gradient upload: uploading; a merge job: merging), keep it down `downMs`, start it again */
  crashes?: Array<{ on: 'item' | 'upload' | 'merge'; epoch: number; downMs?: number }>;
  /** every miner behind a shaped link (its API calls and its store transfers): the first of
   * each stage on the slow one, the others on the fast one */
  links?: { fast: LinkShape; slow: LinkShape };
  /** the store out of reach (every transfer reset) for `ms` once a miner reports an item of `epoch` */
  storeOutage?: { epoch: number; ms: number };
  /** every miner reaches the orchestrator's API through a proxy that loses answers */
  api?: Pick<FaultProxyOptions, 'loseAnswers'>;
  /** faults on the store's URLs */
  store?: Pick<FaultProxyOptions, 'rates' | 'stallMs' | 'latencyMs' | 'bytesPerSecond'>;
  /** the orchestrator stores in S3 (s3rver) instead of its local store; `store` faults then hit
   * the participants' transfers with s3rver (presigned URLs), not the orchestrator's own calls,
   * and flip bytes of downloads only (s3rver, unlike S3, keeps an upload that fails its checksum) */
  s3?: boolean;
  seed?: number;
  /** started once the miners are, beside the run (a fuzzer at the orchestrator); awaited at its end */
  during?: (orchestratorUrl: string) => Promise<unknown>;
  /** stop after this long even if `epochs` is not reached (then the checks cover the epochs every
   * stage completed) */
  durationMs?: number;
  /** sample every process's memory and descriptors, the database's and the store's size */
  sampleEveryMs?: number;
  /** run settings over the harness's defaults */
  runOver?: Record<string, unknown>;
}

export type LinkShape = { bytesPerSecond: number; latencyMs: number };

export interface LedgerRow {
  epoch: number;
  stage: number;
  item: number;
  first_sample: number;
  n: number;
  state: string;
}

export interface ChaosResult {
  name: string;
  dir: string;
  runFile: string;
  seconds: number;
  /** samples merged per second, per stage (the mean over stages) */
  samplesPerS: number;
  faultsInjected: number;
  /** the store faults injected, by kind */
  storeFaults: Record<Fault, number>;
  kills: number;
  /** times the orchestrator was SIGKILLed and started again */
  restarts: number;
  /** items each miner completed and merge jobs it did, slow-link miners and the others */
  items: { slow: number[]; fast: number[] };
  mergeJobs: { slow: number[]; fast: number[] };
  /** epochs every stage completed: the checks cover epochs 0 to this one (excluded) */
  epochs: number;
  /** what `sampleEveryMs` sampled */
  samples: Sample[];
  /** what `during` returned */
  during?: unknown;
  /** miner processes started (more than S x M only with churn) */
  minersStarted: number;
  /** samples the ledger says were not merged (lost with a miner, dropped for any reason) */
  samplesDropped: number;
  /** allocated samples the ledger does not account for, merges with no manifest, replicas that disagree */
  dataLost: number;
  ledger: LedgerRow[];
  /** the manifest each stage started each epoch with, by `stage/epoch` */
  manifests: Map<string, string>;
  /** where an object's bytes lie (the local store's folder, or s3rver's) */
  objectFile: (key: string) => string;
  /** stops s3rver (removeRun calls it) */
  stopStore: (o?: { keepFiles?: boolean }) => Promise<void>;
  /** every miner's events */
  events: Array<Array<Record<string, unknown>>>;
  /** per stage and epoch, the distinct hashes of the weights the miners loaded */
  replicaHashes: Map<string, Set<string>>;
  /** every miner's exit code (null: killed) and the orchestrator's */
  exitCodes: Array<number | null>;
  /** answers the API proxy dropped after the orchestrator handled the request */
  answersLost: number;
  /** gradient uploads whose miner counted other samples than the ledger credits it */
  creditMismatches: number;
  /** refusals the miners reported (code by count) */
  refusals: Record<string, number>;
}

const STAGES = 3;

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const dir = mkdtempSync(join(tmpdir(), `iota-chaos-${o.name}-`));
  const runFile = writeRun(dir, {
    samples_per_epoch: o.samplesPerEpoch,
    batch: 1,
    in_flight: 2,
    activation_codec: 'f32',
    optimizer: { lr: 0.01, clip: 1 },
    schedule: { total_epochs: 100 },
    phases: { drain_s: 60, upload_s: 20, merge_s: 30, lease_s: 3 },
    ...o.runOver,
  });
  const random = rng(o.seed ?? 11);
  let proxy: FaultProxy | undefined;
  let orchestratorUrl = '';
  const extra = ['--set', 'rate_limits.exempt_loopback=true'];
  const s3 = o.s3 ? await startS3rver() : undefined;
  const env = s3 && {
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
  };
  if (o.store) {
    proxy = new FaultProxy({
      ...o.store,
      target: () => s3?.endpoint ?? orchestratorUrl,
      seed: o.seed,
      // a presigned URL is a participant's transfer; the orchestrator's own S3 calls pass clean
      affects: (_method, path) =>
        s3 ? path.includes('X-Amz-Signature=') : path.startsWith('/store/'),
      // S3 refuses an upload whose bytes fail its x-amz-checksum-sha256; s3rver keeps them
      flipDownloadsOnly: !!s3,
    });
    await proxy.listen();
    if (!s3) extra.push('--set', `orchestrator_url=${proxy.url}`);
  }
  if (s3)
    extra.push(
      ...['kind=s3', `bucket=${s3.bucket}`, 'force_path_style=true']
        .concat(`endpoint=${proxy?.url ?? s3.endpoint}`)
        .flatMap((f) => ['--set', `storage.${f}`]),
    );
  const objectFile = s3 ? s3.objectFile : localObjectFile(dir);
  // A fixed port: a restarted orchestrator is found where the miners left it.
  const port = await freePort();
  let orch = new IotaProcess(serveArgs(runFile, dir, ...extra, '--port', String(port)), { env });
  let failed: (e: Error) => void = () => {};
  const failure = new Promise<never>((_, reject) => (failed = reject));
  let restarting = false;
  const watch = (p: IotaProcess) =>
    void p.exited.then((code) => {
      if (!restarting && !ending)
        failed(new Error(`the orchestrator exited (${code}): ${p.stderr.join('').slice(-2000)}`));
    });
  watch(orch);
  orchestratorUrl = ((await orch.waitFor((e) => e.event === 'listening')) as { url: string }).url;
  const started = Date.now();

  let ending = false;
  const miners: Array<{ stage: number; proc: IotaProcess; slow: boolean }> = [];
  const arms: Array<(p: IotaProcess) => void> = [];
  let keyN = 0;
  const links: FaultProxy[] = [];
  for (const shape of o.links ? [o.links.fast, o.links.slow] : []) {
    const link = new FaultProxy({ ...shape, target: orchestratorUrl, rewriteOrigin: true });
    await link.listen();
    links.push(link);
  }
  const [fastLink, slowLink] = links;
  const api = o.api && new FaultProxy({ ...o.api, target: orchestratorUrl });
  const apiUrl = api ? await api.listen() : orchestratorUrl;
  const startMiner = (stage: number, through = apiUrl) => {
    const key = join(dir, `m${keyN++}.key`);
    writeKeyFile(key, newIdentity());
    const proc = new IotaProcess(
      ['miner', '--layer', String(stage), '--orchestrator', through, '--key', key, '--json'],
      { env: { IOTA_PROCESSES: String(STAGES * (o.minersPerStage ?? 2) + 1) } },
    );
    miners.push({ stage, proc, slow: through === slowLink?.url });
    for (const arm of arms) arm(proc);
    // A miner that stops by itself (not killed by the churn) is a failure of the run.
    void proc.exited.then((code) => {
      if (!proc.child.killed && !ending)
        failed(
          new Error(
            `a miner of stage ${stage} exited (${code}): ${proc.stderr.join('').slice(-3000)}` +
              (proxy?.upstreamErrors.length
                ? `\nthe store proxy's upstream errors: ${proxy.upstreamErrors.slice(-5).join('; ')}`
                : ''),
          ),
        );
    });
    return proc;
  };
  /** Resolves with the first event passing `test` from any miner, one started later included. */
  const anyMiner = (test: (e: Record<string, unknown>) => boolean) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const arm = (p: IotaProcess) => void p.waitFor(test).then(resolve, () => {});
      miners.forEach((m) => arm(m.proc));
      arms.push(arm);
    });
  const reached = (stage: number, epoch: number) =>
    anyMiner((e) => e.event === 'weights' && e.stage === stage && (e.epoch as number) >= epoch);
  for (let s = 0; s < STAGES; s++)
    for (let i = 0; i < (o.minersPerStage ?? 2); i++)
      startMiner(s, (i === 0 ? slowLink : fastLink)?.url ?? apiUrl);

  let kills = 0;
  let replacement: IotaProcess | undefined;
  const churn = o.churnEveryMs
    ? setInterval(() => {
        // The next kill waits until the last replacement has joined and loaded its weights: on
        // a slow host kills would otherwise outpace starts and empty a stage.
        if (replacement && !replacement.events.some((e) => e.event === 'weights')) return;
        const alive = miners.filter((m) => m.proc.child.exitCode === null && !m.proc.child.killed);
        const victim = alive[Math.floor(random() * alive.length)];
        if (!victim) return;
        kills++;
        void victim.proc.kill('SIGKILL');
        replacement = startMiner(victim.stage);
      }, o.churnEveryMs)
    : undefined;
  const beside = o.during?.(orchestratorUrl);
  if (o.storeOutage && proxy) {
    const { epoch, ms } = o.storeOutage;
    void anyMiner((e) => e.event === 'item' && e.epoch === epoch).then(() => proxy.outage(ms));
  }
  // The orchestrator SIGKILLed at the moments asked for, and started again on the same state.
  let restarts = 0;
  const crashes = (async () => {
    for (const c of o.crashes ?? []) {
      await anyMiner((e) => e.event === c.on && e.epoch === c.epoch);
      restarting = true;
      await orch.kill('SIGKILL');
      if (c.downMs) await new Promise((r) => setTimeout(r, c.downMs));
      orch = new IotaProcess(serveArgs(runFile, dir, ...extra, '--port', String(port)), { env });
      watch(orch);
      await orch.waitFor((e) => e.event === 'listening');
      restarting = false;
      restarts++;
    }
  })();
  const samples: Sample[] = [];
  const sampler = o.sampleEveryMs
    ? setInterval(
        () =>
          samples.push(
            sample(
              dir,
              started,
              orch,
              miners.map((m) => m.proc),
            ),
          ),
        o.sampleEveryMs,
      )
    : undefined;
  try {
    await Promise.race([
      Promise.all(Array.from({ length: STAGES }, (_, s) => reached(s, o.epochs))).then(
        () => crashes,
      ),
      failure,
      ...(o.durationMs ? [new Promise((r) => setTimeout(r, o.durationMs))] : []),
    ]);
  } finally {
    ending = true;
    if (churn) clearInterval(churn);
    if (sampler) clearInterval(sampler);
  }
  // The epochs every stage completed (all of them unless the run was stopped by time).
  const epochs = Math.min(
    o.epochs,
    ...Array.from({ length: STAGES }, (_, stage) =>
      Math.max(
        0,
        ...miners.flatMap((m) =>
          m.proc.events
            .filter((e) => e.event === 'weights' && e.stage === stage)
            .map((e) => e.epoch as number),
        ),
      ),
    ),
  );
  const seconds = (Date.now() - started) / 1000;
  const duringResult = await beside;
  const exitCodes = await Promise.all(miners.map((m) => m.proc.kill('SIGTERM')));
  exitCodes.push(await orch.kill('SIGTERM'));
  await proxy?.close();
  await api?.close();
  for (const link of links) await link.close();

  const db = new Database(join(dir, 'state', 'state.db'), { readonly: true });
  const ledger = db
    .prepare(
      `SELECT l.epoch, l.stage, l.item, i.first_sample, l.n, l.state
         FROM ledger l JOIN items i ON i.item = l.item
        WHERE l.epoch < ? ORDER BY l.epoch, l.stage, l.item`,
    )
    .all(epochs) as LedgerRow[];
  // The weights each stage started each epoch with (an abandoned epoch keeps the earlier ones).
  const manifests = new Map<string, string>();
  for (const m of db
    .prepare('SELECT stage, epoch, manifest FROM manifests WHERE epoch <= ?')
    .all(epochs) as Array<{ stage: number; epoch: number; manifest: string }>)
    manifests.set(`${m.stage}/${m.epoch}`, (JSON.parse(m.manifest) as { key: string }).key);
  const run = db.prepare('SELECT pruned_below, config FROM run').get() as {
    pruned_below: number;
    config: string;
  };
  db.close();
  const prunedBelow = run.pruned_below;
  const keepEvery =
    (JSON.parse(run.config) as { run: { keep_weights_every?: number } }).run.keep_weights_every ??
    10;

  let dataLost = 0;
  let merged = 0;
  for (let epoch = 0; epoch < epochs; epoch++)
    for (let stage = 0; stage < STAGES; stage++) {
      const rows = ledger.filter((r) => r.epoch === epoch && r.stage === stage);
      dataLost += Math.abs(o.samplesPerEpoch - rows.reduce((a, r) => a + r.n, 0));
      merged += rows.filter((r) => r.state === 'merged').reduce((a, r) => a + r.n, 0);
      // retention deletes the weights of epochs below pruned_below but every n-th
      const manifest = manifests.get(`${stage}/${epoch + 1}`);
      const kept = epoch + 1 >= prunedBelow || (keepEvery > 0 && (epoch + 1) % keepEvery === 0);
      if (!manifest || (kept && !existsSync(objectFile(manifest)))) dataLost++;
    }
  const itemsBy = (slow: boolean) =>
    miners
      .filter((m) => m.slow === slow)
      .map((m) => m.proc.events.filter((e) => e.event === 'item').length);
  const replicaHashes = new Map<string, Set<string>>();
  const refusals: Record<string, number> = {};
  let mismatches = 0;
  for (const { proc } of miners)
    for (const e of proc.events) {
      if (e.event === 'weights') {
        const k = `${e.stage}/${e.epoch}`;
        replicaHashes.set(k, (replicaHashes.get(k) ?? new Set()).add(e.sha256 as string));
      }
      if (e.event === 'refused') refusals[e.code as string] = (refusals[e.code as string] ?? 0) + 1;
      if (e.event === 'warning' && String(e.message).startsWith('the ledger credits')) mismatches++;
    }
  dataLost += [...replicaHashes.values()].filter((h) => h.size > 1).length;
  const total = epochs * STAGES * o.samplesPerEpoch;
  return {
    name: o.name,
    dir,
    runFile,
    seconds,
    samplesPerS: merged / STAGES / seconds,
    // a slow link's every request is one: delayed and throttled
    faultsInjected:
      kills +
      restarts +
      (proxy?.injected ?? 0) +
      (slowLink?.affected ?? 0) +
      (api?.answersLost ?? 0),
    answersLost: api?.answersLost ?? 0,
    restarts,
    minersStarted: miners.length,
    epochs,
    samples,
    during: duringResult,
    items: { slow: itemsBy(true), fast: itemsBy(false) },
    mergeJobs: {
      slow: miners.filter((m) => m.slow).map((m) => jobsOf(m.proc)),
      fast: miners.filter((m) => !m.slow).map((m) => jobsOf(m.proc)),
    },
    storeFaults: { ...(proxy?.counts ?? { error: 0, reset: 0, stall: 0, truncate: 0, flip: 0 }) },
    kills,
    samplesDropped: total - merged,
    dataLost,
    ledger,
    manifests,
    objectFile,
    stopStore: async (o) => s3?.stop(o),
    events: miners.map((m) => m.proc.events),
    replicaHashes,
    exitCodes,
    refusals,
    creditMismatches: mismatches,
  };
}

/** The sample ids each stage merged, per epoch: what the oracle trains on. */
export function mergedSamples(r: ChaosResult, epochs: number): number[][][] {
  return Array.from({ length: epochs }, (_, epoch) =>
    Array.from({ length: STAGES }, (_, stage) =>
      r.ledger
        .filter((l) => l.epoch === epoch && l.stage === stage && l.state === 'merged')
        .flatMap((l) => Array.from({ length: l.n }, (_, k) => l.first_sample + k)),
    ),
  );
}

/**
 * Per stage, how far the swarm's final weights are from single-process training on the samples
 * each stage merged (relative error), and from the initial weights (to show training moved them);
 * `epochs` has the gap after every epoch (where a divergence starts). With `orderGap`, also how
 * far that oracle is from itself with each epoch's gradients summed in the other order: what
 * rounding alone grows into over a long run (training amplifies a difference in the last bit
 * once it has run for a few dozen epochs), the yardstick for a long run's gap.
 */
export async function oracleGap(
  r: ChaosResult,
  epochs: number,
  orderGap = false,
): Promise<Array<{ gap: number; moved: number; epochs: number[]; orderGap?: number }>> {
  const perEpoch: number[][] = Array.from({ length: STAGES }, () => []);
  const merged = mergedSamples(r, epochs);
  const single = await subsetWeights(r.dir, r.runFile, merged, (e, ws) =>
    ws.forEach((w, stage) => perEpoch[stage].push(storedGap(r, e + 1, stage, w))),
  );
  const reordered = orderGap
    ? await subsetWeights(r.dir, r.runFile, merged, undefined, true)
    : undefined;
  const gaps = single.map((w, stage) => {
    const swarm = published(r, epochs, stage);
    return {
      gap: relErr(swarm, w),
      moved: relErr(swarm, published(r, 0, stage)),
      epochs: perEpoch[stage],
      ...(reordered ? { orderGap: relErr(reordered[stage], w) } : {}),
    };
  });
  if (gaps.some((g) => !(g.gap <= 1e-4)))
    process.stderr.write(
      `${r.name}: gap to the oracle after each epoch, per stage: ` +
        `${JSON.stringify(gaps.map((g) => g.epochs.map((x) => +x.toExponential(1))))} ` +
        `(the run's folder is ${r.dir}${KEEP ? ', kept' : ''})\n`,
    );
  return gaps;
}

/** The weights a stage started an epoch with, as the swarm published them. */
export const published = (r: ChaosResult, epoch: number, stage: number) =>
  storedWeights(
    r.dir,
    epoch,
    stage,
    'swarm-test',
    r.manifests.get(`${stage}/${epoch}`),
    r.objectFile,
  ).w;

/** The gap at one epoch; NaN where the swarm published no weights for it. */
function storedGap(r: ChaosResult, epoch: number, stage: number, w: Float32Array): number {
  try {
    return relErr(published(r, epoch, stage), w);
  } catch {
    return NaN;
  }
}

/** IOTA_CHAOS_KEEP=1 keeps every run's folder (to read a failed run's state and store). */
const KEEP = process.env.IOTA_CHAOS_KEEP === '1';

export interface Sample {
  /** seconds since the orchestrator started */
  t: number;
  orchestratorRssMb: number;
  orchestratorFds: number;
  /** the largest of the live miners' */
  minerRssMb: number;
  minerFds: number;
  dbMb: number;
  storeMb: number;
}

/** One reading of the run's processes (Linux /proc) and folders. */
function sample(dir: string, started: number, orch: IotaProcess, miners: IotaProcess[]): Sample {
  const rss = (p: IotaProcess) => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.child.pid}/status`, 'utf8'));
      return m ? Number(m[1]) / 1024 : 0;
    } catch {
      return 0; // gone
    }
  };
  const fds = (p: IotaProcess) => {
    try {
      return readdirSync(`/proc/${p.child.pid}/fd`).length;
    } catch {
      return 0;
    }
  };
  const live = miners.filter((p) => p.child.exitCode === null && !p.child.killed);
  const state = join(dir, 'state');
  const size = (f: string) => (existsSync(f) ? statSync(f).size : 0);
  // The bytes under a folder; what retention deletes while it is read is skipped.
  const tree = (d: string): number => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return 0;
    }
    return entries.reduce((a, e) => {
      const f = join(d, e.name);
      if (e.isDirectory()) return a + tree(f);
      try {
        return a + statSync(f).size;
      } catch {
        return a;
      }
    }, 0);
  };
  const MB = 2 ** 20;
  return {
    t: Math.round((Date.now() - started) / 1000),
    orchestratorRssMb: Math.round(rss(orch)),
    orchestratorFds: fds(orch),
    minerRssMb: Math.round(Math.max(0, ...live.map(rss))),
    minerFds: Math.max(0, ...live.map(fds)),
    dbMb: +((size(join(state, 'state.db')) + size(join(state, 'state.db-wal'))) / MB).toFixed(1),
    storeMb: +(tree(join(state, 'store', 'objects')) / MB).toFixed(1),
  };
}

const jobsOf = (p: IotaProcess) =>
  p.events.filter((e) => e.event === 'merge').reduce((a, e) => a + (e.jobs as number), 0);

/** A port free now (the orchestrator is restarted on it). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

export async function removeRun(r: ChaosResult): Promise<void> {
  // s3rver stops either way (a child left running keeps jest from exiting); KEEP keeps the files
  await r.stopStore({ keepFiles: KEEP });
  if (!KEEP) rmSync(r.dir, { recursive: true, force: true });
}
