/** `iota generate`: sample text from a checkpoint. */
import type { Command } from 'commander';
import { getTokenizer } from '../data/index.js';
import { IotaError } from '../errors.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { generateTokens } from '../model/generate.js';
import { addBackendOption, nonNegativeNumber, positiveInt, useBackend } from './common.js';

export function registerGenerate(program: Command): void {
  const cmd = program
    .command('generate')
    .description('sample text from a checkpoint written by `iota train`')
    .requiredOption('--checkpoint <dir>', 'checkpoint folder (the --out of iota train)')
    .option('--prompt <text>', 'text to continue', '')
    .option('--tokens <n>', 'tokens to generate', positiveInt('--tokens'), 200)
    .option(
      '--temperature <t>',
      'sampling temperature; 0 picks the most likely token',
      nonNegativeNumber('--temperature'),
      0.8,
    )
    .option('--top-k <k>', 'sample among the k most likely tokens', positiveInt('--top-k'), 40)
    .option('--seed <n>', 'sampling seed', '0');
  addBackendOption(cmd).action(
    async (o: {
      checkpoint: string;
      prompt: string;
      tokens: number;
      temperature: number;
      topK: number;
      seed: string;
      backend: string;
    }) => {
      await useBackend(o.backend);
      const { model, meta } = await loadCheckpoint(o.checkpoint);
      const tokenizer = await getTokenizer(model.config.tokenizer);
      const prompt = tokenizer.encode(o.prompt);
      if (prompt.length === 0) prompt.push(tokenizer.eosId ?? 10);
      if (prompt.some((t) => t >= model.config.vocab_size))
        throw new IotaError('E_BAD_PROMPT', 'the prompt holds tokens outside the model vocabulary');
      process.stderr.write(`model ${model.config.name}, trained ${meta.epoch} steps\n`);
      process.stdout.write(o.prompt);
      // Decode incrementally but only print whole characters (a byte token may be half a UTF-8 character).
      const out: number[] = [];
      let printed = '';
      for (const t of generateTokens(model, prompt, {
        tokens: o.tokens,
        temperature: o.temperature,
        topK: o.topK,
        seed: o.seed,
      })) {
        out.push(t);
        const text = tokenizer.decode(out);
        const safe = text.endsWith('\uFFFD') ? text.slice(0, -1) : text;
        if (safe.length > printed.length && safe.startsWith(printed)) {
          process.stdout.write(safe.slice(printed.length));
          printed = safe;
        }
      }
      const rest = tokenizer.decode(out);
      if (rest.startsWith(printed)) process.stdout.write(rest.slice(printed.length));
      process.stdout.write('\n');
      model.dispose();
    },
  );
}
