/**
 * Whether this process asked glibc for transparent huge pages on its large allocations: a
 * `small` tail allocates 100 MB tensors per item, and with 4 KB pages their page faults and TLB
 * misses cost 20-30% (docs/performance.md). glibc reads GLIBC_TUNABLES when a process starts,
 * so the setting is an environment variable, and `iota doctor` says how to set it.
 */
import { readFileSync } from 'node:fs';

export interface HugePages {
  /** GLIBC_TUNABLES asks for huge pages (glibc.malloc.hugetlb=1 or 2) */
  on: boolean;
  /** the kernel's transparent huge page mode (always, madvise, never), or unknown */
  kernel: string;
  hint?: string;
}

const KERNEL_MODE = '/sys/kernel/mm/transparent_hugepage/enabled';

/** `tunables`: GLIBC_TUNABLES; `kernelText`: the content of KERNEL_MODE (undefined: unreadable). */
export function hugePages(tunables: string | undefined, kernelText: string | undefined): HugePages {
  const on = (tunables ?? '').split(':').some((t) => /^glibc\.malloc\.hugetlb=[12]$/.test(t));
  const kernel = /\[(\w+)\]/.exec(kernelText ?? '')?.[1] ?? 'unknown';
  if (on || kernel === 'never' || kernel === 'unknown') return { on, kernel };
  return {
    on,
    kernel,
    hint: 'export GLIBC_TUNABLES=glibc.malloc.hugetlb=1 before starting iota: large models train 20-30% faster',
  };
}

/** This process's setting. */
export function thisProcessHugePages(): HugePages {
  let text: string | undefined;
  try {
    text = readFileSync(KERNEL_MODE, 'utf8');
  } catch {
    text = undefined;
  }
  return hugePages(process.env.GLIBC_TUNABLES, text);
}
