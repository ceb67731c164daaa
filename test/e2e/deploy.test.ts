/**
 * Supervision: deploy/pm2.config.cjs starts the three roles from the files `iota setup` writes
 * (an orchestrator, a miner, a validator), and a miner pm2 restarts re-joins as itself (same
 * key, one membership). pm2 runs with its own home folder, and is killed at the end.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import type { SwarmStatus } from '../../src/protocol/swarm-messages.js';
import { runIota } from '../support/cli.js';

const PM2 = join(process.cwd(), 'node_modules', '.bin', 'pm2');
const CONFIG = join(process.cwd(), 'deploy', 'pm2.config.cjs');
const dir = mkdtempSync(join(tmpdir(), 'iota-deploy-'));
const env = { ...process.env, PM2_HOME: join(dir, 'pm2'), IOTA_PROCESSES: '3' };
const pm2 = (...args: string[]) => execFileSync(PM2, args, { cwd: dir, env, encoding: 'utf8' });

afterAll(() => {
  if (existsSync(join(dir, 'pm2'))) pm2('kill');
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once `test` holds (a process under pm2 sends this test no events: it is looked at). */
async function until<T>(
  what: string,
  test: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const v = await test();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const log = (name: string) => {
  const f = join(dir, 'logs', `${name}.log`);
  return existsSync(f) ? readFileSync(f, 'utf8') : '';
};
/** The miner's `joined` events in its log (pm2 puts a time before each line). */
const joins = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.includes('"event":"joined"'))
    .map((l) => JSON.parse(l.slice(l.indexOf('{'))) as { stage: number });

describe('deploy/pm2.config.cjs', () => {
  it('starts the three roles from iota setup’s files; a restarted miner re-joins as itself', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    expect((await runIota(['keys', 'new', '--out', join(dir, 'validator.key')])).code).toBe(0);
    const validatorId = (await runIota(['keys', 'show', join(dir, 'validator.key')])).stdout.trim();
    const orch = await runIota(
      [
        'setup',
        '--role',
        'orchestrator',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--public-url',
        url,
        '--samples-per-epoch',
        '16',
        '--validators',
        validatorId,
        '--yes',
      ],
      { cwd: dir },
    );
    expect(orch.code).toBe(0);
    pm2('start', CONFIG, '--only', 'iota-orchestrator');
    await until('the orchestrator answers', async () => {
      try {
        const r = await request(`${url}/v1/info`);
        return r.statusCode === 200 ? await r.body.json() : undefined;
      } catch {
        return undefined;
      }
    });
    for (const role of ['miner', 'validator']) {
      const r = await runIota(
        ['setup', '--role', role, '--orchestrator', url, '--threads', '1', '--yes'],
        { cwd: dir },
      );
      expect(r.code).toBe(0);
    }
    pm2('start', CONFIG, '--only', 'iota-miner,iota-validator');
    const first = await until('the miner joins', () => joins(log('iota-miner'))[0]);
    const online = () =>
      (JSON.parse(pm2('jlist')) as Array<{ name: string; pm2_env: { status: string } }>)
        .filter((p) => p.pm2_env.status === 'online')
        .map((p) => p.name)
        .sort();
    expect(online()).toEqual(['iota-miner', 'iota-orchestrator', 'iota-validator']);

    // Restarted, the miner comes back with its key and joins again: one member, not two.
    pm2('restart', 'iota-miner');
    const second = await until('the miner joins again', () => joins(log('iota-miner'))[1]);
    expect(second.stage).toBe(first.stage);
    const st = (await (await request(`${url}/v1/swarm`)).body.json()) as SwarmStatus;
    const id = (await runIota(['keys', 'show', join(dir, 'miner.key')])).stdout.trim();
    expect(st.stages.flatMap((s) => s.miners).map((m) => m.id)).toEqual([id]);
  }, 120_000);
});
