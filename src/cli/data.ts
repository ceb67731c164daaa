/** `iota data`: prepare token shards from a corpus, and describe a prepared dataset. */
import type { Command } from 'commander';
import ora from 'ora';
import {
  TOKENIZER_NAMES,
  WindowIndex,
  datasetDir,
  expandCorpus,
  loadDataset,
  prepareData,
  assertTokenizerName,
} from '../data/index.js';
import { positiveInt } from './common.js';
import { printJson } from './output.js';

export function registerData(program: Command): void {
  const data = program
    .command('data')
    .description('prepare and inspect training data (token shards)');

  data
    .command('prepare')
    .description(
      'tokenize a corpus into binary shards under OUT/<tokenizer>/ (the bundled demo corpus by default)',
    )
    .option('--tokenizer <name>', `tokenizer: ${TOKENIZER_NAMES.join(', ')}`, 'byte')
    .option(
      '--corpus <paths...>',
      "'demo' for the bundled corpus, or .txt files and folders of them",
      ['demo'],
    )
    .option('--out <dir>', 'parent folder of the dataset', 'data')
    .option('--shard-tokens <n>', 'tokens per shard', positiveInt('--shard-tokens'), 8_000_000)
    .option('--json', 'print the manifest as one JSON object instead of a summary')
    .action(
      async (o: {
        tokenizer: string;
        corpus: string[];
        out: string;
        shardTokens: number;
        json?: boolean;
      }) => {
        assertTokenizerName(o.tokenizer);
        const corpus =
          o.corpus.length === 1 && o.corpus[0] === 'demo'
            ? ('demo' as const)
            : { files: expandCorpus(o.corpus) };
        const spinner =
          o.json || !process.stderr.isTTY
            ? null
            : ora({ text: 'tokenizing', stream: process.stderr }).start();
        const started = performance.now();
        let last = 0;
        const result = await prepareData({
          out: o.out,
          tokenizer: o.tokenizer,
          corpus,
          shardTokens: o.shardTokens,
          onProgress: (p) => {
            const now = performance.now();
            if (spinner && now - last > 100) {
              spinner.text =
                `tokenizing: ${p.docs}/${p.totalDocs} documents, ${p.tokens.toLocaleString()} ` +
                `tokens, ${p.shards} shards`;
              last = now;
            }
          },
        }).catch((e) => {
          spinner?.fail('tokenizing failed');
          throw e;
        });
        const m = result.manifest;
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        const summary =
          `${m.tokens.toLocaleString()} ${m.tokenizer} tokens from ${m.documents} ` +
          `documents in ${m.shards.length} shards at ${result.dir}`;
        spinner?.succeed(result.skipped ? `up to date: ${summary}` : `${summary} (${seconds} s)`);
        if (o.json) printJson({ dir: result.dir, skipped: result.skipped, manifest: m });
        else if (!spinner)
          process.stdout.write(`${result.skipped ? 'up to date: ' : ''}${summary}\n`);
      },
    );

  data
    .command('info')
    .description('describe a prepared dataset: shards, tokens, and windows for a sequence length')
    .argument('[dir]', 'dataset folder (OUT/<tokenizer>)', datasetDir('data', 'byte'))
    .option('--seq <n>', 'sequence length the windows are cut for', positiveInt('--seq'), 64)
    .option('--seed <seed>', 'sampling seed', '0')
    .option('--verify', 'check every shard against its sha256')
    .option('--json', 'print one JSON object')
    .action(
      async (dir: string, o: { seq: number; seed: string; verify?: boolean; json?: boolean }) => {
        const ds = await loadDataset(dir, { verifyHashes: o.verify });
        const windows = new WindowIndex(ds.shards, o.seq, o.seed);
        const info = {
          dir: ds.dir,
          tokenizer: ds.manifest.tokenizer,
          vocab_size: ds.manifest.vocabSize,
          tokens: ds.manifest.tokens,
          documents: ds.manifest.documents,
          shards: ds.shards.map((s) => ({
            name: s.name,
            tokens: s.tokens,
            bytes: s.bytes,
            sha256: s.sha256,
          })),
          seq: o.seq,
          windows: windows.numWindows,
          train_windows: windows.numTrain,
          held_out_windows: windows.numHeldOut,
          verified: Boolean(o.verify),
        };
        if (o.json) return printJson(info);
        console.log(
          `${info.dir}: ${info.tokens.toLocaleString()} ${info.tokenizer} tokens (vocab ` +
            `${info.vocab_size}) from ${info.documents} documents`,
        );
        for (const s of info.shards)
          console.log(
            `  ${s.name}  ${s.tokens.toLocaleString()} tokens  ${s.sha256.slice(0, 16)}…`,
          );
        console.log(
          `windows of ${o.seq + 1} tokens: ${info.windows} (${info.train_windows} for ` +
            `training, ${info.held_out_windows} held out)${o.verify ? '; hashes verified' : ''}`,
        );
      },
    );
}
