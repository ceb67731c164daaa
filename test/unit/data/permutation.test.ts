import { Permutation } from '../../../src/data/permutation.js';

describe('Permutation', () => {
  it.each([1, 2, 3, 7, 16, 1000, 4097])(
    'is a bijection of [0, %i) and invert undoes permute',
    (n) => {
      const p = new Permutation(n, 'seed');
      const seen = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const y = p.permute(i);
        expect(Number.isInteger(y) && y >= 0 && y < n).toBe(true);
        seen[y]++;
        expect(p.invert(y)).toBe(i);
      }
      expect(seen.every((c) => c === 1)).toBe(true);
    },
  );

  it('gives the same mapping for the same seed, and a numeric seed equals its decimal string', () => {
    const a = new Permutation(1000, 42);
    const b = new Permutation(1000, 42);
    const c = new Permutation(1000, '42');
    for (let i = 0; i < 1000; i++) {
      expect(b.permute(i)).toBe(a.permute(i));
      expect(c.permute(i)).toBe(a.permute(i));
    }
  });

  it('differs between seeds', () => {
    const a = new Permutation(1000, 'a');
    const b = new Permutation(1000, 'b');
    let same = 0;
    for (let i = 0; i < 1000; i++) if (a.permute(i) === b.permute(i)) same++;
    expect(same).toBeLessThan(20);
  });

  it('refuses sizes outside [1, 2^48] and indices outside the domain', () => {
    const bad = expect.objectContaining({ code: 'E_BAD_PERMUTATION' });
    expect(() => new Permutation(0, 1)).toThrow(bad);
    expect(() => new Permutation(2 ** 48 + 1, 1)).toThrow(bad);
    expect(() => new Permutation(2.5, 1)).toThrow(bad);
    expect(() => new Permutation(10, 1).permute(10)).toThrow(bad);
    expect(() => new Permutation(10, 1).invert(-1)).toThrow(bad);
  });
});
