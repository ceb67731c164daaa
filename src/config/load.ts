/**
 * Loads the three kinds of config: YAML file, then environment overrides, then flag
 * overrides, then defaults, then validation; the result is deeply frozen. Every problem is
 * reported at once, each naming the file (or variable or flag), the field and what is wrong.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, parseDocument } from 'yaml';
import type { TSchema } from '@sinclair/typebox';
import { Value, type ValueError } from '@sinclair/typebox/value';
import { IotaError } from '../errors.js';
import { ModelConfigSchema, modelConfigProblems, type ModelConfig } from './model.js';
import { RunConfigSchema, runConfigProblems, type RunConfig } from './run.js';
import { NodeConfigSchema, type NodeConfig } from './node.js';

export type ConfigKind = 'model' | 'run' | 'node';

export interface Overrides {
  /** environment to read `IOTA_<KIND>__<FIELD>[__<SUBFIELD>]` variables from */
  env?: Record<string, string | undefined>;
  /** `field.sub=value` assignments from `--set` flags; values are YAML scalars */
  set?: string[];
}

const SCHEMAS: Record<ConfigKind, TSchema> = {
  model: ModelConfigSchema,
  run: RunConfigSchema,
  node: NodeConfigSchema,
};
/** Names IOTA's own configs use, accepted on input and renamed. */
const ALIASES: Record<ConfigKind, Record<string, string>> = {
  model: { splits: 'stages' },
  run: {},
  node: {},
};

export function loadModelConfig(file: string, o: Overrides = {}): ModelConfig {
  return loadConfig('model', file, o) as ModelConfig;
}

export function loadNodeConfig(file: string | undefined, o: Overrides = {}): NodeConfig {
  return loadConfig('node', file, o) as NodeConfig;
}

export interface LoadedRun {
  run: RunConfig;
  model: ModelConfig;
  /** absolute path of the model config the run names */
  modelFile: string;
}

/** A run config and the model config it names (resolved relative to the run file). */
export function loadRunConfig(
  file: string,
  o: Overrides = {},
  modelOverrides: Overrides = {},
): LoadedRun {
  let run = loadConfig('run', file, o) as RunConfig;
  // Like the model, the data folder is found from the run file, whatever the working folder.
  if (!isAbsolute(run.data.dir))
    run = deepFreeze({
      ...structuredClone(run),
      data: { ...run.data, dir: resolve(dirname(file), run.data.dir) },
    });
  const modelFile = resolve(dirname(file), run.model);
  return Object.freeze({ run, model: loadModelConfig(modelFile, modelOverrides), modelFile });
}

/** Loads one config; `file` undefined means defaults plus overrides (node configs only need nothing else). */
export function loadConfig(kind: ConfigKind, file: string | undefined, o: Overrides = {}): unknown {
  const origin = file ?? `(default ${kind} config)`;
  let value: Record<string, unknown> = file === undefined ? {} : readYamlObject(file, kind);
  value = applyAliases(kind, value, origin);
  for (const [field, raw, from] of overridesFor(kind, o)) setPath(value, field, raw, from);
  return validate(kind, value, origin);
}

/** Validates an in-memory config object (e.g. one embedded in a checkpoint). */
export function validateConfig<K extends ConfigKind>(
  kind: K,
  value: unknown,
  origin: string,
): K extends 'model' ? ModelConfig : K extends 'run' ? RunConfig : NodeConfig {
  const v = applyAliases(kind, structuredClone(value) as Record<string, unknown>, origin);
  return validate(kind, v, origin) as never;
}

function validate(kind: ConfigKind, input: Record<string, unknown>, origin: string): unknown {
  const schema = SCHEMAS[kind];
  const value = Value.Default(schema, input) as Record<string, unknown>;
  const problems = leafErrors([...Value.Errors(schema, value)]).map(
    (e) => [fieldName(e.path), describe(e)] as [string, string],
  );
  if (problems.length === 0) {
    if (kind === 'model') problems.push(...modelConfigProblems(value as ModelConfig));
    if (kind === 'run') problems.push(...runConfigProblems(value as RunConfig));
  }
  if (problems.length > 0) {
    const lines = dedupe(problems).map(([f, m]) => `${origin}: field "${f}": ${m}`);
    throw new IotaError(
      'E_CONFIG_INVALID',
      lines.join('\n'),
      `fix the ${kind} config; see configs/ for valid examples`,
    );
  }
  return deepFreeze(value);
}

