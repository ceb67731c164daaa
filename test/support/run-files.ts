/** Run configs and corpora for tests and benches that start a swarm. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';

/** A few hundred KB of varied text, the same every time. */
export function writeCorpus(dir: string, chars = 200_000): string {
  mkdirSync(dir, { recursive: true });
  const words = [
    'the',
    'swarm',
    'trains',
    'a',
    'model',
    'stage',
    'by',
    'stage',
    'and',
    'every',
    'miner',
    'reports',
    'its',
    'work',
    'to',
    'orchestrator',
  ];
  let x = 12345;
  let text = '';
  while (text.length < chars) {
    x = (x * 1103515245 + 12345) % 2147483648;
    text += words[x % words.length] + ((x >> 8) % 9 === 0 ? '.\n' : ' ');
  }
  writeFileSync(join(dir, 'corpus.txt'), text);
  return dir;
}

/** Writes a run config for the tiny model over a small corpus in `dir`; returns its path. */
export function writeRun(dir: string, over: Record<string, unknown> = {}, stages?: string): string {
  const corpus = writeCorpus(join(dir, 'corpus'));
  let model = resolve('configs/tiny.yaml');
  if (stages) {
    model = join(dir, 'model.yaml');
    writeFileSync(
      model,
      readFileSync(resolve('configs/tiny.yaml'), 'utf8').replace(
        /^stages:.*$/m,
        `stages: ${stages}`,
      ),
    );
  }
  const run = {
    name: 'swarm-test',
    model,
    seed: 3,
    samples_per_epoch: 8,
    batch: 1,
    in_flight: 2,
    data: { corpus, dir: join(dir, 'data') },
    optimizer: { lr: 0.003 },
    schedule: { total_epochs: 20 },
    phases: { drain_s: 30, upload_s: 20, merge_s: 5, lease_s: 5 },
    merge: { partition_bytes: 65536 },
    // every epoch's weights stay: the oracles read them after the run
    keep_weights_every: 1,
    ...over,
  };
  const file = join(dir, 'run.yaml');
  writeFileSync(file, stringify(run));
  return file;
}
