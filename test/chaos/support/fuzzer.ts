/**
 * A hostile-request fuzzer for the orchestrator: every route its /openapi.json lists, plus the
 * local store's signed URLs, hit with requests that must all be refused: malformed JSON, other
 * content types, oversized bodies, unsigned, badly signed (signature, key, clock, run, protocol
 * version), replayed, schema-breaking bodies with a good signature from every role, wrong-role
 * calls, and well-formed calls that do not fit the swarm's state (out of phase, unknown leases,
 * jobs and tasks). Requests are drawn from a seeded generator; the tally says how each was
 * answered. The guarantees the caller checks: no 5xx, every refusal coded, nothing changed.
 */
import { randomBytes } from 'node:crypto';
import { Pool } from 'undici';
import { newRequestId } from '../../../src/protocol/client.js';
import { newIdentity, type Identity } from '../../../src/protocol/keys.js';
import { HEADERS, MAX_SKEW_MS, signRequest } from '../../../src/protocol/signing.js';
import { rng } from '../../support/rng.js';

export const KINDS = [
  'malformed',
  'content-type',
  'oversized',
  'unsigned',
  'bad-signature',
  'replayed',
  'bad-body',
  'wrong-role',
  'out-of-state',
  'store-url',
  'bad-path',
] as const;
export type ShotKind = (typeof KINDS)[number];

interface Shot {
  kind: ShotKind;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

export interface FuzzTally {
  requests: number;
  byKind: Record<string, number>;
  /** status -> count */
  byStatus: Record<string, number>;
  /** refusal code -> count */
  codes: Record<string, number>;
  /** requests answered below 400, by kind */
  accepted: Record<string, number>;
  /** requests answered 5xx, or refused without a coded JSON error (one of each kind of answer) */
  failures: Array<{ kind: ShotKind; method: string; path: string; status: number; body: string }>;
  /** routes of /openapi.json (METHOD path) the fuzzer hit, and those it lists */
  routes: string[];
  listed: string[];
}

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  minItems?: number;
  anyOf?: Schema[];
  const?: unknown;
  enum?: unknown[];
  minimum?: number;
  minLength?: number;
};

/** A value of the schema's shape (patterns and formats aside: what it yields may still be refused). */
export function sample(s: Schema, random: () => number): unknown {
  if (s.const !== undefined) return s.const;
  if (s.enum) return s.enum[Math.floor(random() * s.enum.length)];
  if (s.anyOf) return sample(s.anyOf[Math.floor(random() * s.anyOf.length)], random);
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'object':
      return Object.fromEntries(
        Object.entries(s.properties ?? {})
          .filter(([k]) => s.required?.includes(k) || random() < 0.5)
          .map(([k, v]) => [k, sample(v, random)]),
      );
    case 'array':
      return Array.from({ length: s.minItems ?? 1 }, () => sample(s.items ?? {}, random));
    case 'integer':
      return Math.max(s.minimum ?? 0, Math.floor(random() * 5));
    case 'number':
      return Math.max(s.minimum ?? 0, random());
    case 'boolean':
      return random() < 0.5;
    case 'string':
      return 'a'.repeat(Math.max(1, s.minLength ?? 0)) + randomBytes(4).toString('hex');
    default:
      return null;
  }
}

/** A body the schema refuses for certain: a field too many, a required one missing, a type changed, not an object. */
export function breakBody(s: Schema, random: () => number): unknown {
  const good = sample(s, random) as Record<string, unknown>;
  const way = Math.floor(random() * 4);
  const required = s.required ?? [];
  if (way === 0) return { ...good, fuzz_extra: 'x' };
  if (way === 1 && required.length > 0) {
    const out = { ...good };
    delete out[required[Math.floor(random() * required.length)]];
    return out;
  }
  if (way === 2 && required.length > 0) {
    const k = required[Math.floor(random() * required.length)];
    const v = good[k];
    return { ...good, [k]: typeof v === 'string' ? 12345 : typeof v === 'number' ? 'x' : 'x' };
  }
  return [null, 7, 'text', [good], true][Math.floor(random() * 5)];
}

/** Well-formed calls the state refuses: no such lease, job, upload or task, or the wrong phase. */
const OUT_OF_STATE = [
  '/v1/report',
  '/v1/refuse',
  '/v1/gradient',
  '/v1/merge/reduced',
  '/v1/merge/updated',
  '/v1/merge/unavailable',
  '/v1/storage/complete',
  '/v1/validate/verdict',
  '/v1/validate/eval',
];

interface Route {
  method: string;
  template: string;
  path: string;
  body?: Schema;
}

