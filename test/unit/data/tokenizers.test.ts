import { isIotaError } from '../../../src/errors.js';
import { TOKENIZER_NAMES, byteTokenizer, getTokenizer } from '../../../src/data/tokenizers.js';

const TEXT =
  'Call me Ishmael. Some years ago, never mind how long precisely: 1851!\n\tTabs, "quotes" & <tags>.';

describe('tokenizers', () => {
  it.each(TOKENIZER_NAMES)(
    '%s round-trips ASCII text and keeps ids inside its vocabulary',
    async (name) => {
      const t = await getTokenizer(name);
      expect(t.name).toBe(name);
      const ids = t.encode(TEXT);
      expect(ids.length).toBeGreaterThan(0);
      expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < t.vocabSize)).toBe(true);
      expect(t.decode(ids)).toBe(TEXT);
      expect(t.decode(Int32Array.from(ids))).toBe(TEXT);
    },
  );

  it('has the expected vocabularies and end-of-text ids', async () => {
    const [b, g, l] = await Promise.all(TOKENIZER_NAMES.map((n) => getTokenizer(n)));
    expect([b.vocabSize, b.eosId]).toEqual([256, undefined]);
    expect([g.vocabSize, g.eosId]).toEqual([50257, 50256]);
    expect([l.vocabSize, l.eosId]).toEqual([128256, 128001]);
    expect(g.decode([g.eosId!])).toBe('<|endoftext|>');
  });

  it('byte encodes UTF-8 bytes and round-trips non-ASCII text', () => {
    const t = byteTokenizer();
    expect(t.encode('aé')).toEqual([0x61, 0xc3, 0xa9]);
    expect(t.decode(t.encode('naïve — café'))).toBe('naïve — café');
  });

  it('encodes special-token strings in the text as plain text', async () => {
    const g = await getTokenizer('gpt2');
    const l = await getTokenizer('llama3');
    expect(g.encode('a<|endoftext|>b')).not.toContain(50256);
    expect(l.encode('a<|end_of_text|>b')).not.toContain(128001);
    expect(g.decode(g.encode('a<|endoftext|>b'))).toBe('a<|endoftext|>b');
  });

  it('returns the same instance on every call', async () => {
    expect(await getTokenizer('gpt2')).toBe(await getTokenizer('gpt2'));
  });

  it('refuses an unknown name with E_BAD_TOKENIZER and lists the known ones', async () => {
    const e = await getTokenizer('gpt5').catch((x: unknown) => x);
    expect(isIotaError(e) && e.code).toBe('E_BAD_TOKENIZER');
    expect(isIotaError(e) && e.hint).toContain('byte, gpt2, llama3');
  });

  it('refuses to decode ids outside the vocabulary', () => {
    expect(() => byteTokenizer().decode([65, 256])).toThrow(
      expect.objectContaining({ code: 'E_BAD_TOKEN' }),
    );
    expect(() => byteTokenizer().decode([-1])).toThrow(
      expect.objectContaining({ code: 'E_BAD_TOKEN' }),
    );
  });
});
