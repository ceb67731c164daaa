import { Stopwatch } from '../../../src/miner/timing.js';

describe('miner stopwatch', () => {
  it('adds the time of awaited and synchronous work to its kind, and keeps it when the work fails', async () => {
    const w = new Stopwatch();
    const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
    await w.time('upload_ms', wait(30));
    await w.time('upload_ms', wait(30));
    await expect(
      w.time(
        'calls_ms',
        wait(20).then(() => Promise.reject(new Error('x'))),
      ),
    ).rejects.toThrow('x');
    const t0 = performance.now();
    expect(
      w.timeSync('encode_ms', () => {
        while (performance.now() - t0 < 15);
        return 7;
      }),
    ).toBe(7);
    const s = w.snapshot();
    expect(s.upload_ms).toBeGreaterThanOrEqual(58);
    expect(s.calls_ms).toBeGreaterThanOrEqual(18);
    expect(s.encode_ms).toBeGreaterThanOrEqual(15);
    expect(s.forward_ms).toBe(0);
    expect(Number.isInteger(s.upload_ms)).toBe(true);
  });
});
