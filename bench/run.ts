/**
 * `npm run bench -- NAME [--json] [options]`: runs one benchmark. Each prints a human summary;
 * with --json the last line of stdout is one JSON object with its figures.
 */
import { isIotaError } from '../src/errors.js';

const BENCHES: Record<
  string,
  { about: string; load: () => Promise<{ run(args: string[]): Promise<void> }> }
> = {
  chaos: {
    about:
      'the swarm under churn, store faults, orchestrator crashes, slow links and hostile input: throughput kept, data lost (npm run build first)',
    load: () => import('./chaos.js'),
  },
  disagreement: {
    about:
      'honest disagreement across backends (native, wasm, cpu): the validator threshold it suggests',
    load: () => import('./disagreement.js'),
  },
  load: {
    about:
      '10,000 simulated miners polling every 2 s when idle, open loop: achieved rate, p99 latency, orchestrator CPU, RSS, WAL',
    load: () => import('./load.js'),
  },
  merge: {
    about:
      'per-miner merge traffic relative to the stage size W, for k = 2, 4, 8, 16 simulated miners',
    load: () => import('./merge.js'),
  },
  kernels: {
    about: 'native CPU kernels vs PyTorch: one stage forward + backward + AdamW, tokens/s, GFLOP/s',
    load: () => import('./kernels.js'),
  },
  orchestrator: {
    about: 'signed requests/s and latency from 1,000 simulated miners on loopback',
    load: () => import('./orchestrator.js'),
  },
  validator: {
    about:
      'the validator harness, full: adversaries detected, checks to detect, honest false positives (npm run build first)',
    load: () => import('./validator.js'),
  },
  swarm: {
    about:
      'a swarm of 3 stages x 2 miners on this machine vs one process, same samples: tokens/s ratio, losses, where the time goes (npm run build first)',
    load: () => import('./swarm.js'),
  },
  stage: {
    about: 'one stage forward + backward + AdamW, tokens/s per backend',
    load: () => import('./stage.js'),
  },
};

async function main(): Promise<number> {
  const [name, ...args] = process.argv.slice(2);
  if (!name || !(name in BENCHES)) {
    const list = Object.entries(BENCHES)
      .map(([n, b]) => `  ${n.padEnd(14)} ${b.about}`)
      .join('\n');
    process.stderr.write(`usage: npm run bench -- NAME [--json]\n\nbenchmarks:\n${list}\n`);
    return name ? 2 : 0;
  }
  try {
    await (await BENCHES[name].load()).run(args);
    return 0;
  } catch (e) {
    if (isIotaError(e)) {
      process.stderr.write(`error ${e.code}: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ''}`);
      return 2;
    }
    throw e;
  }
}

process.exitCode = await main();
