/**
 * `iota local`: the whole swarm from one command (an orchestrator, 3 stages x 2 miners and a
 * validator as its children), its summary checked against the run's own database; `iota export`
 * of that run read by `iota generate` and `iota train --resume`, its weights equal to the
 * stages' merged weights byte for byte; and no child outlives a SIGKILLed `iota local`.
 */
import Database from 'better-sqlite3';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelConfig } from '../../src/config/index.js';
import { stageSpecs } from '../../src/config/model.js';
import { decodePartition, parseManifest } from '../../src/merge/manifest.js';
import { stageLayout } from '../../src/model/params.js';
import { decodeSafetensors } from '../../src/tensor-io/index.js';
import { IotaProcess, LOCAL_MINER_NAMES, killAll, runIota } from '../support/cli.js';

afterAll(killAll);

const dir = mkdtempSync(join(tmpdir(), 'iota-local-'));
const state = join(dir, 'run');

interface Summary {
  epochs: number;
  stages: number;
  stage_epochs: number[];
  tokens: number;
  wall_s: number;
  tokens_per_s: number;
  loss_first: number;
  loss_last: number;
  eval_loss: number;
  merges: number;
  verdicts: number;
  failed_verdicts: number;
  scores: Array<{ name?: string; score: number }>;
  text: string[];
}

function lastJson<T>(stdout: string): T {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as T;
}

/** The object of `key` in the run's local store. */
const object = (key: string) => readFileSync(join(state, 'store', 'objects', ...key.split('/')));

