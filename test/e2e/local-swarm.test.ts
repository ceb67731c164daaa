/**
 * A whole swarm on one machine with the shipped node config (configs/node.yaml: its rate
 * limits as they ship, no exemption for loopback), as a newcomer starts it: an orchestrator,
 * 3 stages x 2 miners and a validator as real processes. Twenty epochs, and no process exits.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { newIdentity, writeKeyFile } from '../../src/protocol/keys.js';
import type { SwarmStatus } from '../../src/protocol/swarm-messages.js';
import { IotaProcess, killAll } from '../support/cli.js';
import { writeRun } from '../support/run-files.js';

afterAll(killAll);

const EPOCHS = 20;

describe('a local swarm on the shipped node config', () => {
  it(`runs ${EPOCHS} epochs with 3 stages x 2 miners and a validator, and no process exits`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iota-local-swarm-'));
    // The run settings of configs/runs/tiny.yaml, on a small corpus and fewer samples.
    const runFile = writeRun(dir, {
      samples_per_epoch: 16,
      batch: 2,
      in_flight: 2,
      optimizer: { lr: 3e-3, weight_decay: 0.1, clip: 1 },
      phases: { drain_s: 20, upload_s: 30, merge_s: 60, lease_s: 15 },
    });
    const validator = newIdentity();
    writeKeyFile(join(dir, 'validator.key'), validator);
    const orch = new IotaProcess([
      'orchestrator',
      'serve',
      '--run',
      runFile,
      '--node',
      'configs/node.yaml',
      '--port',
      '0',
      '--state-dir',
      join(dir, 'state'),
      '--validator',
      validator.id,
      '--json',
    ]);
    const url = ((await orch.waitFor((e) => e.event === 'listening')) as { url: string }).url;
    const env = { IOTA_PROCESSES: '7' };
    const procs = [0, 0, 1, 1, 2, 2].map((stage, i) => {
      const key = join(dir, `m${i}.key`);
      writeKeyFile(key, newIdentity());
      return new IotaProcess(
        ['miner', '--layer', String(stage), '--orchestrator', url, '--key', key, '--json'],
        { env },
      );
    });
    procs.push(
      new IotaProcess(
        ['validator', '--orchestrator', url, '--key', join(dir, 'validator.key'), '--json'],
        { env },
      ),
    );
    const all = [orch, ...procs];
    // Whichever comes first: the run reaching its epoch, or any process exiting.
    const exited = Promise.race(all.map((p, i) => p.exited.then((code) => ({ process: i, code }))));
    const reached = procs[0].waitFor((e) => e.event === 'weights' && e.epoch === EPOCHS);
    const first = await Promise.race([reached.then(() => 'reached' as const), exited]);
    expect(first).toBe('reached');
    const st = (await (await request(`${url}/v1/swarm`)).body.json()) as SwarmStatus;
    expect(st.epoch).toBeGreaterThanOrEqual(EPOCHS);
    // The swarm's traffic, merges included, fits the limits as shipped: nobody was refused for it.
    const metrics = await (await request(`${url}/metrics`)).body.text();
    expect(metrics).not.toMatch(/iota_requests_refused_total\{code="E_RATE_LIMITED"\} [1-9]/);
    // The validator checked work, and every process was alive to the end.
    expect(procs[6].events.some((e) => e.event === 'verdict')).toBe(true);
    const codes = await Promise.all(procs.map((p) => p.kill('SIGTERM')));
    expect(codes).toEqual(procs.map(() => 0));
    expect(await orch.kill('SIGTERM')).toBe(0);
  }, 400_000);
});
