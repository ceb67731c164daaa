/**
 * Where a miner's time goes, summed per kind of work (items run concurrently, so the sums may
 * pass the wall time): computing (forward, the tail's forward and backward, a backward with
 * its recompute of the forward, the epoch's gradient sum), reading inputs, encoding outputs,
 * hashing uploads, sending them, calls to the orchestrator, merging (and of it: reading inputs,
 * computing, writing results), loading weights, and waiting for work.
 */
export interface Timing {
  forward_ms: number;
  tail_ms: number;
  backward_ms: number;
  gradient_ms: number;
  inputs_ms: number;
  encode_ms: number;
  hash_ms: number;
  upload_ms: number;
  calls_ms: number;
  merge_ms: number;
  merge_read_ms: number;
  merge_compute_ms: number;
  merge_write_ms: number;
  weights_ms: number;
  idle_ms: number;
}

export class Stopwatch {
  readonly ms: Timing = {
    forward_ms: 0,
    tail_ms: 0,
    backward_ms: 0,
    gradient_ms: 0,
    inputs_ms: 0,
    encode_ms: 0,
    hash_ms: 0,
    upload_ms: 0,
    calls_ms: 0,
    merge_ms: 0,
    merge_read_ms: 0,
    merge_compute_ms: 0,
    merge_write_ms: 0,
    weights_ms: 0,
    idle_ms: 0,
  };

  /** Awaits `p`, adding the time it took to `what`. */
  async time<T>(what: keyof Timing, p: Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await p;
    } finally {
      this.ms[what] += performance.now() - t0;
    }
  }

  /** Runs `fn`, adding the time it took to `what`. */
  timeSync<T>(what: keyof Timing, fn: () => T): T {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.ms[what] += performance.now() - t0;
    }
  }

  /** The sums, rounded to whole ms. */
  snapshot(): Timing {
    return Object.fromEntries(
      Object.entries(this.ms).map(([k, v]) => [k, Math.round(v)]),
    ) as unknown as Timing;
  }
}
