/**
 * Chaos, load (the short variant of `npm run bench -- load`): 1,000 registered simulated miners
 * against one orchestrator process, open loop as a swarm's miners behave (an idle miner asks for
 * work every 2 s, one holding an item reports it 500 ms later). Every request is answered, the
 * work flows (items leased and reported), and the orchestrator stays within its memory bound.
 * How fast is the bench's question, not this test's.
 */
import { runLoad } from '../../bench/load.js';

let r: Record<string, number | string>;

beforeAll(async () => {
  r = await runLoad({
    miners: 1000,
    pollMs: 2000,
    workMs: 500,
    seconds: 6,
    connections: 32,
    log: () => {},
  });
  process.stderr.write(`load: ${JSON.stringify(r)}\n`);
}, 180_000);

describe('load', () => {
  it('answered every request of 1,000 miners, and work flowed: items leased and reported', () => {
    expect(r.errors).toBe(0);
    expect(r.achieved_requests_per_s).toBeGreaterThan(0);
    expect(r.reports).toBeGreaterThan(0);
  });

  it('kept the orchestrator within its memory bound (2 GiB)', () => {
    expect(r.server_peak_rss_mb).toBeGreaterThan(0);
    expect(r.server_peak_rss_mb).toBeLessThanOrEqual(2048);
  });
});
