/**
 * Token shards: the on-disk (and in-store) format of tokenized text.
 *
 * A shard file is a fixed 64-byte header followed by the tokens. All integers little-endian.
 *
 * | offset | size | field                                                               |
 * |-------:|-----:|---------------------------------------------------------------------|
 * |      0 |    8 | magic, ASCII `IOTASHRD`                                             |
 * |      8 |    4 | u32 format version = 1                                              |
 * |     12 |    4 | u32 header bytes = 64 (where the tokens start)                      |
 * |     16 |   16 | tokenizer name, ASCII, zero-padded (`byte`, `gpt2`, `llama3`)       |
 * |     32 |    4 | u32 vocabulary size V (every token is < V)                          |
 * |     36 |    4 | u32 bytes per token: 2 when V <= 65536, else 4                      |
 * |     40 |    8 | u64 token count T (at most 2^53 - 1)                                |
 * |     48 |   16 | reserved, zero                                                      |
 * |     64 |  T*b | the tokens, u16 or u32 each                                         |
 *
 * The file is exactly `64 + T * b` bytes. Token i lies at bytes `[64 + i*b, 64 + (i+1)*b)`,
 * so any run of tokens can be fetched with one HTTP Range request and decoded on its own
 * (see `windows.ts`) without reading the header again: its fields are in the dataset manifest.
 * A fixed header (rather than, say, JSON) keeps that offset arithmetic trivial in any language.
 */
import { IotaError } from '../errors.js';

export const SHARD_MAGIC = 'IOTASHRD';
export const SHARD_VERSION = 1;
export const SHARD_HEADER_BYTES = 64;
const NAME_BYTES = 16;
/** Token ids are handed to tfjs as int32, so the vocabulary must fit below 2^31. */
const MAX_VOCAB = 2 ** 31;

export interface ShardHeader {
  version: number;
  headerBytes: number;
  tokenizer: string;
  vocabSize: number;
  bytesPerToken: 2 | 4;
  tokens: number;
}

function bad(message: string, hint?: string): IotaError {
  return new IotaError('E_BAD_SHARD', message, hint);
}

/** 2 bytes per token when every id fits in a u16, else 4. */
export function bytesPerTokenFor(vocabSize: number): 2 | 4 {
  return vocabSize <= 65536 ? 2 : 4;
}

function checkVocab(vocabSize: number): void {
  if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > MAX_VOCAB) {
    throw bad(`Vocabulary size ${vocabSize} is not an integer in [1, 2^31].`);
  }
}

/** Builds a whole shard file: header plus tokens. Refuses ids outside [0, vocabSize). */
export function encodeShard(
  tokens: ArrayLike<number>,
  tokenizer: string,
  vocabSize: number,
): Uint8Array {
  checkVocab(vocabSize);
  if (!/^[\x21-\x7e]{1,16}$/.test(tokenizer)) {
    throw bad(
      `Tokenizer name "${tokenizer}" must be 1 to ${NAME_BYTES} printable ASCII characters.`,
    );
  }
  const bpt = bytesPerTokenFor(vocabSize);
  const count = tokens.length;
  const bytes = new Uint8Array(SHARD_HEADER_BYTES + count * bpt);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < SHARD_MAGIC.length; i++) bytes[i] = SHARD_MAGIC.charCodeAt(i);
  view.setUint32(8, SHARD_VERSION, true);
  view.setUint32(12, SHARD_HEADER_BYTES, true);
  for (let i = 0; i < tokenizer.length; i++) bytes[16 + i] = tokenizer.charCodeAt(i);
  view.setUint32(32, vocabSize, true);
  view.setUint32(36, bpt, true);
  view.setUint32(40, count % 2 ** 32, true);
  view.setUint32(44, Math.floor(count / 2 ** 32), true);

  let o = SHARD_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t >= vocabSize) {
      throw bad(`Token ${t} at position ${i} is outside the vocabulary [0, ${vocabSize}).`);
    }
    // Byte by byte: independent of the host's endianness, and as fast as DataView here.
    bytes[o] = t & 0xff;
    bytes[o + 1] = (t >>> 8) & 0xff;
    if (bpt === 4) {
      bytes[o + 2] = (t >>> 16) & 0xff;
      bytes[o + 3] = (t >>> 24) & 0xff;
    }
    o += bpt;
  }
  return bytes;
}

