/**
 * `iota setup` as a person uses it, in a terminal (tmux): an orchestrator with the local store
 * and a miner, each with one invalid answer asked again; the files it writes start the roles
 * (the orchestrator serves, the miner joins it); the same answers as flags with --yes write the
 * same files; the S3 store check passes against s3rver and fails, writing nothing, against a
 * wrong bucket.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IOTA, IotaProcess, killAll, runIota } from '../support/cli.js';
import { startS3rver, type S3rverHandle } from '../support/s3rver.js';

afterAll(killAll);

/** A program in a tmux pane: wait for text to appear, type into it. */
class Terminal {
  private readonly name = `iota-setup-${process.pid}-${Math.random().toString(36).slice(2)}`;

  constructor(command: string, cwd: string) {
    execFileSync('tmux', [
      'new-session',
      '-d',
      '-s',
      this.name,
      '-x',
      '160',
      '-y',
      '50',
      '-c',
      cwd,
      command,
    ]);
  }

  screen(): string {
    try {
      return execFileSync('tmux', ['capture-pane', '-p', '-t', this.name], { encoding: 'utf8' });
    } catch {
      return ''; // the session ended with its program
    }
  }

  /** Resolves once the pane shows `text` (a terminal has no event to wait on: it is read). */
  async waitFor(text: string | RegExp, timeoutMs = 20_000): Promise<string> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const s = this.screen();
      if (typeof text === 'string' ? s.includes(text) : text.test(s)) return s;
      if (Date.now() > until) throw new Error(`the terminal never showed ${String(text)}:\n${s}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Types `text` (literally) and presses Enter. */
  answer(text: string): void {
    if (text) execFileSync('tmux', ['send-keys', '-t', this.name, '-l', text]);
    execFileSync('tmux', ['send-keys', '-t', this.name, 'Enter']);
  }

  /** Clears the line (its default answer), as a person would, then types `text` and Enter. */
  retype(text: string): void {
    execFileSync('tmux', ['send-keys', '-t', this.name, 'C-u']);
    this.answer(text);
  }

  keys(...keys: string[]): void {
    execFileSync('tmux', ['send-keys', '-t', this.name, ...keys]);
  }

  close(): void {
    try {
      execFileSync('tmux', ['kill-session', '-t', this.name]);
    } catch {
      // already gone
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

const read = (f: string) => readFileSync(f, 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'iota-setup-'));
const setup = `node ${IOTA} setup; echo SETUP-EXITED-$?; sleep 600`;

describe('iota setup', () => {
  let port: number;
  let orch: IotaProcess;

  it('sets up an orchestrator at the prompts, asking again after an invalid answer', async () => {
    port = await freePort();
    const t = new Terminal(setup, dir);
    try {
      await t.waitFor('What will this machine be?');
      t.keys('Down', 'Down', 'Enter'); // miner, validator, orchestrator
      await t.waitFor('Model');
      t.answer(''); // tiny
      await t.waitFor('Samples per epoch');
      t.answer('abc');
      await t.waitFor('expected a whole number > 0');
      t.retype('16');
      await t.waitFor('Corpus');
      t.answer('');
      await t.waitFor('Address to listen on');
      t.retype('127.0.0.1');
      await t.waitFor('Port');
      t.retype(String(port));
      await t.waitFor('URL the miners reach it at');
      t.retype(`http://127.0.0.1:${port}`);
      await t.waitFor('Object store');
      t.keys('Enter'); // local
      await t.waitFor('Validator key ids');
      t.answer('');
      await t.waitFor('Folder for its configs');
      t.answer('');
      const screen = await t.waitFor('SETUP-EXITED-');
      expect(screen).toContain('SETUP-EXITED-0');
      expect(screen).toContain(`orchestrator serve --run ${join(dir, 'orchestrator', 'run.yaml')}`);
    } finally {
      t.close();
    }
    const node = read(join(dir, 'orchestrator', 'node.yaml'));
    expect(node).toContain(`port: ${port}`);
    expect(read(join(dir, 'orchestrator', 'run.yaml'))).toContain('samples_per_epoch: 16');

    // The files start the orchestrator.
    orch = new IotaProcess([
      'orchestrator',
      'serve',
      '--run',
      join(dir, 'orchestrator', 'run.yaml'),
      '--node',
      join(dir, 'orchestrator', 'node.yaml'),
      '--json',
    ]);
    expect((await orch.waitFor((e) => e.event === 'listening')).url).toBe(
      `http://127.0.0.1:${port}`,
    );

