/**
 * Tokenizers: text <-> token ids, behind one small interface.
 *
 * - `byte`: the UTF-8 bytes of the text, vocabulary 256, no end-of-text token. Needs nothing,
 *   so the `tiny` config trains without loading any vocabulary.
 * - `gpt2`: GPT-2's BPE (tiktoken's `r50k_base`) from `gpt-tokenizer`, vocabulary 50,257,
 *   `<|endoftext|>` = 50256.
 * - `llama3`: Llama 3's BPE from `llama3-tokenizer-js`, vocabulary 128,256,
 *   `<|end_of_text|>` = 128001. Its vocabulary is under Meta's Llama 3 license.
 *
 * The two BPE packages are imported lazily (`import()`), so code that only uses `byte` never
 * parses their multi-megabyte vocabularies (llama3 takes about half a second to load).
 *
 * Text that happens to contain a special-token string (`<|endoftext|>`) is encoded as plain
 * text, never as the special token: only `prepareData` places end-of-text tokens, so a corpus
 * cannot forge document boundaries.
 */
import { IotaError } from '../errors.js';

export const TOKENIZER_NAMES = ['byte', 'gpt2', 'llama3'] as const;
export type TokenizerName = (typeof TOKENIZER_NAMES)[number];

export interface Tokenizer {
  readonly name: TokenizerName;
  /** Every id is in [0, vocabSize). */
  readonly vocabSize: number;
  /** The end-of-text id that separates documents, where the vocabulary has one. */
  readonly eosId?: number;
  encode(text: string): number[];
  /** Refuses ids outside [0, vocabSize) with `E_BAD_TOKEN`. */
  decode(ids: ArrayLike<number>): string;
}

export function isTokenizerName(name: string): name is TokenizerName {
  return (TOKENIZER_NAMES as readonly string[]).includes(name);
}

/** Throws `E_BAD_TOKENIZER` (with the known names as hint) for anything else. */
export function assertTokenizerName(name: string): TokenizerName {
  if (!isTokenizerName(name)) {
    throw new IotaError(
      'E_BAD_TOKENIZER',
      `Unknown tokenizer "${name}".`,
      `Use one of: ${TOKENIZER_NAMES.join(', ')}.`,
    );
  }
  return name;
}

function checkIds(name: string, ids: ArrayLike<number>, vocabSize: number): number[] {
  const out = new Array<number>(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new IotaError(
        'E_BAD_TOKEN',
        `Token id ${id} at position ${i} is outside the ${name} vocabulary [0, ${vocabSize}).`,
      );
    }
    out[i] = id;
  }
  return out;
}

/** The byte tokenizer is synchronous: configs with `tokenizer: byte` need no `await`. */
export function byteTokenizer(): Tokenizer {
  return BYTE;
}

const BYTE: Tokenizer = {
  name: 'byte',
  vocabSize: 256,
  encode(text: string): number[] {
    return Array.from(Buffer.from(text, 'utf8'));
  },
  decode(ids: ArrayLike<number>): string {
    return Buffer.from(checkIds('byte', ids, 256)).toString('utf8');
  },
};

async function loadGpt2(): Promise<Tokenizer> {
  const bpe = await import('gpt-tokenizer/encoding/r50k_base');
  const vocabSize = bpe.vocabularySize;
  // An empty disallowed set: special-token strings in the text are plain text (see top).
  const options = { disallowedSpecial: new Set<string>() };
  return {
    name: 'gpt2',
    vocabSize,
    eosId: 50256,
    encode: (text) => bpe.encode(text, options),
    decode: (ids) => bpe.decode(checkIds('gpt2', ids, vocabSize)),
  };
}

/** The parts of llama3-tokenizer-js we use; `specialTokenRegex` is real but missing from its types. */
interface Llama3Module {
  vocabById: string[];
  encode(
    text: string,
    options: { bos: boolean; eos: boolean; specialTokenRegex?: RegExp },
  ): number[];
  decode(ids: number[]): string;
  getSpecialTokenId(token: string): number;
}

async function loadLlama3(): Promise<Tokenizer> {
  const mod = (await import('llama3-tokenizer-js')).default as unknown as Llama3Module;
  const vocabSize = mod.vocabById.length;
  // No BOS/EOS per call (prepareData places EOS between documents); a regex that never matches
  // keeps special-token strings in the text as plain text.
  const options = { bos: false, eos: false, specialTokenRegex: /(?!)/g };
  return {
    name: 'llama3',
    vocabSize,
    eosId: mod.getSpecialTokenId('<|end_of_text|>'),
    encode: (text) => mod.encode(text, options),
    decode: (ids) => mod.decode(checkIds('llama3', ids, vocabSize)),
  };
}

const loaded = new Map<TokenizerName, Promise<Tokenizer>>();

/** Loads (once per process) and returns the named tokenizer. */
export function getTokenizer(name: string): Promise<Tokenizer> {
  let tokenizer: Promise<Tokenizer>;
  try {
    const known = assertTokenizerName(name);
    const cached = loaded.get(known);
    if (cached) return cached;
    tokenizer =
      known === 'byte' ? Promise.resolve(BYTE) : known === 'gpt2' ? loadGpt2() : loadLlama3();
    loaded.set(known, tokenizer);
    // A failed load is not cached, so a later call can try again.
    tokenizer.catch(() => loaded.delete(known));
  } catch (e) {
    return Promise.reject(e);
  }
  return tokenizer;
}
