/**
 * Object keys (DESIGN.md section 7) and who may write them. Pure functions: the orchestrator
 * calls `authorizeUpload` before it issues an upload URL, and both stores call `validateKey`
 * on every key they touch.
 *
 * Key syntax: 1 to 512 ASCII characters; segments separated by single `/`; each segment is 1 to
 * 200 characters of `A-Z a-z 0-9 . _ -` and does not start with `.`. So no leading or trailing
 * slash, no empty, `.` or `..` segment, nothing hidden: a key is always a plain relative path
 * inside the local store's directory, and names that start with `.` stay free for the store's
 * own bookkeeping (the S3 store's `.iota/` sidecars).
 *
 * Kinds and their keys (integers without leading zeros for E, sample, stage, partition):
 *
 *   data        runs/<run>/data/<shard>.bin
 *   activation  runs/<run>/e<E>/act/<sample>/<stage>/<fwd|bwd>/<miner>-<lease>.safetensors
 *   gradient    runs/<run>/e<E>/grad/<stage>/<miner>.safetensors
 *   merged      runs/<run>/e<E>/merged/<stage>/<partition>/<miner>.safetensors
 *   optimizer   runs/<run>/e<E>/optim/<stage>/<partition>/<miner>.safetensors   (m, v after epoch E-1's step)
 *   manifest    runs/<run>/e<E>/stage/<stage>.json
 *
 * `<run>`, `<shard>` and `<miner>` are `[A-Za-z0-9_-]+`; `<lease>` is `[A-Za-z0-9_]+` (no `-`),
 * so an activation's owner is everything before the file name's last `-`, whatever its id.
 *
 * Who may write (the prefix rule): a participant may upload
 *   - an activation, gradient, merged or optimizer key only if the key's owner (`<miner>`) is its own id;
 *   - an ownerless key (data, manifest) only if the orchestrator names it in
 *     `assignedTo` for that request, from its own state (e.g. the mergers of that partition).
 *     The orchestrator writes data and manifests itself with `put`, never through a URL.
 * and only under `runs/<current run>/`, only the kind it declares, and no more bytes than the
 * kind's limit.
 */
import { IotaError } from '../errors.js';

export const MAX_KEY_LENGTH = 512;
const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/;

/** Throws E_BAD_KEY unless `key` follows the syntax above. */
export function validateKey(key: unknown): string {
  const bad = (why: string) =>
    new IotaError(
      'E_BAD_KEY',
      `object key ${JSON.stringify(key)} ${why}`,
      'keys are relative paths of [A-Za-z0-9._-] segments, see DESIGN.md section 7',
    );
  if (typeof key !== 'string' || key.length === 0) throw bad('is empty');
  if (key.length > MAX_KEY_LENGTH) throw bad(`is longer than ${MAX_KEY_LENGTH} characters`);
  for (const segment of key.split('/')) {
    if (segment === '') throw bad('has an empty segment (leading, trailing or double slash)');
    if (segment.startsWith('.')) throw bad(`has a segment "${segment}" that starts with a dot`);
    if (!SEGMENT.test(segment))
      throw bad(
        `has a segment "${segment.slice(0, 40)}" outside [A-Za-z0-9._-] or over 200 characters`,
      );
  }
  return key;
}

/** A listing prefix: empty, or a key's beginning (complete segments, then a partial one). */
export function validatePrefix(prefix: unknown): string {
  if (prefix === '') return '';
  if (typeof prefix !== 'string') throw new IotaError('E_BAD_KEY', 'a listing prefix is a string');
  const cut = prefix.lastIndexOf('/');
  if (cut >= 0) validateKey(prefix.slice(0, cut));
  const partial = prefix.slice(cut + 1);
  if (partial !== '' && !SEGMENT.test(partial)) {
    throw new IotaError(
      'E_BAD_KEY',
      `listing prefix ${JSON.stringify(prefix)} does not begin any valid key`,
    );
  }
  return prefix;
}

export type ObjectKind =
  'data' | 'activation' | 'gradient' | 'merged' | 'optimizer' | 'manifest' | 'probe';
export const OBJECT_KINDS: readonly ObjectKind[] = [
  'data',
  'activation',
  'gradient',
  'merged',
  'optimizer',
  'manifest',
  'probe',
];