    // The same answers as flags, with --yes for the rest, write the same files.
    const first = [
      read(join(dir, 'orchestrator', 'node.yaml')),
      read(join(dir, 'orchestrator', 'run.yaml')),
    ];
    rmSync(join(dir, 'orchestrator', 'node.yaml'));
    rmSync(join(dir, 'orchestrator', 'run.yaml'));
    const flags = await runIota(
      [
        'setup',
        '--role',
        'orchestrator',
        '--samples-per-epoch',
        '16',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--public-url',
        `http://127.0.0.1:${port}`,
        '--yes',
      ],
      { cwd: dir },
    );
    expect(flags.code).toBe(0);
    expect([
      read(join(dir, 'orchestrator', 'node.yaml')),
      read(join(dir, 'orchestrator', 'run.yaml')),
    ]).toEqual(first);
  }, 120_000);

  it('sets up a miner that joins the orchestrator, asking again for an unreachable URL', async () => {
    const url = `http://127.0.0.1:${port}`;
    const t = new Terminal(setup, dir);
    try {
      await t.waitFor('What will this machine be?');
      t.keys('Enter'); // miner
      await t.waitFor('Orchestrator URL');
      t.retype('http://127.0.0.1:1');
      await t.waitFor('cannot reach http://127.0.0.1:1');
      t.retype(url);
      await t.waitFor('Key file');
      t.answer('');
      await t.waitFor('Stage to train');
      t.answer('');
      await t.waitFor('Compute backend');
      t.keys('Enter'); // auto
      await t.waitFor('Threads for its kernels');
      t.retype('1');
      await t.waitFor('Node config to write');
      t.answer('');
      const screen = await t.waitFor('SETUP-EXITED-');
      expect(screen).toContain('SETUP-EXITED-0');
      expect(screen).toContain(`miner --node ${join(dir, 'miner.node.yaml')} --layer auto`);
    } finally {
      t.close();
    }
    expect(statSync(join(dir, 'miner.key')).mode & 0o777).toBe(0o600);
    const node = read(join(dir, 'miner.node.yaml'));
    expect(node).toContain(`orchestrator_url: ${url}`);

    // The printed command starts a miner that joins.
    const miner = new IotaProcess(
      [
        'miner',
        '--node',
        join(dir, 'miner.node.yaml'),
        '--layer',
        'auto',
        '--threads',
        '1',
        '--json',
      ],
      { cwd: dir },
    );
    expect(await miner.waitFor((e) => e.event === 'joined')).toMatchObject({ event: 'joined' });
    await miner.kill('SIGKILL');

    // Flags and --yes write the same node config, and reuse the key (never overwritten).
    const key = read(join(dir, 'miner.key'));
    rmSync(join(dir, 'miner.node.yaml'));
    const flags = await runIota(
      ['setup', '--role', 'miner', '--orchestrator', url, '--threads', '1', '--yes'],
      { cwd: dir },
    );
    expect(flags.code).toBe(0);
    expect(read(join(dir, 'miner.node.yaml'))).toBe(node);
    expect(read(join(dir, 'miner.key'))).toBe(key);
    await orch.kill('SIGTERM');
  }, 120_000);

  describe('with an S3 store', () => {
    let s3: S3rverHandle;
    beforeAll(async () => {
      s3 = await startS3rver('iota-setup');
    });
    afterAll(() => s3?.stop());

    const s3Setup = (bucket: string, out: string) =>
      runIota(
        [
          'setup',
          '--role',
          'orchestrator',
          '--store',
          's3',
          '--s3-endpoint',
          s3.endpoint,
          '--s3-bucket',
          bucket,
          '--out',
          out,
          '--yes',
        ],
        {
          cwd: dir,
          env: {
            AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
            AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
          },
        },
      );

    it('passes the store check (a scratch write, read and delete) and writes the S3 storage', async () => {
      const r = await s3Setup('iota-setup', 'orch-s3');
      expect(r.code).toBe(0);
      const node = read(join(dir, 'orch-s3', 'node.yaml'));
      expect(node).toContain('kind: s3');
      expect(node).toContain('bucket: iota-setup');
      expect(node).toContain(`endpoint: ${s3.endpoint}`);
    });

    it('fails on a wrong bucket with the store’s own error, and writes nothing', async () => {
      const r = await s3Setup('no-such-bucket', 'orch-bad');
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('E_STORE_CHECK');
      expect(r.stderr).toMatch(/bucket/i);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(join(dir, 'orch-bad'))).toBe(false);
    });
  });
});