describe('iota local', () => {
  let summary: Summary;

  beforeAll(async () => {
    const r = await runIota(['local', '--epochs', '3', '--state-dir', state, '--json']);
    if (r.code !== 0) throw new Error(`iota local exited ${r.code}: ${r.stderr}`);
    summary = lastJson<Summary>(r.stdout);
  }, 240_000);

  it('trains 3 epochs of tiny with 3 stages x 2 miners and a validator, as its summary says', () => {
    const db = new Database(join(state, 'state.db'), { readonly: true });
    try {
      // Every stage merged every epoch: weights of epochs 1, 2 and 3 in each stage.
      for (let s = 0; s < 3; s++)
        for (let e = 1; e <= 3; e++)
          expect(
            db.prepare('SELECT 1 FROM manifests WHERE stage = ? AND epoch = ?').get(s, e),
          ).toBeDefined();
      expect(summary.stages).toBe(3);
      expect(summary.epochs).toBeGreaterThanOrEqual(3);
      expect(summary.merges).toBe(summary.stage_epochs.reduce((a, e) => a + e, 0));
      // The loss fell, and the held-out loss was measured.
      expect(summary.loss_last).toBeLessThan(summary.loss_first);
      expect(Number.isFinite(summary.eval_loss)).toBe(true);
      // The validator checked work, and no check failed.
      const verdicts = db
        .prepare(
          "SELECT state, COUNT(*) AS n FROM validations WHERE state IN ('passed', 'failed') GROUP BY state",
        )
        .all() as Array<{ state: string; n: number }>;
      const count = (st: string) => verdicts.find((v) => v.state === st)?.n ?? 0;
      expect(count('passed')).toBeGreaterThan(0);
      expect(count('failed')).toBe(0);
      expect(summary.verdicts).toBe(count('passed'));
      expect(summary.failed_verdicts).toBe(0);
      // Tokens: the samples the ledger merged in every stage, times the sequence length (64).
      const merged = db
        .prepare("SELECT stage, SUM(n) AS n FROM ledger WHERE state = 'merged' GROUP BY stage")
        .all() as Array<{ n: number }>;
      expect(merged).toHaveLength(3);
      expect(summary.tokens).toBe(Math.min(...merged.map((m) => m.n)) * 64);
      expect(summary.tokens).toBeGreaterThanOrEqual(3 * 32 * 64);
    } finally {
      db.close();
    }
    expect(summary.tokens_per_s).toBeGreaterThan(0);
    expect(summary.scores.map((s) => s.name).sort()).toEqual(LOCAL_MINER_NAMES);
    expect(summary.text).toHaveLength(3);
    for (const t of summary.text) expect(t.length).toBeGreaterThan(10);
    // The corpus is the package's, tokenized once in its data/ folder, whatever the working folder.
    expect(readFileSync(join(state, 'run.yaml'), 'utf8')).toContain(
      `dir: ${join(process.cwd(), 'data')}\n`,
    );
    // Every child wrote its log into the state folder.
    for (const name of ['orchestrator', 'miner-s0-0', 'miner-s2-1', 'validator-0'])
      expect(existsSync(join(state, 'logs', `${name}.log`))).toBe(true);
  });

  it('refuses to resume the run under other settings, and changes nothing', async () => {
    const before = readFileSync(join(state, 'run.yaml'), 'utf8');
    const r = await runIota(['local', '--epochs', '4', '--state-dir', state, '--model', 'small']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('E_RUN_CHANGED');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(readFileSync(join(state, 'run.yaml'), 'utf8')).toBe(before);
  });

  it('exports the merged weights byte for byte, for iota generate and iota train --resume', async () => {
    const out = join(dir, 'export');
    const r = await runIota(['export', '--state-dir', state, '--out', out, '--json']);
    expect(r.code).toBe(0);
    const result = lastJson<{ epoch: number; step: number; folder: string }>(r.stdout);
    expect(result.epoch).toBe(summary.epochs);
    const model = loadModelConfig(join(out, 'model.yaml'));
    const db = new Database(join(state, 'state.db'), { readonly: true });
    try {
      for (const spec of stageSpecs(model)) {
        const ref = JSON.parse(
          (
            db
              .prepare('SELECT manifest FROM manifests WHERE stage = ? AND epoch = ?')
              .get(spec.index, result.epoch) as { manifest: string }
          ).manifest,
        ) as { key: string };
        const manifest = parseManifest(object(ref.key));
        const merged = new Float32Array(manifest.params);
        for (const p of manifest.partitions)
          merged.set(decodePartition(object(p.key), p.length), p.offset);
        const exported = decodeSafetensors(
          readFileSync(join(result.folder, `stage-${spec.index}.safetensors`)),
        ).tensors;
        for (const p of stageLayout(model, spec).params) {
          const want = Buffer.from(merged.buffer, p.offset * 4, p.size * 4);
          const t = exported[p.name].data as Float32Array;
          expect(Buffer.from(t.buffer, t.byteOffset, t.byteLength).equals(want)).toBe(true);
        }
      }
    } finally {
      db.close();
    }
    const gen = await runIota([
      'generate',
      '--checkpoint',
      out,
      '--prompt',
      'The ',
      '--tokens',
      '20',
    ]);
    expect(gen.code).toBe(0);
    expect(gen.stdout.length).toBeGreaterThan(4);
    const train = await runIota([
      'train',
      '--run',
      join(out, 'run.yaml'),
      '--out',
      out,
      '--resume',
      '--steps',
      '1',
      '--json',
    ]);
    expect(train.code).toBe(0);
    expect(lastJson<{ steps?: number }>(train.stdout)).toBeDefined();
    expect(train.stdout).toContain(`"step":${result.epoch + 1}`);
    // The same weights from the run's orchestrator, read over HTTP with a key of one's own.
    const orch = new IotaProcess([
      'orchestrator',
      'serve',
      '--run',
      join(state, 'run.yaml'),
      '--node',
      join(state, 'node.yaml'),
      '--port',
      '0',
      '--json',
    ]);
    const { url } = (await orch.waitFor((e) => e.event === 'listening')) as { url: string };
    const key = join(dir, 'export.key');
    expect((await runIota(['keys', 'new', '--out', key])).code).toBe(0);
    const remote = join(dir, 'export-remote');
    const viaHttp = await runIota(['export', '--orchestrator', url, '--key', key, '--out', remote]);
    expect(viaHttp.code).toBe(0);
    expect(await orch.kill('SIGTERM')).toBe(0);
    const remoteFolder = join(
      remote,
      JSON.parse(readFileSync(join(remote, 'latest.json'), 'utf8')).folder,
    );
    for (const f of ['stage-0.safetensors', 'stage-2.safetensors', 'optim-1.safetensors'])
      expect(readFileSync(join(remoteFolder, f)).equals(readFileSync(join(result.folder, f)))).toBe(
        true,
      );
    // A second export into the same folder is refused: nothing is overwritten.
    const again = await runIota(['export', '--state-dir', state, '--out', out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('E_CHECKPOINT_EXISTS');
    const bad = await runIota([
      'export',
      '--state-dir',
      state,
      '--epoch',
      '999',
      '--out',
      join(dir, 'x'),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('E_NO_EPOCH');
  }, 120_000);
});

describe('iota local when a child or itself dies', () => {
  it('reports a crashed miner and goes on; SIGKILLed, it leaves no child behind after 10 s', async () => {
    const p = new IotaProcess([
      'local',
      '--epochs',
      '100',
      '--state-dir',
      join(dir, 'killed'),
      '--json',
    ]);
    // Every child is running once the last miner and the validator have joined.
    let joined = 0;
    await p.waitFor(
      (e) => e.event === 'notable' && /joined stage/.test(String(e.text)) && ++joined === 6,
    );
    await p.waitFor((e) => e.event === 'epoch');
    const children = readFileSync(`/proc/${p.child.pid}/task/${p.child.pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    expect(children).toHaveLength(8);
    const alive = () => children.filter((pid) => existsSync(`/proc/${pid}`) && !isZombie(pid));
    expect(alive()).toHaveLength(8);
    // A miner that dies is reported with its log's tail, and the swarm goes on without it.
    const miner = children.find((pid) =>
      readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('miner-s1-0'),
    )!;
    const epochBefore = Number(p.events.filter((e) => e.event === 'epoch').pop()!.epoch);
    process.kill(miner, 'SIGKILL');
    const report = await p.waitFor(
      (e) => e.event === 'notable' && String(e.text).startsWith('miner-s1-0 exited'),
    );
    expect(report).toMatchObject({ level: 'warn' });
    expect(String(report.text)).toContain(join(dir, 'killed', 'logs', 'miner-s1-0.log'));
    await p.waitFor((e) => e.event === 'epoch' && Number(e.epoch) >= epochBefore + 2);
    children.splice(children.indexOf(miner), 1);
    expect(alive()).toHaveLength(7);
    const killedAt = Date.now();
    await p.kill('SIGKILL');
    // No event tells this test that an unrelated process exited: look until the deadline.
    while (alive().length > 0 && Date.now() - killedAt < 10_000)
      await new Promise((r) => setTimeout(r, 100));
    expect(alive()).toEqual([]);
  }, 120_000);
});

describe('iota local interrupted', () => {
  it('stops every child cleanly on SIGINT, prints the summary, and exits 130', async () => {
    const state2 = join(dir, 'interrupted');
    const p = new IotaProcess(['local', '--epochs', '100', '--state-dir', state2, '--json']);
    await p.waitFor((e) => e.event === 'epoch' && Number(e.epoch) >= 1);
    const children = childrenOf(p.child.pid!);
    expect(children).toHaveLength(8);
    p.child.kill('SIGINT');
    expect(await p.exited).toBe(130);
    const summary = p.events[p.events.length - 1] as { reached?: boolean; epochs?: number };
    expect(summary).toMatchObject({ reached: false });
    expect(summary.epochs).toBeGreaterThanOrEqual(1);
    // Every child had exited before iota local did: none was killed or left behind.
    expect(children.filter((pid) => existsSync(`/proc/${pid}`) && !isZombie(pid))).toEqual([]);
    // Each stopped as on SIGTERM: the miners finished or released their items.
    const log = (name: string) => readFileSync(join(state2, 'logs', `${name}.log`), 'utf8');
    for (const m of ['miner-s0-0', 'miner-s1-1', 'miner-s2-0'])
      expect(log(m)).toContain('SIGTERM: finishing the items in flight');
    expect(log('validator-0')).toContain('stopping after the current task');
    expect(log('orchestrator')).toContain('"event":"closed"');
  }, 120_000);
});

function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
}

function isZombie(pid: number): boolean {
  try {
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
