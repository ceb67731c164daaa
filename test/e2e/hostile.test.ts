/**
 * A swarm under attack, end to end: an orchestrator and 3 stages x 2 honest miners as real
 * processes, beside three hostile participants in this process: a miner with the lowest key id
 * of its stage that works honestly and forges the norms of its merge results, one that refuses
 * every item it is given, and one that takes work and never reports it while heartbeating. The
 * same swarm also runs without them, for the speed they leave it.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { loadRunConfig } from '../../src/config/index.js';
import { newIdentity, writeKeyFile, type Identity } from '../../src/protocol/keys.js';
import type { ScoresReply } from '../../src/protocol/swarm-messages.js';
import { Adversary } from '../support/adversaries.js';
import { IotaProcess, killAll, runIota, serveArgs } from '../support/cli.js';
import { Hoarder, Refuser } from '../support/hostile.js';
import { relErr } from '../support/model.js';
import { singleProcessWeights, storedWeights } from '../support/oracle.js';
import { writeRun } from '../support/run-files.js';

afterAll(killAll);

const EPOCHS = 5;
const SAMPLES = 24;

interface Outcome {
  dir: string;
  runFile: string;
  /** samples per second from the start of epoch 1 to the start of epoch EPOCHS */
  speed: number;
  attackers: { forger: string; refuser: string; hoarder: string } | undefined;
  honest: string[];
  scores: ScoresReply;
  exits: Array<number | null>;
  /** the epoch every stage's weights had reached when the run stopped */
  last: number;
}

async function runSwarm(attacked: boolean): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), `iota-hostile-${attacked ? 'attacked' : 'calm'}-`));
  const runFile = writeRun(dir, {
    samples_per_epoch: SAMPLES,
    batch: 2,
    in_flight: 2,
    activation_codec: 'f32',
    optimizer: { lr: 0.01, clip: 1 },
    schedule: { total_epochs: 20 },
    validation: { rate: 0, upload_rate: 0, probation_passes: 0 },
    phases: { drain_s: 30, upload_s: 20, merge_s: 60, lease_s: 3 },
  });
  const orch = new IotaProcess(serveArgs(runFile, dir));
  const url = ((await orch.waitFor((e) => e.event === 'listening')) as { url: string }).url;
  const ids: Identity[] = [0, 1, 2, 3, 4, 5].map(() => newIdentity());
  const env = { IOTA_PROCESSES: '8' };
  const miners = ids.map((id, i) => {
    const file = join(dir, `m${i}.key`);
    writeKeyFile(file, id);
    return new IotaProcess(
      ['miner', '--layer', String(i >> 1), '--orchestrator', url, '--key', file, '--json'],
      { env },
    );
  });
  for (const m of miners) await m.waitFor((e) => e.event === 'joined');

  let attackers: Outcome['attackers'];
  const stop = { now: false };
  const playing: Array<Promise<void>> = [];
  const closers: Array<() => Promise<void>> = [];
  if (attacked) {
    const { run, model } = loadRunConfig(runFile);
    const info = (await (await request(`${url}/v1/info`)).body.json()) as { config_hash: string };
    // The forger's key id sorts before its stage's honest miners' (it used to be taken first).
    const lowest = [ids[2].id, ids[3].id].sort()[0];
    let identity = newIdentity();
    while (identity.id >= lowest) identity = newIdentity();
    const forger = new Adversary(url, run.name, 'forged_norms', 1, model, run, {
      identity,
      reduction: (r) => ({
        ...r,
        norm2: 0,
        sliceNorms2: Object.fromEntries(
          Object.entries(r.sliceNorms2).map(([m, v]) => [m, m === identity.id ? v : 1e30]),
        ),
      }),
    });
    await forger.start(info.config_hash);
    const refuser = new Refuser(url, run.name);
    const hoarder = new Hoarder(url, run.name);
    for (const [p, stage] of [
      [refuser, 2],
      [hoarder, 0],
    ] as const) {
      await p.register(p === refuser ? 'refuser' : 'hoarder');
      p.client.runHash = info.config_hash;
      await p.join(stage);
    }
    attackers = { forger: forger.id, refuser: refuser.id, hoarder: hoarder.id };
    for (const a of [forger, refuser, hoarder]) {
      playing.push(
        (async () => {
          while (!stop.now)
            if ((await a.play().catch(() => 0)) === 0) await new Promise((r) => setTimeout(r, 50));
        })(),
      );
      closers.push(() => a.close());
    }
  }

  const head = [miners[0], miners[1]];
  const started = async (epoch: number): Promise<number> => {
    const e = (await Promise.race(
      head.map((m) => m.waitFor((x) => x.event === 'weights' && x.epoch === epoch)),
    )) as { at: number };
    return e.at;
  };
  const t1 = await started(1);
  const tEnd = await started(EPOCHS);
  stop.now = true;
  await Promise.all(playing);
  for (const c of closers) await c();
  const exits = await Promise.all(miners.map((m) => m.kill('SIGTERM')));
  miners.forEach((m, i) =>
    writeFileSync(
      join(dir, `m${i}.jsonl`),
      m.events.map((e) => JSON.stringify(e)).join('\n') + '\n' + m.stderr.join(''),
    ),
  );
  writeFileSync(join(dir, 'ids.json'), JSON.stringify({ honest: ids.map((i) => i.id), attackers }));
  const scores = JSON.parse(
    (await runIota(['scores', '--orchestrator', url, '--json'])).stdout,
  ) as ScoresReply;
  exits.push(await orch.kill('SIGTERM'));
  const db = new Database(join(dir, 'state', 'state.db'), { readonly: true });
  const last = (db.prepare('SELECT MIN(epoch) AS e FROM stages').get() as { e: number }).e;
  db.close();
  return {
    last,
    dir,
    runFile,
    speed: ((EPOCHS - 1) * SAMPLES * 1000) / (tEnd - t1),
    attackers,
    honest: ids.map((i) => i.id),
    scores,
    exits,
  };
}

