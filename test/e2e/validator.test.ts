/**
 * The validator's harness, short version: honest miners (real processes) beside adversaries
 * (test code: each computes the honest result with the real model, then cheats one way) and a
 * validator process replaying every item and every gradient upload. Every adversary is caught and put on probation;
 * honest miners get no failed verdict over at least 50 checks; `iota scores` shows it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { loadRunConfig } from '../../src/config/index.js';
import { newIdentity, writeKeyFile } from '../../src/protocol/keys.js';
import type { ScoresReply } from '../../src/protocol/swarm-messages.js';
import { ADVERSARIES, Adversary } from '../support/adversaries.js';
import { IotaProcess, killAll, runIota } from '../support/cli.js';
import { writeRun } from '../support/swarm-server.js';

afterAll(killAll);

describe('iota validator', () => {
  it('catches every adversary and never fails an honest miner', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iota-validator-e2e-'));
    const runFile = writeRun(dir, {
      samples_per_epoch: 24,
      batch: 1,
      in_flight: 2,
      validation: { rate: 1, upload_rate: 1, probation_passes: 2 },
      phases: { drain_s: 60, upload_s: 10, merge_s: 60, lease_s: 5 },
    });
    const validatorKey = join(dir, 'validator.key');
    const validatorId = newIdentity();
    writeKeyFile(validatorKey, validatorId);
    const orch = new IotaProcess(['orchestrator', 'serve', '--run', runFile, '--port', '0', '--state-dir', join(dir, 'state'), '--json', '--set', 'rate_limits.exempt_loopback=true', '--set', `validators=[${validatorId.id}]`]);
    const url = ((await orch.waitFor((e) => e.event === 'listening')) as { url: string }).url;
    // Honest miners on mixed backends (the validator replays on the fastest one it has).
    const honestIds: string[] = [];
    const honest = (['native', 'wasm', 'native'] as const).map((backend, s) => {
      const file = join(dir, `m${s}.key`);
      const id = newIdentity();
      writeKeyFile(file, id);
      honestIds.push(id.id);
      return new IotaProcess(['miner', '--layer', String(s), '--orchestrator', url, '--key', file, '--json', '--backend', backend]);
    });
    const validator = new IotaProcess(['validator', '--orchestrator', url, '--key', validatorKey, '--json']);
    await validator.waitFor((e) => e.event === 'started');

    const { run, model } = loadRunConfig(runFile);
    const hash = ((await (await request(`${url}/v1/info`)).body.json()) as { config_hash: string }).config_hash;
    const adversaries = ADVERSARIES.map((kind) => new Adversary(url, run.name, kind, kind === 'lying_loss' ? 2 : 1, model, run));
    for (const a of adversaries) await a.start(hash);
    const caught = new Map<string, Record<string, unknown>>();
    const deadline = Date.now() + 240_000; // generous: CI runs other suites beside this one
    // Every adversary works until the validator has failed it.
    await Promise.all(
      adversaries.map(async (a) => {
        const verdict = validator.waitFor((e) => e.event === 'verdict' && e.miner === a.id && e.passed === false);
        void verdict.then((v) => caught.set(a.kind, v));
        while (!caught.has(a.kind) && Date.now() < deadline) {
          if ((await a.play()) === 0) await new Promise((r) => setTimeout(r, 50));
        }
      }),
    );
    expect(ADVERSARIES.filter((k) => !caught.has(k))).toEqual([]);
    // Stale weights only differ once the weights have moved on: caught from epoch 1.
    expect(caught.get('stale_weights')!.epoch as number).toBeGreaterThanOrEqual(1);
    // The subtle ones fail by measured error, not by a malformed tensor.
    for (const k of ['int8_roundtrip', 'skipped_block', 'stale_weights', 'copy_input'] as const) expect(caught.get(k)!.detail).toMatch(/rel err/);
    expect(caught.get('lying_loss')!.detail).toMatch(/loss/);
    expect(caught.get('free_rider')!).toMatchObject({ kind: 'upload', detail: expect.stringMatching(/gradient sum/) });

    const honestVerdicts = () => validator.events.filter((e) => e.event === 'verdict' && honestIds.includes(e.miner as string) && e.abstained !== true);
    await validator.waitFor(() => honestVerdicts().length >= 50);
    expect(honestVerdicts().filter((e) => e.passed === false)).toEqual([]);

    // Evaluation: a validator chains the merged stages over held-out windows; `iota status` shows it.
    const ev = (await validator.waitFor((e) => e.event === 'eval')) as { epoch: number; loss: number };
    expect(ev.epoch).toBeGreaterThanOrEqual(1);
    expect(ev.loss).toBeGreaterThan(0);
    expect(ev.loss).toBeLessThan(10);
    const status = await runIota(['status', '--orchestrator', url]);
    expect(status.stdout).toMatch(new RegExp(`held-out loss: .*e${ev.epoch} ${ev.loss.toFixed(3)}`));

    const scores = JSON.parse((await runIota(['scores', '--orchestrator', url, '--json'])).stdout) as ScoresReply;
    for (const a of adversaries) {
      const s = scores.scores.find((x) => x.miner === a.id)!;
      expect([a.kind, s.failures > 0, s.probation]).toEqual([a.kind, true, true]);
    }
    for (const id of honestIds) expect(scores.scores.find((x) => x.miner === id)?.failures).toBe(0);
    expect(scores.scores.filter((x) => honestIds.includes(x.miner)).every((x) => x.weight > 0)).toBe(true);

    await Promise.all(adversaries.map((a) => a.close()));
    for (const p of [...honest, validator]) p.kill('SIGTERM');
    expect(await Promise.all([...honest, validator].map((p) => p.exited))).toEqual([0, 0, 0, 0]);
    expect(await orch.kill('SIGTERM')).toBe(0);
  }, 330_000);
});
