import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../../../src/data/dataset.js';
import { prepareData } from '../../../src/data/prepare.js';
import { decodeShard } from '../../../src/data/shard.js';
import { getTokenizer } from '../../../src/data/tokenizers.js';
import { WindowIndex, readWindow } from '../../../src/data/windows.js';

let root: string;
let files: string[];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'iota-data-'));
  files = [join(root, 'one.txt'), join(root, 'two.txt')];
  await writeFile(files[0], 'The quick brown fox jumps over the lazy dog.\r\n');
  await writeFile(files[1], 'Pack my box with five dozen liquor jugs. '.repeat(20));
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('prepareData and loadDataset', () => {
  it('writes shards of at most shardTokens tokens, documents separated by "\\n\\n" for byte', async () => {
    const out = join(root, 'byte-out');
    const progress: number[] = [];
    const { dir, manifest, skipped } = await prepareData({
      out,
      tokenizer: 'byte',
      corpus: { files },
      shardTokens: 300,
      onProgress: (p) => progress.push(p.docs),
    });
    expect(skipped).toBe(false);
    expect(dir).toBe(join(out, 'byte'));
    expect(progress).toEqual([1, 2]);
    expect(manifest.separator).toEqual([10, 10]);
    // 44 + 2 and 819 + 2 bytes (the trailing space and CRLF are trimmed): 867 tokens.
    expect(manifest.shards.map((s) => s.tokens)).toEqual([300, 300, 267]);
    const all = Buffer.concat(
      await Promise.all(
        manifest.shards.map(async (s) => {
          const { tokens } = decodeShard(await readFile(join(dir, s.file)));
          expect(tokens.length).toBe(s.tokens);
          return Buffer.from(Uint8Array.from(tokens));
        }),
      ),
    ).toString('utf8');
    expect(all).toBe(
      `The quick brown fox jumps over the lazy dog.\n\n${'Pack my box with five dozen liquor jugs. '.repeat(20).trimEnd()}\n\n`,
    );
    expect(manifest.sources).toEqual([
      { id: 'files', documents: 2, chars: manifest.chars, tokens: 867 },
    ]);
  });

  it('separates documents with the end-of-text token for gpt2', async () => {
    const { dir, manifest } = await prepareData({
      out: join(root, 'gpt2-out'),
      tokenizer: 'gpt2',
      corpus: { files },
    });
    const gpt2 = await getTokenizer('gpt2');
    expect(manifest).toMatchObject({
      tokenizer: 'gpt2',
      vocabSize: 50257,
      bytesPerToken: 2,
      eosId: 50256,
      separator: [50256],
    });
    const { tokens } = decodeShard(await readFile(join(dir, manifest.shards[0].file)));
    expect(tokens.filter((t) => t === 50256).length).toBe(2);
    expect(gpt2.decode(tokens.subarray(0, tokens.indexOf(50256)))).toBe(
      'The quick brown fox jumps over the lazy dog.',
    );
  });

  it('skips a second run with the same inputs and rebuilds when a file changes', async () => {
    const out = join(root, 'again');
    const first = await prepareData({
      out,
      tokenizer: 'byte',
      corpus: { files },
      shardTokens: 100,
    });
    const second = await prepareData({
      out,
      tokenizer: 'byte',
      corpus: { files },
      shardTokens: 100,
    });
    expect(second.skipped).toBe(true);
    expect(second.manifest).toEqual(first.manifest);
    const changed = join(root, 'changed.txt');
    await writeFile(changed, 'short');
    const third = await prepareData({
      out,
      tokenizer: 'byte',
      corpus: { files: [changed] },
      shardTokens: 100,
    });
    expect(third.skipped).toBe(false);
    expect(third.manifest.shards.length).toBe(1);
    const loaded = await loadDataset(third.dir, { verifyHashes: true });
    expect(loaded.shards.map((s) => s.file)).toEqual(['shard-00000.bin']);
  });

  it('loads a dataset whose windows read by byte range match the shards', async () => {
    const { dir } = await prepareData({
      out: join(root, 'load'),
      tokenizer: 'byte',
      corpus: { files },
      shardTokens: 256,
    });
    const ds = await loadDataset(dir, { verifyHashes: true });
    const idx = new WindowIndex(ds.shards, 15, 'seed');
    for (let w = 0; w < idx.numWindows; w++) {
      const { shard, start, end } = idx.byteRange(w);
      const bytes = await readFile(join(dir, `${shard}.bin`));
      const { tokenStart } = idx.locate(w);
      const whole = decodeShard(bytes).tokens;
      expect(Array.from(readWindow(bytes.subarray(start, end), 2, { expectTokens: 16 }))).toEqual(
        Array.from(whole.subarray(tokenStart, tokenStart + 16)),
      );
    }
  });

  it('refuses a missing manifest, a resized shard and a tampered shard', async () => {
    await expect(loadDataset(join(root, 'nowhere'))).rejects.toMatchObject({
      code: 'E_NO_DATASET',
    });
    const { dir, manifest } = await prepareData({
      out: join(root, 'tamper'),
      tokenizer: 'byte',
      corpus: { files },
    });
    const path = join(dir, manifest.shards[0].file);
    const bytes = await readFile(path);
    bytes[100] ^= 1;
    await writeFile(path, bytes);
    await expect(loadDataset(dir)).resolves.toBeDefined();
    await expect(loadDataset(dir, { verifyHashes: true })).rejects.toMatchObject({
      code: 'E_BAD_DATASET',
    });
    await writeFile(path, bytes.subarray(0, bytes.length - 2));
    await expect(loadDataset(dir)).rejects.toMatchObject({ code: 'E_BAD_DATASET' });
  });

  it('refuses a missing input file with E_BAD_CORPUS', async () => {
    await expect(
      prepareData({
        out: join(root, 'missing'),
        tokenizer: 'byte',
        corpus: { files: [join(root, 'absent.txt')] },
      }),
    ).rejects.toMatchObject({ code: 'E_BAD_CORPUS' });
  });

  it('refuses an unknown tokenizer before writing anything', async () => {
    await expect(
      prepareData({ out: join(root, 'bad'), tokenizer: 'nope', corpus: { files } }),
    ).rejects.toMatchObject({ code: 'E_BAD_TOKENIZER' });
  });
});
