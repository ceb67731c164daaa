import { DEMO_SOURCES, demoCorpus, demoCorpusFiles, untagBrown } from '../../../src/data/corpus.js';

describe('demo corpus', () => {
  it('lists its files in a fixed order: sotu, brown, moby-dick', async () => {
    const files = await demoCorpusFiles();
    const again = await demoCorpusFiles();
    expect(again).toEqual(files);
    const sources = [...new Set(files.map((f) => f.source))];
    expect(sources).toEqual(DEMO_SOURCES.map((s) => s.id));
    expect(files[0].id).toBe('1790_george_washington_n.txt');
    expect(files.filter((f) => f.source === 'brown')[0].id).toBe('ca01');
    expect(files.filter((f) => f.source === 'moby-dick').map((f) => f.id)).toContain(
      'chapter_135.txt',
    );
  });

  it('yields non-empty English text from all three sources, with the Brown POS tags stripped', async () => {
    const chars = new Map<string, number>();
    let taggedDocs = 0;
    for await (const doc of demoCorpus()) {
      expect(doc.text.length).toBeGreaterThan(0);
      chars.set(doc.source, (chars.get(doc.source) ?? 0) + doc.text.length);
      // Tags look like `the/at`, `jury/nn-tl` or `./.`; real slashes (`and/or`, `1/c`) stay.
      if (
        doc.source === 'brown' &&
        /\w\/(?:at|nns?|np|vbd|vbz|in|jj|cc|rb)\b|\.\/\./.test(doc.text)
      )
        taggedDocs++;
    }
    expect(taggedDocs).toBe(0);
    expect(chars.get('sotu')).toBeGreaterThan(10_000_000);
    expect(chars.get('brown')).toBeGreaterThan(5_000_000);
    expect(chars.get('moby-dick')).toBeGreaterThan(1_000_000);
  });
});

describe('untagBrown', () => {
  it('rebuilds plain text from word/tag tokens', () => {
    const tagged =
      "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, Mr./np Pye/np ./.\n" +
      "It/pps (/( twice/rb )/) didn't/dod* ./.\n\n\n\tJr./np ./.\n";
    expect(untagBrown(tagged)).toBe(
      'The jury said "no evidence", Mr. Pye.\nIt (twice) didn\'t.\n\nJr.',
    );
  });
});
