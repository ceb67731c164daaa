/** `iota doctor`: what this machine can run, and how fast. */
import os from 'node:os';
import chalk from 'chalk';
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import {
  BACKENDS,
  probeBackend,
  selectBackend,
  timeMatmul,
  type BackendProbe,
} from '../kernels/backends.js';
import { addonPaths, loadNative } from '../kernels/native/loader.js';
import { note, printJson } from './output.js';
import { useBackend } from './common.js';
import { preflight } from './preflight.js';
import { thisProcessHugePages } from './huge-pages.js';

interface BackendReport extends BackendProbe {
  gflops?: number;
  matmul?: string;
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description(
      'check this machine: Node, cores, memory and every compute backend with a timed matmul',
    )
    .option('--json', 'print one JSON object instead of text')
    .option('--size <n>', 'matmul size n for the n x n timing', (v) => Number.parseInt(v, 10), 512)
    .option(
      '--orchestrator <url>',
      'instead: can this machine keep up in that run (its stages trained here, the link to its store)',
    )
    .option(
      '--key <file>',
      'with --orchestrator: the key to register with (default: a throwaway one)',
    )
    .option('--backend <name>', 'with --orchestrator: the compute backend to measure', 'auto')
    .action(
      async (opts: {
        json?: boolean;
        size: number;
        orchestrator?: string;
        key?: string;
        backend: string;
      }) => {
        if (opts.orchestrator) {
          await useBackend(opts.backend, true);
          const r = await preflight(opts.orchestrator.replace(/\/$/, ''), {
            key: opts.key,
            backend: opts.backend,
            log: opts.json ? () => {} : note,
          });
          if (opts.json) printJson(r);
          else console.log(r.verdict.text);
          return;
        }
        const report = await doctor(opts.size);
        if (opts.json) printJson(report);
        else printReport(report);
      },
    );
}

async function doctor(n: number) {
  const backends: BackendReport[] = [];
  for (const name of BACKENDS) {
    const probe: BackendReport = { ...(await probeBackend(name)) };
    if (probe.available) {
      await tf.setBackend(name);
      const t = await timeMatmul(n);
      probe.gflops = round(t.gflops, 2);
      probe.matmul = `${n}x${n} float32, ${t.reps} reps in ${t.seconds.toFixed(2)} s`;
    }
    backends.push(probe);
  }
  const chosen = await selectBackend('auto');
  const loaded = loadNative();
  const native = loaded.ok
    ? { addon: loaded.path, ...loaded.addon.info() }
    : { addon: addonPaths().addon, fix: loaded.reason };
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  return {
    node: process.versions.node,
    node_ok: nodeMajor >= 20,
    platform: `${process.platform}-${process.arch}`,
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    memory_gib: round(os.totalmem() / 2 ** 30, 1),
    tfjs: tf.version.tfjs,
    backends,
    native,
    huge_pages: thisProcessHugePages(),
    chosen: chosen.backend,
  };
}

function printReport(r: Awaited<ReturnType<typeof doctor>>): void {
  const ok = (b: boolean) => (b ? chalk.green('ok  ') : chalk.red('no  '));
  console.log(
    `${ok(r.node_ok)}node ${r.node} (${r.platform})${r.node_ok ? '' : ' — iota needs Node 20 or newer'}`,
  );
  console.log(`    ${r.cpus} cores (${r.cpu_model}), ${r.memory_gib} GiB memory, tfjs ${r.tfjs}`);
  for (const b of r.backends) {
    const speed = b.available ? `${b.gflops} GFLOP/s  (${b.matmul})` : chalk.dim(b.reason ?? '');
    console.log(`${ok(b.available)}${b.name.padEnd(11)} ${speed}`);
  }
  if ('threads' in r.native)
    console.log(
      `    native kernels: ${r.native.threads} ` +
        `thread${r.native.threads === 1 ? '' : 's'}${r.native.pinned ? ' (pinned)' : ''}, ` +
        `${r.native.blas}; --threads or IOTA_THREADS to change`,
    );
  const hp = r.huge_pages;
  console.log(
    `${ok(hp.on)}huge pages for large tensors (GLIBC_TUNABLES; kernel: ${hp.kernel})${hp.hint ? `: ${hp.hint}` : ''}`,
  );
  console.log(`    chosen by default: ${chalk.bold(r.chosen)}`);
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
