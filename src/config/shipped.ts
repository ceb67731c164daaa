/**
 * The configs shipped in the package (`configs/`): the package's folder, the model configs by
 * name, and each model's run config, as `iota local` and `iota setup` start from them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/**
 * The package's folder: the nearest one above this module with a package.json (this module runs
 * from dist/, from the sources under jest, and from the benches' own build, .bench-build/src/).
 */
export const PACKAGE_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return fileURLToPath(new URL('../../', import.meta.url));
  }
}
export const SHIPPED_MODELS = ['tiny', 'small'] as const;

export function shippedModelFile(name: string): string {
  return join(PACKAGE_ROOT, 'configs', `${name}.yaml`);
}

/**
 * The shipped run config of a model (`configs/runs/<model>.yaml`) as plain data, its relative
 * data folder found from the run file as the loader does (`../../data`: the package's `data/`).
 */
export function shippedRun(model: string): Record<string, unknown> & {
  name: string;
  samples_per_epoch: number;
  data: { corpus: string; dir: string };
} {
  const file = join(PACKAGE_ROOT, 'configs', 'runs', `${model}.yaml`);
  const run = parse(readFileSync(file, 'utf8')) as ReturnType<typeof shippedRun>;
  if (!isAbsolute(run.data.dir)) run.data.dir = resolve(dirname(file), run.data.dir);
  return run;
}
