/**
 * `iota miner` end to end: real processes on loopback (an orchestrator with the local store,
 * miners on the tiny model with the byte tokenizer), driven by their JSON events.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { loadRunConfig } from '../../src/config/index.js';
import { newIdentity, writeKeyFile } from '../../src/protocol/keys.js';
import type { SwarmStatus } from '../../src/protocol/swarm-messages.js';
import { encodeActivation } from '../../src/compute/tensors.js';
import { IotaProcess, killAll, serveArgs } from '../support/cli.js';
import { relErr } from '../support/model.js';
import { singleProcessWeights, storedWeights } from '../support/oracle.js';
import { SimMiner } from '../support/sim-miner.js';
import { writeRun } from '../support/swarm-server.js';

afterAll(killAll);

interface Swarm {
  dir: string;
  runFile: string;
  orch: IotaProcess;
  url: string;
  key(): string;
  miner(layer: number | 'auto', extra?: string[]): IotaProcess;
}

async function swarm(runOver: Record<string, unknown>): Promise<Swarm> {
  const dir = mkdtempSync(join(tmpdir(), 'iota-miner-e2e-'));
  const runFile = writeRun(dir, runOver);
  const orch = new IotaProcess(
    serveArgs(runFile, dir, '--set', 'rate_limits.exempt_loopback=true'),
  );
  const url = ((await orch.waitFor((e) => e.event === 'listening')) as { url: string }).url;
  let n = 0;
  const key = () => {
    const file = join(dir, `miner-${n++}.key`);
    writeKeyFile(file, newIdentity());
    return file;
  };
  return {
    dir,
    runFile,
    orch,
    url,
    key,
    miner: (layer, extra = []) =>
      new IotaProcess([
        'miner',
        '--layer',
        String(layer),
        '--orchestrator',
        url,
        '--key',
        key(),
        '--json',
        ...extra,
      ]),
  };
}

async function status(url: string, from = 0): Promise<SwarmStatus> {
  return (await request(`${url}/v1/swarm?ledger_from=${from}`)).body.json() as Promise<SwarmStatus>;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('iota miner', () => {
  it('3 stages x 2 miners train 8 epochs: loss falls, replicas agree, a killed miner and a joiner leave the ledger whole', async () => {
    const s = await swarm({
      // 48 one-sample items per epoch: an epoch's training outlasts a miner process's start-up
      samples_per_epoch: 48,
      batch: 1,
      in_flight: 2,
      optimizer: { lr: 0.01, clip: 1 },
      schedule: { total_epochs: 20 },
      phases: { drain_s: 60, upload_s: 8, merge_s: 60, lease_s: 3 },
    });
    const miners = [0, 1, 2].flatMap((stage) => [
      s.miner(stage, ['--max-epochs', '8']),
      s.miner(stage, ['--max-epochs', '8']),
    ]);
    const [victim] = [miners[3]];
    // SIGKILL a body miner once it has done backward work in epoch 3 (so it holds credited
    // samples): its third backward, as one alone was sometimes settled before the kill landed.
    let bwd3 = 0;
    await victim.waitFor(
      (e) => e.event === 'item' && e.epoch === 3 && e.kind === 'bwd' && ++bwd3 === 3,
    );
    await victim.kill('SIGKILL');
    // A new miner is started for that stage when the stage enters epoch 4.
    await miners[2].waitFor((e) => e.event === 'weights' && e.epoch === 4);
    const newcomer = s.miner(1, ['--max-epochs', '4']);
    const survivors = [...miners.filter((m) => m !== victim), newcomer];
    const codes = await Promise.all(survivors.map((m) => m.exited));
    expect(codes).toEqual(survivors.map(() => 0));

    const st = await status(s.url);
    for (let epoch = 0; epoch < 8; epoch++) {
      for (let stage = 0; stage < 3; stage++) {
        const rows = st.ledger.filter((l) => l.epoch === epoch && l.stage === stage);
        expect(rows.reduce((a, r) => a + r.samples, 0)).toBe(48); // merged + lost + dropped = allocated
      }
    }
    const e3 = st.ledger.filter((l) => l.epoch === 3 && l.stage === 1);
    expect(e3.find((l) => l.state === 'lost_with_miner')?.samples ?? 0).toBeGreaterThan(0);
    // The newcomer worked in epoch 4.
    expect(newcomer.events.some((e) => e.event === 'item' && e.epoch === 4)).toBe(true);
    // The tail's mean loss fell by at least 15% from the first epoch to the eighth.
    const losses = survivors
      .concat(victim)
      .flatMap((m) => m.events.filter((e) => e.event === 'loss')) as Array<{
      epoch: number;
      loss: number;
    }>;
    const first = mean(losses.filter((l) => l.epoch === 0).map((l) => l.loss));
    const last = mean(losses.filter((l) => l.epoch === 7).map((l) => l.loss));
    expect(last).toBeLessThanOrEqual(0.85 * first);
    // After every merge the replicas of a stage hold byte-identical weights.
    const seen = new Map<string, Set<string>>();
    for (const m of [...survivors, victim]) {
      for (const e of m.events.filter((x) => x.event === 'weights')) {
        const k = `${e.stage}/${e.epoch}`;
        seen.set(k, (seen.get(k) ?? new Set()).add(e.sha256 as string));
      }
    }
    expect([...seen.values()].every((hashes) => hashes.size === 1)).toBe(true);
    expect(seen.size).toBeGreaterThanOrEqual(3 * 9);
    expect(await s.orch.kill('SIGTERM')).toBe(0);
  }, 300_000);

  // Backwards from kept forwards (the default) and by recompute (--recompute) both give the
  // oracle's weights.
  for (const [name, clip, recompute] of [
    ['inactive', 0, false],
    ['active, miners recomputing', 0.05, true],
  ] as const) {
    it(`after epoch 2 the swarm's weights equal iota train on the same samples (clip ${name})`, async () => {
      const s = await swarm({
        samples_per_epoch: 8,
        batch: 2,
        in_flight: 2,
        activation_codec: 'f32',
        optimizer: { lr: 0.01, clip },
        schedule: { total_epochs: 20 },
        phases: { drain_s: 60, upload_s: 30, merge_s: 60, lease_s: 10 },
      });
      const flags = ['--max-epochs', '2', ...(recompute ? ['--recompute'] : [])];
      const miners = [s.miner(0, flags), s.miner(1, flags), s.miner(1, flags), s.miner(2, flags)];
      expect(await Promise.all(miners.map((m) => m.exited))).toEqual([0, 0, 0, 0]);
      // every backward of stages 0 and 1 (8 samples per epoch each) kept or recomputed its forward
      const backwards = miners.slice(0, 3).map((m) => {
        const b = m.events.find((e) => e.event === 'stopped')!.backwards as Record<string, number>;
        return recompute ? b.recomputed : b.kept;
      });
      expect(backwards[0]).toBe(16);
      expect(backwards[1] + backwards[2]).toBe(16);
      const st = await status(s.url);
      for (const e of [0, 1])
        expect(
          st.ledger.filter((l) => l.epoch === e).map((l) => [l.stage, l.state, l.samples]),
        ).toEqual([
          [0, 'merged', 8],
          [1, 'merged', 8],
          [2, 'merged', 8],
        ]);
      expect(await s.orch.kill('SIGTERM')).toBe(0);

      const single = await singleProcessWeights(s.dir, s.runFile, 2);
      single.forEach((w, stage) => {
        const swarmW = storedWeights(s.dir, 2, stage);
        expect(relErr(swarmW.w, w)).toBeLessThanOrEqual(1e-4);
        expect(relErr(swarmW.w, storedWeights(s.dir, 0, stage).w)).toBeGreaterThan(1e-3);
      });
      const clips = [0, 1, 2].map((st2) => storedWeights(s.dir, 1, st2).clip!);
      if (clip > 0) expect(Math.min(...clips)).toBeLessThan(1);
      else expect(clips).toEqual([1, 1, 1]);
    });
  }

  it('refuses a tensor with NaN, the wrong shape or the wrong hash, reports it, and carries on', async () => {
    const s = await swarm({
      samples_per_epoch: 64,
      batch: 1,
      in_flight: 8,
      phases: { drain_s: 60, upload_s: 30, merge_s: 60, lease_s: 10 },
    });
    const { model } = loadRunConfig(s.runFile);
    const shape: [number, number, number] = [1, model.seq, model.bottleneck];
    const good = () =>
      encodeActivation(
        new Float32Array(shape[0] * shape[1] * shape[2]).map(() => Math.random() - 0.5),
        shape,
        'bf16',
      );
    // Uploads are bound to the exact size of a good output (the orchestrator refuses any
    // other), so what a producer can still get wrong is what is inside those bytes.
    const n = shape[0] * shape[1] * shape[2];
    const bad: Array<() => Uint8Array> = [
      () => encodeActivation(new Float32Array(n).fill(Number.NaN), shape, 'bf16'),
      () => encodeActivation(new Float32Array(n), [1, shape[2], shape[1]], 'bf16'),
      () => encodeActivation(new Float32Array(n), [2, shape[1] / 2, shape[2]], 'bf16'),
      good, // uploaded intact, then its bytes are changed in the store: the consumer sees the wrong hash
    ];
    const healthPort = 20_000 + Math.floor(Math.random() * 20_000);
    const consumer = s.miner(1, ['--health-port', String(healthPort)]);
    await consumer.waitFor((e) => e.event === 'joined');
    expect(
      await (await request(`http://127.0.0.1:${healthPort}/healthz`)).body.json(),
    ).toMatchObject({ ok: true, stage: 1, epoch: 0 });
    const producer = new SimMiner(s.url, 'swarm-test');
    await producer.register('adversary');
    producer.client.runHash = (
      (await (await request(`${s.url}/v1/info`)).body.json()) as { config_hash: string }
    ).config_hash;
    await producer.join(0);
    let made = 0;
    producer.outputFor = () => (made < bad.length ? bad[made++]() : good());
    producer.afterUpload = (it, key) => {
      if (made === 4 && it.item === 3) {
        const file = join(s.dir, 'state', 'store', 'objects', key);
        const bytes = readFileSync(file);
        bytes[bytes.length - 1] ^= 0xff;
        writeFileSync(file, bytes);
      }
    };
    // Six items (the run allows 8 in flight, so the producer is never held up by its own).
    for (let i = 0; i < 6; i++) {
      const w = await producer.work(1);
      expect(w.items).toHaveLength(1);
      await producer.complete(w.items[0], { skipInputs: true });
    }
    await consumer.waitFor(
      (e) => e.event === 'item' && e.kind === 'fwd' && (e.item as number) >= 4,
    );
    // Items are worked on concurrently, so refusals arrive in any order: compare them by item.
    const refused = consumer.events
      .filter((e) => e.event === 'refused')
      .sort((a, b) => (a.item as number) - (b.item as number));
    expect(refused.map((e) => [e.item, e.code])).toEqual([
      [0, 'E_BAD_TENSOR'],
      [1, 'E_BAD_TENSOR'],
      [2, 'E_BAD_TENSOR'],
      [3, 'E_HASH_MISMATCH'],
    ]);
    const st = await status(s.url);
    expect(
      st.ledger.find((l) => l.epoch === 0 && l.stage === 1 && l.state === 'dropped:bad_input')
        ?.samples,
    ).toBe(4);
    await producer.close();
    expect(await consumer.kill('SIGTERM')).toBe(0);
    expect(await s.orch.kill('SIGTERM')).toBe(0);
  });
});
