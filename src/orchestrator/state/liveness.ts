/**
 * When each miner was last heard from and how fast it works: measurements, not acknowledged
 * state, so they live in memory and reach the database when flushed (every tick). A crash
 * forgets at most one tick of them, which only delays a silence verdict.
 */
import type { MemberRow } from './swarm-rows.js';

interface Measured {
  seen: number;
  rate?: number;
  /** samples done since the last flush */
  done: number;
}

export class Liveness {
  private readonly miners = new Map<string, Measured>();

  seen(miner: string, now: number): void {
    const l = this.miners.get(miner);
    if (l) l.seen = Math.max(l.seen, now);
    else this.miners.set(miner, { seen: now, done: 0 });
  }

  recordRate(miner: string, rate: number, samples: number, now: number): void {
    this.seen(miner, now);
    const l = this.miners.get(miner)!;
    l.rate = rate;
    l.done += samples;
  }

  /** A member row as stored, with what was measured since the last flush. */
  overlay(r: MemberRow): MemberRow {
    const l = this.miners.get(r.miner);
    return l
      ? {
          ...r,
          last_seen: Math.max(r.last_seen, l.seen),
          rate: l.rate ?? r.rate,
          done: r.done + l.done,
        }
      : r;
  }

  /** Hands every measurement to `write` and forgets them. */
  flush(write: (miner: string, seen: number, rate: number | null, done: number) => void): void {
    for (const [miner, l] of this.miners) write(miner, l.seen, l.rate ?? null, l.done);
    this.miners.clear();
  }
}