function readYamlObject(file: string, kind: ConfigKind): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new IotaError(
      'E_CONFIG_NOT_FOUND',
      `cannot read ${kind} config ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      'check the path; shipped configs live in configs/',
    );
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0];
    const where = first.linePos
      ? ` (line ${first.linePos[0].line}, column ${first.linePos[0].col})`
      : '';
    throw new IotaError(
      'E_CONFIG_INVALID',
      `${file}: not valid YAML${where}: ${first.message.split('\n')[0]}`,
      'check the indentation and quoting at that line',
    );
  }
  const value = doc.toJS();
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new IotaError(
      'E_CONFIG_INVALID',
      `${file}: a ${kind} config must be a YAML mapping of fields`,
      'see configs/ for examples',
    );
  }
  return value as Record<string, unknown>;
}

function applyAliases(
  kind: ConfigKind,
  v: Record<string, unknown>,
  origin: string,
): Record<string, unknown> {
  for (const [alias, name] of Object.entries(ALIASES[kind])) {
    if (!(alias in v)) continue;
    if (name in v)
      throw new IotaError(
        'E_CONFIG_INVALID',
        `${origin}: field "${alias}": is an alias of "${name}"; give only one of them`,
      );
    v[name] = v[alias];
    delete v[alias];
  }
  return v;
}

function* overridesFor(kind: ConfigKind, o: Overrides): Generator<[string, string, string]> {
  const prefix = `IOTA_${kind.toUpperCase()}__`;
  for (const [k, v] of Object.entries(o.env ?? {})) {
    if (!k.startsWith(prefix) || v === undefined) continue;
    const field = k.slice(prefix.length).toLowerCase().split('__').join('.');
    yield [ALIASES[kind][field] ?? field, v, `environment variable ${k}`];
  }
  for (const s of o.set ?? []) {
    const eq = s.indexOf('=');
    if (eq <= 0)
      throw new IotaError(
        'E_BAD_FLAG',
        `--set ${s}: expected field=value`,
        'e.g. --set optimizer.lr=0.001',
      );
    const field = s.slice(0, eq).trim();
    yield [ALIASES[kind][field] ?? field, s.slice(eq + 1), `flag --set ${s}`];
  }
}

function setPath(target: Record<string, unknown>, field: string, raw: string, from: string): void {
  const parts = field.split('.');
  let node: Record<string, unknown> = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (next === undefined) node[part] = {};
    else if (next === null || typeof next !== 'object' || Array.isArray(next)) {
      throw new IotaError(
        'E_CONFIG_INVALID',
        `${from}: field "${field}": "${part}" is not a mapping`,
      );
    }
    node = node[part] as Record<string, unknown>;
  }
  let value: unknown;
  try {
    value = parseYaml(raw);
  } catch {
    value = raw;
  }
  node[parts[parts.length - 1]] = value;
}

/**
 * TypeBox reports a failed union as one error holding each branch's errors. Report the branch
 * the value came closest to (the one whose errors lie deeper than the union itself, fewest
 * first), so a bad nested field is named rather than "expected union value".
 */
function leafErrors(errors: ValueError[]): ValueError[] {
  return errors.flatMap((e) => {
    if (!e.errors || e.errors.length === 0 || isLiteralUnion(e.schema)) return [e];
    const branches = e.errors
      .map((it) => [...it])
      .filter((b) => b.length > 0 && b.every((x) => x.path !== e.path));
    if (branches.length === 0) return [e];
    branches.sort((a, b) => a.length - b.length);
    return leafErrors(branches[0]);
  });
}

function isLiteralUnion(s: TSchema): boolean {
  return (
    Array.isArray(s.anyOf) &&
    s.anyOf.every((b: TSchema) => b.const !== undefined || b.type === 'null')
  );
}

function describe(e: ValueError): string {
  const got = e.value === undefined ? 'nothing' : JSON.stringify(e.value);
  if (isLiteralUnion(e.schema)) {
    const options = (e.schema.anyOf as TSchema[]).map((b) =>
      b.const !== undefined ? JSON.stringify(b.const) : 'null',
    );
    return `must be one of ${options.join(', ')} (got ${got})`;
  }
  if (e.message === 'Unexpected property') return 'is not a known field (a typo?)';
  if (e.value === undefined) return 'is required';
  return `${e.message.replace(/^Expected/, 'expected')} (got ${got})`;
}

function fieldName(path: string): string {
  return (
    path
      .split('/')
      .slice(1)
      .map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`))
      .join('') || '(root)'
  );
}

function dedupe(p: Array<[string, string]>): Array<[string, string]> {
  const seen = new Set<string>();
  return p.filter(([f, m]) => {
    const k = `${f}\u0000${m}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v as object)) deepFreeze(x);
  }
  return v;
}
