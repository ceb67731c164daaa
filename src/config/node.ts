/**
 * Node config: how one process is wired to the world (ports, storage, keys, allow-lists).
 * Secrets are referenced by path or environment variable, never written into the file.
 */
import { Type, type Static } from '@sinclair/typebox';

export const StorageSchema = Type.Union([
  Type.Object(
    {
      kind: Type.Literal('local'),
      dir: Type.Optional(Type.String({ minLength: 1, description: 'default: <state_dir>/store' })),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('s3'),
      bucket: Type.String({ minLength: 3 }),
      region: Type.String({ default: 'us-east-1' }),
      endpoint: Type.Optional(
        Type.String({ description: 'R2, MinIO or another S3-compatible endpoint' }),
      ),
      force_path_style: Type.Boolean({ default: false }),
      prefix: Type.String({ default: '' }),
    },
    { additionalProperties: false },
  ),
]);

const KeyId = Type.String({ pattern: '^[A-Za-z0-9_-]{8,}$' });

export const RateLimitSchema = Type.Object(
  {
    ip_per_second: Type.Number({
      exclusiveMinimum: 0,
      default: 1000,
      description:
        'requests per second per address, before verification (a whole swarm on one machine shares one address)',
    }),
    ip_burst: Type.Integer({ minimum: 1, default: 2000 }),
    key_per_second: Type.Number({
      exclusiveMinimum: 0,
      default: 200,
      description: 'requests per second per verified key',
    }),
    key_burst: Type.Integer({ minimum: 1, default: 400 }),
    new_keys_per_minute: Type.Number({
      exclusiveMinimum: 0,
      default: 30,
      description: 'keys one address may register per minute (beyond the burst)',
    }),
    new_keys_burst: Type.Integer({ minimum: 1, default: 60 }),
    exempt_loopback: Type.Boolean({
      default: false,
      description: 'no address limit for 127.0.0.0/8 and ::1 (benchmarks on one machine)',
    }),
  },
  { additionalProperties: false, default: {} },
);

export const NodeConfigSchema = Type.Object(
  {
    host: Type.String({ default: '127.0.0.1' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 4100 }),
    orchestrator_url: Type.Optional(Type.String({ pattern: '^https?://' })),
    key_file: Type.Optional(Type.String({ minLength: 1 })),
    state_dir: Type.String({
      default: '.iota',
      description: 'database, nonces and secrets of this node',
    }),
    storage: Type.Optional(StorageSchema),
    backend: Type.Optional(
      Type.Union([
        Type.Literal('auto'),
        Type.Literal('native'),
        Type.Literal('wasm'),
        Type.Literal('cpu'),
        Type.Literal('tensorflow'),
      ]),
    ),
    threads: Type.Optional(Type.Integer({ minimum: 1 })),
    allow_list: Type.Optional(
      Type.Array(KeyId, { description: 'if set, only these miner keys may register' }),
    ),
    rate_limits: RateLimitSchema,
    validators: Type.Array(KeyId, { default: [] }),
    admins: Type.Array(KeyId, { default: [] }),
  },
  { additionalProperties: false },
);

export type NodeConfig = Static<typeof NodeConfigSchema>;
