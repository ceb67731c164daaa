/**
 * Hostile participants of a running swarm (test code, never options of the shipped miner),
 * beside `adversaries.ts`' cheats at the work itself: one that refuses every item it is given,
 * and one that takes work and sits on it while heartbeating. (The forger of merge norms is an
 * `Adversary` of kind `forged_norms`.)
 */
import { SimMiner } from './sim-miner.js';

/** Claims every input it receives is bad. */
export class Refuser extends SimMiner {
  refusals = 0;

  async play(): Promise<number> {
    // A long poll, as honest miners make: polling every 50 ms it lost every item to them (woken
    // by the commit that made the item ready) in a short run, and was never seen refusing.
    const w = await this.work(1, 2000);
    for (const it of w.items) {
      await this.client
        .post('/v1/refuse', { lease: it.lease, code: 'E_BAD_TENSOR', message: 'it has NaN' })
        .then(() => this.refusals++)
        .catch(() => undefined);
    }
    return w.items.length;
  }
}

/** Takes as much work as it is given and never reports any, heartbeating all along. */
export class Hoarder extends SimMiner {
  taken = 0;
  private beat?: NodeJS.Timeout;

  async play(): Promise<number> {
    this.beat ??= setInterval(() => void this.heartbeat().catch(() => undefined), 500);
    const w = await this.work(2);
    this.taken += w.items.length;
    return w.items.length;
  }

  override async close(): Promise<void> {
    clearInterval(this.beat);
    await super.close();
  }
}