describe('a swarm with three hostile participants', () => {
  let calm: Outcome;
  let attacked: Outcome;
  beforeAll(async () => {
    calm = await runSwarm(false);
    attacked = await runSwarm(true);
  }, 300_000);

  it('trains at no less than half the speed of the same swarm without them', () => {
    expect(calm.exits.every((c) => c === 0)).toBe(true);
    expect(attacked.exits.every((c) => c === 0)).toBe(true);
    process.stderr.write(
      `hostile swarm: ${attacked.speed.toFixed(1)} samples/s against ${calm.speed.toFixed(1)} without the attackers (${((100 * attacked.speed) / calm.speed).toFixed(0)}%)\n`,
    );
    expect(attacked.speed / calm.speed).toBeGreaterThanOrEqual(0.5);
  });

  it('gives no honest miner a fault and loses no sample: every one of every epoch is merged', () => {
    const db = new Database(join(attacked.dir, 'state', 'state.db'), { readonly: true });
    const faults = db.prepare('SELECT miner, kind FROM faults').all() as Array<{
      miner: string;
      kind: string;
    }>;
    const ledger = db
      .prepare(
        'SELECT epoch, stage, state, SUM(n) AS n FROM ledger WHERE epoch < ? GROUP BY epoch, stage, state',
      )
      .all(attacked.last) as Array<{ epoch: number; stage: number; state: string; n: number }>;
    db.close();
    expect(attacked.last).toBeGreaterThanOrEqual(EPOCHS - 1);
    expect(faults.filter((f) => attacked.honest.includes(f.miner))).toEqual([]);
    expect(ledger.filter((r) => r.state !== 'merged')).toEqual([]);
    expect(ledger).toHaveLength(attacked.last * 3);
    expect(ledger.every((r) => r.n === SAMPLES)).toBe(true);
    // What each attacker was caught at.
    const { forger, refuser, hoarder } = attacked.attackers!;
    const kinds = (miner: string) =>
      new Set(faults.filter((f) => f.miner === miner).map((f) => f.kind));
    // (a lost dispute is also a failed verdict, recorded by the orchestrator)
    expect(kinds(forger)).toEqual(new Set(['merge_mismatch', 'failed_validation']));
    expect(kinds(refuser)).toEqual(new Set(['false_refusal']));
    expect(kinds(hoarder)).toEqual(new Set(['lease_lapsed']));
  });

  it('penalises all three attackers in the scores', () => {
    const byMiner = new Map(attacked.scores.scores.map((s) => [s.miner, s]));
    for (const miner of Object.values(attacked.attackers!))
      expect(byMiner.get(miner)?.failures ?? 0).toBeGreaterThan(0);
    for (const miner of attacked.honest) expect(byMiner.get(miner)?.failures ?? 0).toBe(0);
  });

  it('ends with the weights single-process training computes on the same samples', async () => {
    const single = await singleProcessWeights(attacked.dir, attacked.runFile, attacked.last);
    single.forEach((w, stage) =>
      expect(relErr(storedWeights(attacked.dir, attacked.last, stage).w, w)).toBeLessThanOrEqual(
        1e-4,
      ),
    );
  }, 120_000);
});