export interface FuzzTarget {
  url: string;
  run: string;
  /** registered identities by role: what signed calls are made with */
  keys: { miner: Identity; validator: Identity };
  /** valid signed requests already sent (their replays must be refused) */
  sent: Array<{ method: string; path: string; headers: Record<string, string>; body?: string }>;
  /** a store URL the orchestrator issued (its signature, expiry and key are tampered with) */
  storeUrl: string;
}

export async function fuzz(target: FuzzTarget, n: number, seed = 5): Promise<FuzzTally> {
  const random = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  const pool = new Pool(target.url, { connections: 8, pipelining: 1 });
  const doc = (await (
    await pool.request({ method: 'GET', path: '/openapi.json' })
  ).body.json()) as {
    paths: Record<
      string,
      Record<string, { requestBody?: { content: Record<string, { schema: Schema }> } }>
    >;
  };
  const routes: Route[] = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({
      method: method.toUpperCase(),
      template: path,
      path: path.replace(/:(\w+)/g, (_, p: string) => `${p}-${randomBytes(3).toString('hex')}`),
      body: op.requestBody?.content['application/json']?.schema,
    })),
  );
  const posts = routes.filter((r) => r.body);
  // The reads anyone may make (answered without a signature) are found by asking once.
  const publicReads = new Set<Route>();
  for (const r of routes.filter((x) => x.method === 'GET')) {
    const res = await pool.request({ method: 'GET', path: r.path });
    await res.body.dump();
    if (res.statusCode < 400) publicReads.add(r);
  }
  /** routes that need a signature */
  const guarded = routes.filter((r) => !publicReads.has(r));
  const stranger = newIdentity();
  const signed = (
    id: Identity,
    method: string,
    path: string,
    body?: string | Buffer,
  ): Record<string, string> => {
    const text = body === undefined ? undefined : body.toString();
    return {
      ...signRequest(id, method, path, target.run, text, Date.now()),
      [HEADERS.requestId]: newRequestId(),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    };
  };
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  /** A POST of `body` to the route, signed by `id` over exactly those bytes. */
  const post = (kind: ShotKind, id: Identity, route: Route, body: Buffer): Shot => ({
    kind,
    method: 'POST',
    path: route.path,
    headers: signed(id, 'POST', route.path, body),
    body,
  });
  const role = () => pick(['miner', 'validator'] as const);

  const make = (kind: ShotKind): Shot => {
    const r = pick(posts);
    switch (kind) {
      case 'malformed': {
        const body = pick([
          randomBytes(1 + Math.floor(random() * 200)),
          Buffer.from('{"max": 1,'),
          Buffer.from('{"a":'.repeat(500)),
          Buffer.from('\u0000\u0001{}'),
          Buffer.from('{"__proto__": {"polluted": 1}}'),
        ]);
        return post(kind, target.keys[role()], r, body);
      }
      case 'content-type': {
        const body = json(sample(r.body!, random));
        const headers = { ...signed(target.keys.miner, 'POST', r.path, body) };
        headers['content-type'] = pick([
          'text/plain',
          'application/xml',
          'application/json; charset=latin1',
          'multipart/form-data; boundary=x',
        ]);
        return { kind, method: 'POST', path: r.path, headers, body };
      }
      case 'oversized': {
        const body = Buffer.from(
          JSON.stringify({ pad: 'x'.repeat(300_000 + Math.floor(random() * 700_000)) }),
        );
        return post(kind, target.keys.miner, r, body);
      }
      case 'unsigned': {
        const route = pick(routes);
        const body = route.body ? json(sample(route.body, random)) : undefined;
        const headers: Record<string, string> = body ? { 'content-type': 'application/json' } : {};
        if (random() < 0.5) headers[HEADERS.key] = target.keys.miner.id; // a key but no signature
        return { kind, method: route.method, path: route.path, headers, body };
      }
      case 'bad-signature': {
        const route = pick(guarded);
        const body = route.body ? json(breakBody(route.body, random)) : undefined;
        const method = route.method;
        const text = body?.toString();
        const headers = signed(target.keys[role()], method, route.path, body);
        const how = Math.floor(random() * 7);
        if (how === 0) headers[HEADERS.signature] = randomBytes(64).toString('base64url');
        if (how === 1) headers[HEADERS.key] = stranger.id;
        if (how === 2) headers[HEADERS.key] = 'not-a-key';
        if (how === 3)
          Object.assign(
            headers,
            signRequest(
              target.keys.miner,
              method,
              route.path,
              target.run,
              text,
              Date.now() - 2 * MAX_SKEW_MS,
            ),
          );
        if (how === 4)
          Object.assign(
            headers,
            signRequest(target.keys.miner, method, route.path, 'other-run', text, Date.now()),
          );
        if (how === 5) headers[HEADERS.version] = '99';
        if (how === 6) headers[HEADERS.signature] = headers[HEADERS.signature].slice(0, 10);
        return { kind, method, path: route.path, headers, body };
      }
      case 'replayed': {
        const s = pick(target.sent);
        return {
          kind,
          method: s.method,
          path: s.path,
          headers: { ...s.headers },
          body: s.body === undefined ? undefined : Buffer.from(s.body),
        };
      }
      case 'bad-body': {
        const body = json(breakBody(r.body!, random));
        return post(kind, target.keys[role()], r, body);
      }
      case 'wrong-role': {
        // A miner calling a validator's route and the reverse: refused before the body is read.
        const validatorOnly = posts.filter((x) => x.path.startsWith('/v1/validate/'));
        const minerOnly = posts.filter((x) =>
          /^\/v1\/(work|report|refuse|gradient|join|merge\/)/.test(x.path),
        );
        const [id, route] =
          random() < 0.5
            ? [target.keys.miner, pick(validatorOnly)]
            : [target.keys.validator, pick(minerOnly)];
        const body = json(sample(route.body!, random));
        return post(kind, id, route, body);
      }
      case 'out-of-state': {
        const candidates = posts.filter((x) => OUT_OF_STATE.includes(x.path));
        const route = pick(candidates);
        const id = route.path.startsWith('/v1/validate/')
          ? target.keys.validator
          : target.keys.miner;
        const body = json(sample(route.body!, random));
        return post(kind, id, route, body);
      }
      case 'store-url': {
        const u = new URL(target.storeUrl);
        const how = Math.floor(random() * 5);
        if (how === 0) u.searchParams.set('s', randomBytes(32).toString('base64url'));
        if (how === 1) u.searchParams.set('e', String(Date.now() - 1000));
        if (how === 2)
          u.pathname = u.pathname.replace(/[^/]+$/, `other-${randomBytes(2).toString('hex')}.bin`);
        if (how === 3) u.search = '';
        const method = pick(['PUT', 'GET', 'DELETE', 'POST']);
        const body = method === 'PUT' || method === 'POST' ? randomBytes(64) : undefined;
        return {
          kind,
          method,
          path: u.pathname + u.search,
          headers: body ? { 'content-length': '64' } : {},
          body,
        };
      }
      case 'bad-path': {
        const path = pick([
          `/v1/${randomBytes(3).toString('hex')}`,
          '/v1/../etc/passwd',
          '/%00',
          `/store/${'../'.repeat(4)}state.db`,
          `/v1/work?${'a='.repeat(2000)}`,
          '/dashboard/assets/..%2f..%2fpackage.json',
          '/dashboard/miner/%ff%fe',
        ]);
        return {
          kind,
          method: pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']),
          path,
          headers: {},
        };
      }
    }
  };

  const tally: FuzzTally = {
    requests: 0,
    byKind: {},
    byStatus: {},
    codes: {},
    accepted: {},
    failures: [],
    routes: [],
    listed: routes.map((r) => `${r.method} ${r.template}`).sort(),
  };
  const hit = new Set<string>();
  const seen = new Set<string>();
  const fire = async (s: Shot) => {
    const path = s.path.split('?')[0];
    const route = routes.find(
      (r) =>
        r.method === s.method &&
        new RegExp(`^${r.template.replace(/:\w+/g, '[^/]+').replace('*', '.*')}$`).test(path),
    );
    if (route) hit.add(`${route.method} ${route.template}`);
    const res = await pool.request({
      method: s.method as 'GET',
      path: s.path,
      headers: s.headers,
      body: s.body,
    });
    const text = await res.body.text();
    tally.requests++;
    tally.byKind[s.kind] = (tally.byKind[s.kind] ?? 0) + 1;
    tally.byStatus[res.statusCode] = (tally.byStatus[res.statusCode] ?? 0) + 1;
    let code: string | undefined;
    try {
      code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
    } catch {
      // not JSON
    }
    if (code) tally.codes[code] = (tally.codes[code] ?? 0) + 1;
    if (res.statusCode < 400) tally.accepted[s.kind] = (tally.accepted[s.kind] ?? 0) + 1;
    const uncoded = res.statusCode >= 400 && !/^E_[A-Z0-9_]+$/.test(code ?? '');
    const signature = `${s.kind} ${res.statusCode} ${text.slice(0, 60)}`;
    if ((res.statusCode >= 500 || uncoded) && !seen.has(signature) && seen.add(signature))
      tally.failures.push({
        kind: s.kind,
        method: s.method,
        path: s.path,
        status: res.statusCode,
        body: text.slice(0, 300),
      });
  };
  let next = 0;
  const worker = async () => {
    while (next++ < n) await fire(make(KINDS[Math.floor(random() * KINDS.length)]));
  };
  try {
    await Promise.all(Array.from({ length: 16 }, worker));
  } finally {
    await pool.close();
  }
  tally.routes = [...hit].sort();
  return tally;
}
