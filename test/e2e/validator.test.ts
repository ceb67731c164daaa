/**
 * `iota validator` end to end: honest miners (real processes) beside an adversary (test code:
 * a simulated miner at the body stage that returns random outputs of the right shape), and a
 * validator process replaying every item. The adversary is caught and put on probation; honest
 * miners get no failed verdict; `iota scores` reads the result.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { loadRunConfig } from '../../src/config/index.js';
import { encodeActivation } from '../../src/compute/tensors.js';
import { newIdentity, writeKeyFile } from '../../src/protocol/keys.js';
import type { ScoresReply } from '../../src/protocol/swarm-messages.js';
import { IotaProcess, killAll, runIota } from '../support/cli.js';
import { SimMiner } from '../support/sim-miner.js';
import { writeRun } from '../support/swarm-server.js';

afterAll(killAll);

describe('iota validator', () => {
  it('catches a miner returning random outputs and passes honest ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iota-validator-e2e-'));
    const runFile = writeRun(dir, {
      samples_per_epoch: 16,
      batch: 1,
      in_flight: 2,
      validation: { rate: 1, probation_passes: 2 },
      phases: { drain_s: 60, upload_s: 20, merge_s: 60, lease_s: 5 },
    });
    const validatorKey = join(dir, 'validator.key');
    const validatorId = newIdentity();
    writeKeyFile(validatorKey, validatorId);
    const orch = new IotaProcess(['orchestrator', 'serve', '--run', runFile, '--port', '0', '--state-dir', join(dir, 'state'), '--json', '--set', 'rate_limits.exempt_loopback=true', '--set', `validators=[${validatorId.id}]`]);
    const url = ((await orch.waitFor((e) => e.event === 'listening')) as { url: string }).url;
    const key = (name: string) => {
      const file = join(dir, `${name}.key`);
      writeKeyFile(file, newIdentity());
      return file;
    };
    const honest = [0, 1, 2].map((s) => new IotaProcess(['miner', '--layer', String(s), '--orchestrator', url, '--key', key(`m${s}`), '--json']));
    const validator = new IotaProcess(['validator', '--orchestrator', url, '--key', validatorKey, '--json']);
    await validator.waitFor((e) => e.event === 'started');

    // The adversary: forward outputs and input gradients of the right shape and codec, but random.
    const { run, model } = loadRunConfig(runFile);
    const adversary = new SimMiner(url, run.name);
    await adversary.register('adversary');
    adversary.client.runHash = ((await (await request(`${url}/v1/info`)).body.json()) as { config_hash: string }).config_hash;
    await adversary.join(1);
    adversary.outputFor = (it) => {
      const shape: [number, number, number] = [it.samples.length, model.seq, model.bottleneck];
      const data = new Float32Array(shape[0] * shape[1] * shape[2]).map(() => Math.random() - 0.5);
      return encodeActivation(data, shape, it.kind === 'fwd' ? run.activation_codec : 'f32');
    };
    // Its work is done as fast as it comes, until the validator has failed it.
    const caught = validator.waitFor((e) => e.event === 'verdict' && e.miner === adversary.id && e.passed === false);
    let stop = false;
    void caught.then(() => (stop = true));
    while (!stop) {
      const w = await adversary.work(1);
      for (const it of w.items) await adversary.complete(it, { skipInputs: true }).catch(() => undefined);
      if (w.items.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    const failed = (await caught) as { detail: string; rel_err?: number };
    expect(failed.detail).toMatch(/rel err/);

    // Honest work keeps passing: wait for 20 verdicts on honest miners, then look at the scores.
    await validator.waitFor(() => validator.events.filter((e) => e.event === 'verdict' && e.miner !== adversary.id && e.abstained !== true).length >= 20);
    const honestVerdicts = validator.events.filter((e) => e.event === 'verdict' && e.miner !== adversary.id && e.abstained !== true);
    expect(honestVerdicts.filter((e) => e.passed === false)).toEqual([]);
    const scores = JSON.parse((await runIota(['scores', '--orchestrator', url, '--json'])).stdout) as ScoresReply;
    const bad = scores.scores.find((s) => s.miner === adversary.id)!;
    expect(bad.failures).toBeGreaterThan(0);
    expect(bad.probation).toBe(true);
    for (const s of scores.scores.filter((x) => x.miner !== adversary.id)) expect(s.failures).toBe(0);
    expect(scores.scores.filter((x) => x.miner !== adversary.id).some((x) => x.weight > 0)).toBe(true);

    await adversary.close();
    for (const p of [...honest, validator]) p.kill('SIGTERM');
    expect(await Promise.all([...honest, validator].map((p) => p.exited))).toEqual([0, 0, 0, 0]);
    expect(await orch.kill('SIGTERM')).toBe(0);
  }, 180_000);
});
