/**
 * A prepared dataset on disk: the manifest's shape, and loading it with its shards checked.
 *
 * `<dir>/manifest.json` (written by `prepareData`, see `prepare.ts`) lists the shards in order
 * with their token counts, sizes and sha256; `<dir>/<name>.bin` are the shards (`shard.ts`).
 * A loaded dataset's `shards` feed `WindowIndex` directly.
 */
import { sha256Hex } from '../tensor-io/hash.js';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IotaError } from '../errors.js';
import { SHARD_HEADER_BYTES, readShardHeader } from './shard.js';
import type { TokenizerName } from './tokenizers.js';
import type { ShardInfo } from './windows.js';

export const DATASET_FORMAT = 'iota-dataset';
/** Bump when tokenization, normalisation or separators change: old datasets then rebuild. */
export const DATASET_VERSION = 1;

export interface ShardEntry {
  /** The shard's name: the store key is `runs/<run>/data/<name>.bin`. */
  name: string;
  /** File name next to the manifest: `<name>.bin`. */
  file: string;
  tokens: number;
  bytes: number;
  sha256: string;
}

export interface SourceEntry {
  id: string;
  package?: string;
  version?: string;
  license?: string;
  documents: number;
  /** Characters as UTF-16 code units (JS string length), after normalisation. */
  chars: number;
  /** Tokens of its documents, separators included. */
  tokens: number;
}

export interface DatasetManifest {
  format: typeof DATASET_FORMAT;
  version: number;
  tokenizer: TokenizerName;
  vocabSize: number;
  bytesPerToken: 2 | 4;
  headerBytes: number;
  eosId: number | null;
  /** The token ids appended after every document. */
  separator: number[];
  shardTokens: number;
  /** `key` fingerprints the inputs (package versions and file list, or file contents). */
  corpus: { kind: 'demo' | 'files'; key: string };
  documents: number;
  chars: number;
  tokens: number;
  shards: ShardEntry[];
  sources: SourceEntry[];
}

/** A shard of a loaded dataset: what `WindowIndex` needs, plus where the file is. */
export interface DatasetShard extends ShardInfo {
  file: string;
  path: string;
  bytes: number;
  sha256: string;
}

export interface Dataset {
  dir: string;
  manifest: DatasetManifest;
  shards: DatasetShard[];
}

/**
 * Reads `<dir>/manifest.json` and checks every shard's size and header against it (cheap: 64
 * bytes per shard). `verifyHashes` also re-hashes every shard file in full.
 */
export async function loadDataset(
  dir: string,
  options: { verifyHashes?: boolean } = {},
): Promise<Dataset> {
  const hint = 'Run `iota data prepare` first, and point at the folder that holds manifest.json.';
  let text: string;
  try {
    text = await readFile(join(dir, 'manifest.json'), 'utf8');
  } catch {
    throw new IotaError('E_NO_DATASET', `No dataset manifest in ${dir}.`, hint);
  }
  let manifest: DatasetManifest;
  try {
    manifest = JSON.parse(text) as DatasetManifest;
  } catch {
    throw new IotaError('E_BAD_DATASET', `The dataset manifest in ${dir} is not valid JSON.`, hint);
  }
  if (
    manifest?.format !== DATASET_FORMAT ||
    manifest.version !== DATASET_VERSION ||
    !Array.isArray(manifest.shards)
  ) {
    throw new IotaError(
      'E_BAD_DATASET',
      `${join(dir, 'manifest.json')} is not a version ${DATASET_VERSION} iota dataset manifest.`,
      'Prepare the data again with this version of iota.',
    );
  }

  const shards: DatasetShard[] = [];
  for (const s of manifest.shards) {
    const path = join(dir, String(s.file));
    const fail = (why: string): IotaError =>
      new IotaError('E_BAD_DATASET', `Shard ${path} ${why}.`, 'Prepare the data again.');
    // Names come from a file anyone could edit: keep them to the pattern we write.
    if (!/^shard-\d{5,}$/.test(s.name) || s.file !== `${s.name}.bin`)
      throw fail('has an invalid name in the manifest');
    const handle = await open(path, 'r').catch(() => {
      throw fail('is missing');
    });
    try {
      const { size } = await handle.stat();
      if (size !== s.bytes) throw fail(`has ${size} bytes, the manifest says ${s.bytes}`);
      const head = new Uint8Array(SHARD_HEADER_BYTES);
      await handle.read(head, 0, SHARD_HEADER_BYTES, 0);
      const h = readShardHeader(head);
      if (
        h.tokenizer !== manifest.tokenizer ||
        h.vocabSize !== manifest.vocabSize ||
        h.tokens !== s.tokens ||
        h.bytesPerToken !== manifest.bytesPerToken ||
        h.headerBytes !== manifest.headerBytes
      ) {
        throw fail('has a header that does not match the manifest');
      }
      if (options.verifyHashes && sha256Hex(await readFile(path)) !== s.sha256)
        throw fail('does not match its sha256');
    } finally {
      await handle.close();
    }
    shards.push({
      name: s.name,
      file: s.file,
      path,
      tokens: s.tokens,
      bytes: s.bytes,
      sha256: s.sha256,
      bytesPerToken: manifest.bytesPerToken,
      headerBytes: manifest.headerBytes,
    });
  }
  return { dir, manifest, shards };
}
