/** The data layer's public API: tokenizers, shards, windows and sampling, corpora, datasets. */
export {
  TOKENIZER_NAMES,
  assertTokenizerName,
  byteTokenizer,
  getTokenizer,
  isTokenizerName,
  type Tokenizer,
  type TokenizerName,
} from './tokenizers.js';
export {
  SHARD_HEADER_BYTES,
  SHARD_MAGIC,
  SHARD_VERSION,
  bytesPerTokenFor,
  decodeShard,
  decodeTokens,
  encodeShard,
  readShardHeader,
  type ShardHeader,
} from './shard.js';
export { MAX_PERMUTATION_SIZE, Permutation } from './permutation.js';
export {
  WindowIndex,
  readWindow,
  type ByteRange,
  type ShardInfo,
  type WindowLocation,
} from './windows.js';
export { LocalWindows } from './local.js';
export {
  DEMO_SOURCES,
  demoCorpus,
  demoCorpusFiles,
  expandCorpus,
  readCorpusFile,
  readDocuments,
  untagBrown,
  userCorpusFiles,
  type CorpusDocument,
  type CorpusFile,
  type DemoSource,
  type DemoSourceId,
} from './corpus.js';
export {
  DATASET_FORMAT,
  DATASET_VERSION,
  loadDataset,
  type Dataset,
  type DatasetManifest,
  type DatasetShard,
  type ShardEntry,
  type SourceEntry,
} from './dataset.js';
export {
  DEFAULT_SHARD_TOKENS,
  datasetDir,
  prepareData,
  type PrepareOptions,
  type PrepareProgress,
  type PrepareResult,
} from './prepare.js';
