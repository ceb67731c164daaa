/** `iota doctor`'s huge-page check: read from GLIBC_TUNABLES and the kernel's THP mode. */
import { hugePages } from '../../../src/cli/huge-pages.js';

const madvise = 'always [madvise] never\n';

describe('huge pages for large allocations', () => {
  it('are on when GLIBC_TUNABLES asks for them, among other tunables', () => {
    expect(hugePages('glibc.malloc.hugetlb=1', madvise)).toEqual({ on: true, kernel: 'madvise' });
    expect(hugePages('glibc.malloc.check=0:glibc.malloc.hugetlb=2', madvise).on).toBe(true);
  });

  it('are off otherwise, with the line that turns them on where the kernel offers them', () => {
    for (const t of [undefined, '', 'glibc.malloc.hugetlb=0', 'glibc.malloc.hugetlb=1x']) {
      const r = hugePages(t, madvise);
      expect(r.on).toBe(false);
      expect(r.hint).toMatch(/^export GLIBC_TUNABLES=glibc\.malloc\.hugetlb=1 /);
    }
  });

  it('give no hint where the kernel has none or cannot say', () => {
    expect(hugePages(undefined, 'always madvise [never]\n')).toEqual({
      on: false,
      kernel: 'never',
    });
    expect(hugePages(undefined, undefined)).toEqual({ on: false, kernel: 'unknown' });
  });
});
