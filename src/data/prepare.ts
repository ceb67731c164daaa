/**
 * Preparing a dataset: corpus -> tokens -> shard files plus a manifest (read back by
 * `loadDataset` in `dataset.ts`).
 *
 * Layout: `<out>/<tokenizer>/shard-00000.bin`, `shard-00001.bin`, ... (format in `shard.ts`) and
 * `<out>/<tokenizer>/manifest.json` (`DatasetManifest`). Documents are tokenized in corpus order
 * and each is followed by a separator: the tokenizer's end-of-text token where it has one
 * (gpt2, llama3), else the bytes of "\n\n" (byte). Shards are filled to `shardTokens` tokens
 * (the last one is shorter); a document may continue into the next shard.
 *
 * Crash safety and idempotency: every file is written to a temporary name and renamed, and the
 * manifest goes last (after any old one is removed), so a manifest on disk always describes
 * complete shards. A second run with the same tokenizer, shard size and corpus (same package
 * versions, or same file contents) finds the manifest, checks the shard sizes and returns
 * without tokenizing. The manifest holds no timestamps: equal inputs give an identical file.
 */
import { mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IotaError } from '../errors.js';
import {
  DEMO_SOURCES,
  type CorpusFile,
  demoCorpusFiles,
  packageInfo,
  readCorpusFile,
  userCorpusFiles,
} from './corpus.js';
import {
  DATASET_FORMAT,
  DATASET_VERSION,
  type DatasetManifest,
  type ShardEntry,
  type SourceEntry,
} from './dataset.js';
import { SHARD_HEADER_BYTES, bytesPerTokenFor, encodeShard } from './shard.js';
import { getTokenizer } from './tokenizers.js';
import { sha256Hex } from '../tensor-io/hash.js';

export const DEFAULT_SHARD_TOKENS = 8_000_000;

export interface PrepareProgress {
  docs: number;
  totalDocs: number;
  tokens: number;
  shards: number;
}

export interface PrepareOptions {
  /** Parent folder; the dataset goes to `<out>/<tokenizer>/`. */
  out: string;
  tokenizer: string;
  corpus: 'demo' | { files: string[] };
  /** Tokens per shard (the last one is shorter). */
  shardTokens?: number;
  /** Called after every document. */
  onProgress?: (p: PrepareProgress) => void;
}

export interface PrepareResult {
  dir: string;
  manifest: DatasetManifest;
  /** True when an up-to-date dataset was already there. */
  skipped: boolean;
}

/** The folder of the dataset that `prepareData({ out, tokenizer })` writes. */
export function datasetDir(out: string, tokenizer: string): string {
  return join(out, tokenizer);
}

async function corpusKey(kind: 'demo' | 'files', files: CorpusFile[]): Promise<string> {
  const parts: unknown[] = [DATASET_VERSION, kind];
  if (kind === 'demo') {
    // The packages are pinned, so name@version plus the file list identifies the text.
    for (const s of DEMO_SOURCES)
      parts.push(`${s.package}@${(await packageInfo(s.package)).version}`);
    parts.push(files.map((f) => `${f.source}/${f.id}`));
  } else {
    for (const f of files) {
      const bytes = await readFile(f.path).catch((e: Error) => {
        throw new IotaError('E_BAD_CORPUS', `Cannot read corpus file ${f.path}: ${e.message}`);
      });
      parts.push([f.path, sha256Hex(bytes)]);
    }
  }
  return sha256Hex(JSON.stringify(parts));
}

/** Writes `data` to `path` through a temporary file and a rename. */
async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

async function readManifest(dir: string): Promise<DatasetManifest | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as DatasetManifest;
  } catch {
    return undefined;
  }
}

async function shardsPresent(dir: string, m: DatasetManifest): Promise<boolean> {
  for (const s of m.shards) {
    const st = await stat(join(dir, s.file)).catch(() => undefined);
    if (!st || st.size !== s.bytes) return false;
  }
  return true;
}

