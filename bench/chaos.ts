/**
 * `npm run bench -- chaos [--epochs E] [--samples S] [--only a,b] [--json]`: the chaos scenarios
 * of test/chaos/ at bench length, each a real swarm (3 stages x 2 miners on the tiny model, real
 * processes on loopback) against the same run without faults: throughput kept (merged samples
 * per second against the calm run's), faults injected, samples not merged, data lost (allocated
 * samples the ledger does not account for, merges without a manifest, replicas that disagree),
 * and how far the final weights are from single-process training on the merged samples.
 * Scenarios: churn (a random miner SIGKILLed every 8 s and replaced), store faults (5xx, resets,
 * stalls, cut bodies, flipped bytes at 4% each on every store transfer), orchestrator crash (in
 * each phase and across the upload deadline), slow links (one miner per stage at a tenth of the
 * bandwidth and +200 ms), hostile input (10,000 fuzzed requests at the orchestrator during the
 * run), and with `--long-minutes N` the long run: churn for N minutes, every process's memory
 * and descriptors and the database's and store's size read every 30 s. Needs `npm run build`
 * first (the swarm runs dist/).
 */
import { parseArgs } from 'node:util';
import { SimParticipant } from '../test/support/sim-miner.js';
import { fuzz, type FuzzTally, type FuzzTarget } from '../test/chaos/support/fuzzer.js';
import {
  oracleGap,
  removeRun,
  runChaos,
  type ChaosOptions,
  type ChaosResult,
} from '../test/chaos/support/swarm.js';
import { newRequestId } from '../src/protocol/client.js';
import { HEADERS, signRequest } from '../src/protocol/signing.js';

const RUN = 'swarm-test';

/** The fuzzer at a live orchestrator: two registered keys (not in the swarm) sign its calls. */
async function hostile(url: string): Promise<FuzzTally> {
  const [a, b] = [new SimParticipant(url, RUN), new SimParticipant(url, RUN)];
  await a.register('fuzz-a');
  await b.register('fuzz-b');
  const body = '{}';
  const headers = {
    ...signRequest(a.identity, 'POST', '/v1/heartbeat', RUN, body, Date.now()),
    [HEADERS.requestId]: newRequestId(),
    'content-type': 'application/json',
  };
  await a.client.post('/v1/heartbeat', {});
  const target: FuzzTarget = {
    url,
    run: RUN,
    keys: { miner: a.identity, validator: b.identity },
    sent: [{ method: 'POST', path: '/v1/heartbeat', headers, body }],
    storeUrl: `${url}/store/runs/${RUN}/probe/${a.id}.bin?m=P&e=${Date.now() + 60_000}&l=64&s=x`,
  };
  try {
    return await fuzz(target, 10_000);
  } finally {
    await a.close();
    await b.close();
  }
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      epochs: { type: 'string', default: '8' },
      samples: { type: 'string', default: '24' },
      only: { type: 'string', description: 'comma-separated scenario names' },
      'long-minutes': {
        type: 'string',
        default: '0',
        description: 'also the long run: churn (a miner every 30 s) for this many minutes',
      },
      json: { type: 'boolean', default: false },
    },
  });
  const epochs = Number(values.epochs);
  const samplesPerEpoch = Number(values.samples);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const base = { epochs, samplesPerEpoch };
  const scenarios: Array<Omit<ChaosOptions, 'epochs' | 'samplesPerEpoch'>> = [
    { name: 'churn', churnEveryMs: 8000 },
    {
      name: 'store-faults',
      store: {
        stallMs: 500,
        rates: { error: 0.04, reset: 0.04, stall: 0.04, truncate: 0.04, flip: 0.04 },
      },
    },
    {
      name: 'orchestrator-crash',
      runOver: { phases: { drain_s: 60, upload_s: 4, merge_s: 30, lease_s: 3 } },
      crashes: [
        { on: 'item', epoch: 1 },
        { on: 'upload', epoch: 2 },
        { on: 'merge', epoch: 3 },
        { on: 'upload', epoch: 4, downMs: 5000 },
      ],
      // the crash between a change and its answer, made certain (test/chaos/orchestrator-crash)
      api: { loseAnswers: { path: '/v1/report', every: 40, outageMs: 2500 } },
    },
    {
      name: 'slow-links',
      links: {
        fast: { bytesPerSecond: 20e6, latencyMs: 0 },
        slow: { bytesPerSecond: 2e6, latencyMs: 200 },
      },
    },
    { name: 'hostile-input', during: hostile },
  ];
  const longMinutes = Number(values['long-minutes']);
  if (longMinutes > 0)
    scenarios.push({
      name: 'long-run',
      churnEveryMs: 30_000,
      // no epoch kept for good (the tests' runs keep every one for their oracles; the default 10)
      runOver: { schedule: { total_epochs: 1_000_000 }, keep_weights_every: 0 },
      durationMs: longMinutes * 60_000,
      sampleEveryMs: 30_000,
    });
  const only = values.only?.split(',');
  const chosen = scenarios.filter((s) => !only || only.includes(s.name));

  const measure = async (o: Omit<ChaosOptions, 'epochs' | 'samplesPerEpoch'>) => {
    log(`  ${o.name}...`);
    const r = await runChaos({ ...base, ...o, epochs: o.durationMs ? 1e9 : epochs });
    // a long run's gap is read against what rounding alone grows into over as many epochs
    const gaps = await oracleGap(r, r.epochs, r.epochs > 20);
    // the first epoch whose published weights are over 1e-4 from the oracle's, at any stage
    const over = gaps[0].epochs.findIndex((_, e) => gaps.some((g) => g.epochs[e] > 1e-4));
    return {
      r,
      gap: Math.max(...gaps.map((g) => g.gap)),
      firstOver: over < 0 ? null : over + 1,
      orderGap:
        gaps[0].orderGap === undefined ? undefined : Math.max(...gaps.map((g) => g.orderGap!)),
    };
  };
  const calm = await measure({ name: 'calm' });
  log(
    `calm: ${calm.r.samplesPerS.toFixed(2)} merged samples/s over ${calm.r.seconds.toFixed(0)} s`,
  );
  await removeRun(calm.r);
  const rows: Array<Record<string, unknown>> = [];
  for (const sc of chosen) {
    const { r, gap, firstOver, orderGap } = await measure(sc);
    const row: Record<string, unknown> = {
      ...summary(r, gap, calm.r.samplesPerS),
      gap_over_1e4_from_epoch: firstOver,
      ...(orderGap === undefined ? {} : { oracle_order_gap: Number(orderGap.toExponential(2)) }),
    };
    rows.push(row);
    log(
      `${r.name}: kept ${row.throughput_kept_pct}% (${r.samplesPerS.toFixed(2)} samples/s), ` +
        `${r.faultsInjected} faults, ${r.samplesDropped} samples not merged, ` +
        `data lost ${r.dataLost}, oracle gap ${gap.toExponential(1)}`,
    );
    await removeRun(r);
  }
  const out = {
    bench: 'chaos',
    epochs,
    samples_per_epoch: samplesPerEpoch,
    calm_samples_per_s: Number(calm.r.samplesPerS.toFixed(3)),
    scenarios: rows,
  };
  if (values.json) process.stdout.write(`${JSON.stringify(out)}\n`);
}

