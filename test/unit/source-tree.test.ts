/**
 * The shape of src/: an import graph without circles (type-only imports count: a circle of
 * types is a tangle of concerns even when it costs nothing at run time), roles that never
 * import each other (DESIGN.md section 8), and files short enough to read (STYLE.md).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const SRC = resolve('src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every file each source imports (value, type and re-export imports), inside src/. */
function importGraph(): Map<string, string[]> {
  const files = sources(SRC);
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const deps = importedFiles
      .map((i) => i.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => resolve(dirname(file), spec.replace(/\.js$/, '.ts')))
      .filter((p) => known.has(p));
    graph.set(file, [...new Set(deps)]);
  }
  return graph;
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function circles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(relative(SRC, w));
    } while (w !== v);
    if (scc.length > 1 || graph.get(v)!.includes(v)) out.push(scc.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

describe('import graph of src/', () => {
  const graph = importGraph();

  it('reads the imports of every source file', () => {
    expect(graph.size).toBeGreaterThan(100);
    const coordinator = graph.get(join(SRC, 'orchestrator/swarm/coordinator.ts'));
    expect(coordinator).toContain(join(SRC, 'orchestrator/swarm/scheduler.ts'));
  });

  it('has no import circle, type-only imports included', () => {
    expect(circles(graph)).toEqual([]);
  });

  it('finds a circle when there is one', () => {
    const a = join(SRC, 'a.ts');
    const b = join(SRC, 'b.ts');
    const c = join(SRC, 'c.ts');
    expect(
      circles(
        new Map([
          [a, [b]],
          [b, [c]],
          [c, [a]],
        ]),
      ),
    ).toEqual([['a.ts', 'b.ts', 'c.ts']]);
    expect(circles(new Map([[a, [a]]]))).toEqual([['a.ts']]);
    expect(
      circles(
        new Map([
          [a, [b]],
          [b, []],
        ]),
      ),
    ).toEqual([]);
  });

  it('keeps the roles apart: orchestrator, miner and validator never import each other', () => {
    const roles = ['orchestrator', 'miner', 'validator'];
    const roleOf = (p: string) => roles.find((r) => relative(SRC, p).startsWith(`${r}/`));
    const crossings: string[] = [];
    for (const [file, deps] of graph) {
      const from = roleOf(file);
      for (const d of deps) {
        const to = roleOf(d);
        if (from && to && from !== to)
          crossings.push(`${relative(SRC, file)} -> ${relative(SRC, d)}`);
      }
    }
    expect(crossings).toEqual([]);
  });
});

describe('files of src/', () => {
  it('are at most 450 lines each (Prettier-formatted): a longer one is split by concern', () => {
    const long = sources(SRC)
      .map((f) => ({
        file: relative(SRC, f),
        lines: readFileSync(f, 'utf8').split('\n').length - 1,
      }))
      .filter((f) => f.lines > 450);
    expect(long).toEqual([]);
  });

  it('have no line past 120 characters: a file is not kept short by long lines', () => {
    const wide = sources(SRC).flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .flatMap((l, i) => (l.length > 120 ? [`${relative(SRC, f)}:${i + 1}`] : [])),
    );
    expect(wide).toEqual([]);
  });
});

describe('the README', () => {
  const readme = readFileSync('README.md', 'utf8');

  it('stays under 15 KB: the deep material lives in docs/', () => {
    expect(Buffer.byteLength(readme)).toBeLessThan(15_000);
  });

  it('links only to files that exist', () => {
    const links = [...readme.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)]
      .map((m) => m[1])
      .filter((l) => !/^[a-z]+:/.test(l));
    expect(links.length).toBeGreaterThan(10);
    expect(links.filter((l) => !statSync(l, { throwIfNoEntry: false }))).toEqual([]);
  });
});