export async function prepareData(options: PrepareOptions): Promise<PrepareResult> {
  const shardTokens = options.shardTokens ?? DEFAULT_SHARD_TOKENS;
  if (!Number.isSafeInteger(shardTokens) || shardTokens < 1) {
    throw new IotaError(
      'E_BAD_DATASET',
      `Shard size ${shardTokens} tokens is not a positive integer.`,
    );
  }
  const tokenizer = await getTokenizer(options.tokenizer);
  const kind = options.corpus === 'demo' ? 'demo' : 'files';
  const files =
    options.corpus === 'demo' ? await demoCorpusFiles() : userCorpusFiles(options.corpus.files);
  if (files.length === 0) throw new IotaError('E_BAD_CORPUS', 'The corpus has no files.');
  const key = await corpusKey(kind, files);
  const dir = datasetDir(options.out, tokenizer.name);
  await mkdir(dir, { recursive: true });

  const old = await readManifest(dir);
  if (
    old &&
    old.format === DATASET_FORMAT &&
    old.version === DATASET_VERSION &&
    old.tokenizer === tokenizer.name &&
    old.vocabSize === tokenizer.vocabSize &&
    old.shardTokens === shardTokens &&
    old.corpus?.key === key &&
    (await shardsPresent(dir, old))
  ) {
    return { dir, manifest: old, skipped: true };
  }
  // From here on no manifest exists, so a crash cannot leave one that lies.
  await unlink(join(dir, 'manifest.json')).catch(() => undefined);

  const separator = tokenizer.eosId !== undefined ? [tokenizer.eosId] : tokenizer.encode('\n\n');
  const bytesPerToken = bytesPerTokenFor(tokenizer.vocabSize);
  const buffer = bytesPerToken === 2 ? new Uint16Array(shardTokens) : new Uint32Array(shardTokens);
  let filled = 0;
  const shards: ShardEntry[] = [];
  const flush = async (): Promise<void> => {
    const name = `shard-${String(shards.length).padStart(5, '0')}`;
    const bytes = encodeShard(buffer.subarray(0, filled), tokenizer.name, tokenizer.vocabSize);
    await writeAtomic(join(dir, `${name}.bin`), bytes);
    shards.push({
      name,
      file: `${name}.bin`,
      tokens: filled,
      bytes: bytes.length,
      sha256: sha256Hex(bytes),
    });
    filled = 0;
  };
  const append = async (ids: ArrayLike<number>): Promise<void> => {
    for (let i = 0; i < ids.length;) {
      const n = Math.min(ids.length - i, shardTokens - filled);
      for (let k = 0; k < n; k++) buffer[filled + k] = ids[i + k];
      filled += n;
      i += n;
      if (filled === shardTokens) await flush();
    }
  };

  const sources = new Map<string, SourceEntry>();
  let docs = 0;
  let chars = 0;
  let tokens = 0;
  for (const file of files) {
    const text = await readCorpusFile(file);
    const ids = tokenizer.encode(text);
    await append(ids);
    await append(separator);
    const n = ids.length + separator.length;
    const src = sources.get(file.source) ?? { id: file.source, documents: 0, chars: 0, tokens: 0 };
    src.documents++;
    src.chars += text.length;
    src.tokens += n;
    sources.set(file.source, src);
    docs++;
    chars += text.length;
    tokens += n;
    options.onProgress?.({ docs, totalDocs: files.length, tokens, shards: shards.length });
  }
  if (filled > 0) await flush();

  // Shards left from an earlier, larger preparation would confuse anyone listing the folder.
  const keep = new Set(shards.map((s) => s.file));
  for (const f of await readdir(dir)) {
    if (/^shard-\d{5,}\.bin$/.test(f) && !keep.has(f)) await unlink(join(dir, f));
  }

  for (const s of DEMO_SOURCES) {
    const src = sources.get(s.id);
    if (src)
      Object.assign(src, {
        package: s.package,
        version: (await packageInfo(s.package)).version,
        license: s.license,
      });
  }
  const manifest: DatasetManifest = {
    format: DATASET_FORMAT,
    version: DATASET_VERSION,
    tokenizer: tokenizer.name,
    vocabSize: tokenizer.vocabSize,
    bytesPerToken,
    headerBytes: SHARD_HEADER_BYTES,
    eosId: tokenizer.eosId ?? null,
    separator,
    shardTokens,
    corpus: { kind, key },
    documents: docs,
    chars,
    tokens,
    shards,
    sources: [...sources.values()],
  };
  await writeAtomic(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return { dir, manifest, skipped: false };
}