function summary(r: ChaosResult, gap: number, calm: number): Record<string, unknown> {
  const fuzzed = r.during as FuzzTally | undefined;
  return {
    name: r.name,
    throughput_kept_pct: Number(((100 * r.samplesPerS) / calm).toFixed(1)),
    faults_injected: r.faultsInjected + (fuzzed?.requests ?? 0),
    samples_dropped: r.samplesDropped,
    data_lost: r.dataLost,
    oracle_gap: Number(gap.toExponential(2)),
    seconds: Number(r.seconds.toFixed(1)),
    ...(r.kills ? { miners_killed: r.kills } : {}),
    ...(r.restarts ? { orchestrator_restarts: r.restarts } : {}),
    ...(r.storeFaults.error + r.storeFaults.flip > 0 ? { store_faults: r.storeFaults } : {}),
    ...(r.items.slow.length ? { items: r.items } : {}),
    ...(fuzzed
      ? {
          fuzz_requests: fuzzed.requests,
          fuzz_5xx_or_uncoded: fuzzed.failures.length,
          ...(fuzzed.failures.length ? { fuzz_failures: fuzzed.failures.slice(0, 5) } : {}),
          fuzz_routes: `${fuzzed.routes.length}/${fuzzed.listed.length}`,
        }
      : {}),
    miner_refusals: r.refusals,
    ...(r.samples.length ? { epochs: r.epochs, trend: trend(r) } : {}),
  };
}

/** The long run's readings: the first (after start-up), the last, and the largest. */
function trend(r: ChaosResult): Record<string, unknown> {
  const [first, last] = [r.samples[0], r.samples[r.samples.length - 1]];
  const max = (k: keyof (typeof r.samples)[0]) => Math.max(...r.samples.map((x) => x[k]));
  // a reading at each quarter of the run: flat or still growing
  const quarters = [1, 2, 3].map((q) => r.samples[Math.floor((q * (r.samples.length - 1)) / 4)]);
  return {
    first,
    quarters,
    last,
    max: {
      orchestratorRssMb: max('orchestratorRssMb'),
      minerRssMb: max('minerRssMb'),
      orchestratorFds: max('orchestratorFds'),
      storeMb: max('storeMb'),
      dbMb: max('dbMb'),
    },
  };
}