/**
 * Parses and checks the header. Needs only the first 64 bytes, so it works on a prefix read
 * of a large file; `decodeShard` checks the length against the token count.
 */
export function readShardHeader(bytes: Uint8Array): ShardHeader {
  if (bytes.length < SHARD_HEADER_BYTES) {
    throw bad(
      `Shard is truncated: ${bytes.length} bytes, shorter than its ${SHARD_HEADER_BYTES}-byte header.`,
    );
  }
  const magic = String.fromCharCode(...bytes.subarray(0, 8));
  if (magic !== SHARD_MAGIC) {
    throw bad('Not a token shard (bad magic).', 'Token shards are written by `iota data prepare`.');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== SHARD_VERSION) {
    throw bad(
      `Shard format version ${version} is not supported (this build reads version ${SHARD_VERSION}).`,
      'Prepare the data again with this version of iota.',
    );
  }
  const headerBytes = view.getUint32(12, true);
  if (headerBytes !== SHARD_HEADER_BYTES) {
    throw bad(`Shard header size ${headerBytes} is not ${SHARD_HEADER_BYTES}.`);
  }
  const nameField = bytes.subarray(16, 16 + NAME_BYTES);
  const end = nameField.indexOf(0);
  const tokenizer = String.fromCharCode(...nameField.subarray(0, end < 0 ? NAME_BYTES : end));
  if (
    !/^[\x21-\x7e]{1,16}$/.test(tokenizer) ||
    (end >= 0 && nameField.subarray(end).some((b) => b !== 0))
  ) {
    throw bad('Shard tokenizer name is not zero-padded printable ASCII.');
  }
  const vocabSize = view.getUint32(32, true);
  checkVocab(vocabSize);
  const bytesPerToken = view.getUint32(36, true);
  if (bytesPerToken !== bytesPerTokenFor(vocabSize)) {
    throw bad(
      `Shard stores ${bytesPerToken} bytes per token; vocabulary ${vocabSize} needs ${bytesPerTokenFor(vocabSize)}.`,
    );
  }
  const tokens = view.getUint32(40, true) + view.getUint32(44, true) * 2 ** 32;
  if (!Number.isSafeInteger(tokens)) throw bad(`Shard token count ${tokens} is too large.`);
  return { version, headerBytes, tokenizer, vocabSize, bytesPerToken, tokens };
}

/**
 * Decodes little-endian tokens (u16 or u32) into an Int32Array, the dtype tfjs takes for ids.
 * With `vocabSize`, refuses ids outside the vocabulary.
 */
export function decodeTokens(
  bytes: Uint8Array,
  bytesPerToken: number,
  vocabSize?: number,
): Int32Array {
  if (bytesPerToken !== 2 && bytesPerToken !== 4)
    throw bad(`Bytes per token must be 2 or 4, not ${bytesPerToken}.`);
  if (bytes.length % bytesPerToken !== 0) {
    throw bad(`${bytes.length} bytes is not a whole number of ${bytesPerToken}-byte tokens.`);
  }
  const n = bytes.length / bytesPerToken;
  const out = new Int32Array(n);
  const limit = vocabSize ?? MAX_VOCAB;
  for (let i = 0, o = 0; i < n; i++, o += bytesPerToken) {
    let t = bytes[o] | (bytes[o + 1] << 8);
    if (bytesPerToken === 4) t = (t | (bytes[o + 2] << 16)) + bytes[o + 3] * 2 ** 24;
    if (t >= limit)
      throw bad(`Token ${t} at position ${i} is outside the vocabulary [0, ${limit}).`);
    out[i] = t;
  }
  return out;
}

/** Parses a whole shard file: checks the header, the exact length and every token. */
export function decodeShard(bytes: Uint8Array): { header: ShardHeader; tokens: Int32Array } {
  const header = readShardHeader(bytes);
  const expected = header.headerBytes + header.tokens * header.bytesPerToken;
  if (bytes.length !== expected) {
    const what = bytes.length < expected ? 'truncated' : 'longer than its header says';
    throw bad(
      `Shard is ${what}: ${bytes.length} bytes, expected ${expected} for ${header.tokens} tokens.`,
    );
  }
  const tokens = decodeTokens(
    bytes.subarray(header.headerBytes),
    header.bytesPerToken,
    header.vocabSize,
  );
  return { header, tokens };
}