export type ParsedKey =
  | { kind: 'data'; run: string; shard: string }
  | {
      kind: 'activation';
      run: string;
      epoch: number;
      sample: number;
      stage: number;
      direction: 'fwd' | 'bwd';
      owner: string;
      lease: string;
    }
  | { kind: 'gradient'; run: string; epoch: number; stage: number; owner: string }
  | { kind: 'merged'; run: string; epoch: number; stage: number; partition: number; owner: string }
  | {
      kind: 'optimizer';
      run: string;
      epoch: number;
      stage: number;
      partition: number;
      owner: string;
    }
  | { kind: 'manifest'; run: string; epoch: number; stage: number }
  /** a participant's scratch object for measuring its link to the store (iota doctor) */
  | { kind: 'probe'; run: string; owner: string };

const ID = '[A-Za-z0-9_-]+';
const INT = '0|[1-9][0-9]{0,14}';
const PATTERNS: Array<[ObjectKind, RegExp]> = [
  ['data', new RegExp(`^runs/(?<run>${ID})/data/(?<shard>${ID})\\.bin$`)],
  [
    'activation',
    new RegExp(
      `^runs/(?<run>${ID})/e(?<epoch>${INT})/act/(?<sample>${INT})/(?<stage>${INT})/` +
        `(?<direction>fwd|bwd)/(?<owner>${ID})-(?<lease>[A-Za-z0-9_]+)\\.safetensors$`,
    ),
  ],
  [
    'gradient',
    new RegExp(
      `^runs/(?<run>${ID})/e(?<epoch>${INT})/grad/(?<stage>${INT})/(?<owner>${ID})\\.safetensors$`,
    ),
  ],
  [
    'merged',
    new RegExp(
      `^runs/(?<run>${ID})/e(?<epoch>${INT})/merged/(?<stage>${INT})/` +
        `(?<partition>${INT})/(?<owner>${ID})\\.safetensors$`,
    ),
  ],
  [
    'optimizer',
    new RegExp(
      `^runs/(?<run>${ID})/e(?<epoch>${INT})/optim/(?<stage>${INT})/` +
        `(?<partition>${INT})/(?<owner>${ID})\\.safetensors$`,
    ),
  ],
  ['manifest', new RegExp(`^runs/(?<run>${ID})/e(?<epoch>${INT})/stage/(?<stage>${INT})\\.json$`)],
  ['probe', new RegExp(`^runs/(?<run>${ID})/probe/(?<owner>${ID})\\.bin$`)],
];
const NUMERIC = new Set(['epoch', 'sample', 'stage', 'partition']);

/** What a key names, or undefined when it is a valid key of no known kind. Throws E_BAD_KEY on bad syntax. */
export function parseKey(key: string): ParsedKey | undefined {
  validateKey(key);
  for (const [kind, re] of PATTERNS) {
    const m = re.exec(key);
    if (!m?.groups) continue;
    const fields: Record<string, string | number> = { kind };
    for (const [name, value] of Object.entries(m.groups))
      fields[name] = NUMERIC.has(name) ? Number(value) : value;
    return fields as unknown as ParsedKey;
  }
  return undefined;
}

/** The key a parsed key names: the inverse of `parseKey`, and the one place keys are written. */
export function formatKey(k: ParsedKey): string {
  const run = `runs/${k.run}`;
  let key: string;
  switch (k.kind) {
    case 'data':
      key = `${run}/data/${k.shard}.bin`;
      break;
    case 'activation':
      key = `${run}/e${k.epoch}/act/${k.sample}/${k.stage}/${k.direction}/${k.owner}-${k.lease}.safetensors`;
      break;
    case 'gradient':
      key = `${run}/e${k.epoch}/grad/${k.stage}/${k.owner}.safetensors`;
      break;
    case 'merged':
      key = `${run}/e${k.epoch}/merged/${k.stage}/${k.partition}/${k.owner}.safetensors`;
      break;
    case 'optimizer':
      key = `${run}/e${k.epoch}/optim/${k.stage}/${k.partition}/${k.owner}.safetensors`;
      break;
    case 'manifest':
      key = `${run}/e${k.epoch}/stage/${k.stage}.json`;
      break;
    case 'probe':
      key = `${run}/probe/${k.owner}.bin`;
      break;
  }
  return validateKey(key);
}

type Fields<K extends ObjectKind> = Omit<Extract<ParsedKey, { kind: K }>, 'kind'>;

