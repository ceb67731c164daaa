/**
 * The checks `iota setup` makes before it accepts an answer: that an orchestrator answers (which
 * run, which model), and that an S3-compatible store takes a write, a read and a delete of a
 * scratch object with the credentials of the environment.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { S3Store } from '../store/index.js';
import type { S3Answers } from './plan.js';

/** What an orchestrator serves, in a line; throws an Error whose message says what failed. */
export async function checkOrchestrator(url: string): Promise<string> {
  if (!/^https?:\/\/[^/\s]+/.test(url)) throw new Error('expected http://HOST:PORT');
  const base = url.replace(/\/$/, '');
  const get = async <T>(path: string): Promise<T> => {
    let r;
    try {
      r = await request(`${base}${path}`, { headersTimeout: 5000, bodyTimeout: 5000 });
    } catch (e) {
      throw new Error(`cannot reach ${base}: ${(e as Error).message}`, { cause: e });
    }
    if (r.statusCode !== 200) {
      await r.body.dump();
      throw new Error(`${base}${path} answered HTTP ${r.statusCode}: is it an iota orchestrator?`);
    }
    return (await r.body.json()) as T;
  };
  const info = await get<{ run: string; version: string; config_hash?: string }>('/v1/info');
  if (!info.config_hash) throw new Error(`${base} serves no run yet (started without --run)`);
  const h = await get<{ config: { model: { name: string }; params: number[] } }>(
    '/v1/history?limit=1',
  );
  const params = h.config.params.reduce((a, b) => a + b, 0);
  return (
    `run ${info.run}, model ${h.config.model.name} (${(params / 1e6).toFixed(2)} M parameters ` +
    `in ${h.config.params.length} stages), iota ${info.version}`
  );
}

/** Writes, reads back and deletes a scratch object; throws the store's own error if it fails. */
export async function checkStore(s3: S3Answers): Promise<void> {
  const store = new S3Store({
    bucket: s3.bucket,
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: s3.forcePathStyle,
    prefix: s3.prefix || undefined,
  });
  const key = `iota-setup-check/${randomBytes(8).toString('hex')}`;
  const bytes = randomBytes(1024);
  await store.put(key, bytes);
  try {
    const back = await store.get(key);
    if (!Buffer.from(back).equals(bytes))
      throw new Error('the store returned other bytes than were written');
  } finally {
    await store.delete(key);
  }
}
