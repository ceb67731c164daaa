/**
 * Long polls of POST /v1/work (work-waits.ts): a miner with nothing to do waits for a change
 * that concerns it instead of polling, wakes when one is committed, and not on others' changes;
 * outside training too (its gradient in, its merge jobs done).
 */
import { once } from 'node:events';
import { SimMiner } from '../../support/sim-miner.js';
import { startSwarmServer, type SwarmServer } from '../../support/swarm-server.js';
import type { WorkReply } from '../../../src/protocol/swarm-messages.js';
import { leaseDue } from '../../../src/orchestrator/swarm/lease-policy.js';
import { MergeWorker } from '../../../src/merge/worker.js';
import { stageSpecs } from '../../../src/config/model.js';
import { stageLayout } from '../../../src/model/params.js';

async function miner(o: SwarmServer, name: string, stage: number): Promise<SimMiner> {
  const m = new SimMiner(o.url, o.coord.cfg.name, undefined, () => o.clock.now);
  await m.register(name);
  m.client.runHash = o.configHash;
  await m.join(stage);
  return m;
}

/** A request and whether it has answered yet. */
function pending<T>(p: Promise<T>): { p: Promise<T>; done: () => boolean } {
  let settled = false;
  const q = p.finally(() => (settled = true));
  return { p: q, done: () => settled };
}

describe('a long poll for work', () => {
  let o: SwarmServer;
  afterEach(async () => o.close());

  it('waits while upstream computes, and answers with the item once its input is reported', async () => {
    o = await startSwarmServer();
    const head = await miner(o, 'head', 0);
    const body = await miner(o, 'body', 1);
    const waiting = once(o.coord.waits, 'wait');
    const poll = pending(body.client.post<WorkReply>('/v1/work', { max: 1, wait_ms: 10_000 }));
    await waiting;
    // The head leases an item: a commit, but nothing for stage 1, so the poll stays.
    const w = await head.work(1);
    expect(w.items).toHaveLength(1);
    expect(o.coord.waits.size).toBe(1);
    expect(poll.done()).toBe(false);
    // The head reports its forward: stage 1 has a ready task, and the poll answers with it.
    await head.complete(w.items[0], { skipInputs: true });
    const r = await poll.p;
    expect(r.items).toMatchObject([{ stage: 1, kind: 'fwd', item: w.items[0].item }]);
    expect(o.coord.waits.size).toBe(0);
    await head.close();
    await body.close();
  });

  it('answers at once when there is work, and when the server closes', async () => {
    o = await startSwarmServer();
    const head = await miner(o, 'head', 0);
    const body = await miner(o, 'body', 1);
    const waited: string[] = [];
    o.coord.waits.on('wait', (m: string) => waited.push(m));
    const now = await head.client.post<WorkReply>('/v1/work', { max: 1, wait_ms: 10_000 });
    expect(now.items).toHaveLength(1);
    expect(waited).toEqual([]);
    const waiting = once(o.coord.waits, 'wait');
    const poll = pending(body.client.post<WorkReply>('/v1/work', { max: 1, wait_ms: 10_000 }));
    await waiting;
    expect(o.coord.waits.size).toBe(1);
    o.coord.waits.close();
    const r = await poll.p;
    expect(r.items).toHaveLength(0);
    expect(r.idle?.reason).toBe('waiting_for_upstream');
    await head.close();
    await body.close();
  });
});

describe('a long poll outside training', () => {
  let o: SwarmServer;
  afterEach(async () => o.close());

  it('waits for the merge once its gradient is in, and for the next step once its jobs are done', async () => {
    // one stage, two miners, a real merge
    o = await startSwarmServer({
      merge: 'real',
      stages: '[[-1, -1]]',
      runOver: { samples_per_epoch: 4, batch: 2 },
    });
    const [a, b] = [await miner(o, 'a', 0), await miner(o, 'b', 0)];
    const model = o.coord.cfg.model;
    const layout = stageLayout(model, stageSpecs(model)[0]).params;
    const opt = o.coord.cfg.run.optimizer;
    const merger = (m: SimMiner) =>
      new MergeWorker({
        client: m.client,
        layout: () => layout,
        adamw: { beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weight_decay },
      });
    // each takes one item of two samples and reports it: the epoch is done, UPLOADING begins
    for (const m of [a, b]) {
      const w = await m.work(1);
      expect(w.items).toHaveLength(1);
      await m.complete(w.items[0]);
    }
    for (let i = 0; i < 20 && o.coord.state.stage(0).phase === 'training'; i++) await o.advance(50);
    expect(o.coord.state.stage(0).phase).toBe('uploading');
    const poll = () => pending(a.client.post<WorkReply>('/v1/work', { max: 1, wait_ms: 10_000 }));

    // a's duty is an answer at once
    const duty = (await a.client.post<WorkReply>('/v1/work', { max: 1, wait_ms: 10_000 })).duty!;
    expect(duty).toBeDefined();
    await a.uploadGradient(duty.epoch, duty.stage, duty.key, duty.samples);
    // with its gradient in, a waits; b's upload starts the merge, and a's poll answers
    let waiting = once(o.coord.waits, 'wait');
    let p = poll();
    await waiting;
    expect(p.done()).toBe(false);
    const bDuty = (await b.work(1)).duty!;
    await b.uploadGradient(bDuty.epoch, bDuty.stage, bDuty.key, bDuty.samples);
    expect((await p.p).phase).toBe('merging');

    // with merge jobs assigned, a is answered at once; once they are done it waits for b's
    const waited: string[] = [];
    o.coord.waits.on('wait', (m: string) => waited.push(m));
    expect((await a.client.post<WorkReply>('/v1/work', { wait_ms: 10_000 })).phase).toBe('merging');
    expect(waited).toEqual([]);
    expect(await merger(a).runOnce()).toBeGreaterThan(0);
    waiting = once(o.coord.waits, 'wait');
    p = poll();
    await waiting;
    expect(p.done()).toBe(false);
    // b's step-1 results complete the step: step 2's jobs wake a
    expect(await merger(b).runOnce()).toBeGreaterThan(0);
    const r = await p.p;
    expect(r.phase).toBe('merging');
    expect(await merger(a).runOnce()).toBeGreaterThan(0);
    await a.close();
    await b.close();
  });
});

describe('a lease due time', () => {
  const rules = { due_factor: 4, due_min_s: 1, lease_s: 15 };
  it('counts the leases its miner already holds, computed before it', () => {
    // 10 units per second, a forward of 4 samples (1 unit each): 400 ms, due 4x after.
    const alone = leaseDue('fwd', 4, 10, rules, 0);
    expect(alone).toBe(1600);
    expect(leaseDue('fwd', 4, 10, rules, 0, 2)).toBe(3 * alone);
  });
});