/** Builders by kind, e.g. `keys.gradient({ run, epoch, stage, owner })`. */
export const keys = {
  data: (f: Fields<'data'>) => formatKey({ kind: 'data', ...f }),
  activation: (f: Fields<'activation'>) => formatKey({ kind: 'activation', ...f }),
  gradient: (f: Fields<'gradient'>) => formatKey({ kind: 'gradient', ...f }),
  merged: (f: Fields<'merged'>) => formatKey({ kind: 'merged', ...f }),
  optimizer: (f: Fields<'optimizer'>) => formatKey({ kind: 'optimizer', ...f }),
  manifest: (f: Fields<'manifest'>) => formatKey({ kind: 'manifest', ...f }),
  probe: (f: Fields<'probe'>) => formatKey({ kind: 'probe', ...f }),
  /** every object of a run starts with this */
  runPrefix: (run: string) => `runs/${run}/`,
  /**
   * an epoch's activations (`act`), gradient sums (`grad`), merged weights (`merged`), moments
   * (`optim`) or manifests (`stage`): what retention deletes
   */
  epochWorkPrefix: (
    run: string,
    epoch: number,
    part: 'act' | 'grad' | 'merged' | 'optim' | 'stage',
  ) => `runs/${run}/e${epoch}/${part}/`,
};

/** The participant whose key this is, or undefined for ownerless kinds. */
export function ownerOf(key: ParsedKey): string | undefined {
  return 'owner' in key ? key.owner : undefined;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/**
 * Upper bounds per kind, generous enough for iota-15b's stages. The orchestrator should pass
 * tighter ones derived from the model's shapes (an activation is batch x seq x bottleneck).
 */
export const DEFAULT_SIZE_LIMITS: Readonly<Record<ObjectKind, number>> = {
  data: 4 * GiB,
  activation: 512 * MiB,
  gradient: 16 * GiB,
  merged: 256 * MiB,
  optimizer: 512 * MiB,
  manifest: 16 * MiB,
  probe: 16 * MiB,
};

export interface UploadRequest {
  /** the verified id of the participant asking */
  caller: string;
  kind: ObjectKind;
  key: string;
  size: number;
  sha256: string;
  /** for ownerless kinds: who the orchestrator assigned to write this key */
  assignedTo?: readonly string[];
}

export interface ScopePolicy {
  /** the run this orchestrator serves; keys of other runs are refused */
  run: string;
  limits?: Partial<Record<ObjectKind, number>>;
}

export type ScopeRefusal =
  'E_BAD_KEY' | 'E_NOT_YOUR_PREFIX' | 'E_TOO_LARGE' | 'E_BAD_SIZE' | 'E_BAD_HASH';
export type UploadDecision =
  { ok: true; key: ParsedKey } | { ok: false; code: ScopeRefusal; message: string };

/** Decides whether `caller` may upload this object (the rule in this file's header). */
export function authorizeUpload(req: UploadRequest, policy: ScopePolicy): UploadDecision {
  const refuse = (code: ScopeRefusal, message: string): UploadDecision => ({
    ok: false,
    code,
    message,
  });
  let parsed: ParsedKey | undefined;
  try {
    parsed = parseKey(req.key);
  } catch (e) {
    return refuse('E_BAD_KEY', (e as Error).message);
  }
  if (!parsed)
    return refuse('E_BAD_KEY', `${req.key} is not an object key of any kind (DESIGN.md section 7)`);
  if (parsed.kind !== req.kind)
    return refuse('E_BAD_KEY', `${req.key} names a ${parsed.kind} object, not a ${req.kind} one`);
  if (parsed.run !== policy.run)
    return refuse(
      'E_NOT_YOUR_PREFIX',
      `${req.key} belongs to run ${parsed.run}, not ${policy.run}`,
    );
  const owner = ownerOf(parsed);
  if (owner !== undefined) {
    if (owner !== req.caller)
      return refuse(
        'E_NOT_YOUR_PREFIX',
        `${req.key} belongs to ${owner}; you may only write keys named for your own id`,
      );
  } else if (!req.assignedTo?.includes(req.caller)) {
    return refuse(
      'E_NOT_YOUR_PREFIX',
      `${req.key} is a ${parsed.kind} object and you are not assigned to write it`,
    );
  }
  if (!Number.isSafeInteger(req.size) || req.size < 0)
    return refuse('E_BAD_SIZE', `size must be a non-negative integer, got ${req.size}`);
  const limit = policy.limits?.[parsed.kind] ?? DEFAULT_SIZE_LIMITS[parsed.kind];
  if (req.size > limit)
    return refuse('E_TOO_LARGE', `${req.size} bytes is over the ${parsed.kind} limit of ${limit}`);
  if (typeof req.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(req.sha256))
    return refuse('E_BAD_HASH', 'sha256 must be 64 lowercase hex characters');
  return { ok: true, key: parsed };
}

/** The refusal as an error to throw (the orchestrator turns it into a 4xx). */
export function refusalError(d: Extract<UploadDecision, { ok: false }>): IotaError {
  const hint =
    d.code === 'E_NOT_YOUR_PREFIX'
      ? 'upload only under keys the orchestrator assigned to your id'
      : undefined;
  return new IotaError(d.code, d.message, hint);
}
