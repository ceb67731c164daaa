/** The two stores under test, each with a clock the test can shift and a way to clean up. */
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  LocalStore,
  localStoreRoutes,
  S3Store,
  type ObjectStore,
} from '../../../src/store/index.js';
import { startS3rver } from '../../support/s3rver.js';

// The SDK warns once per process that it will need Node 22 next year; tests need not say so.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

export interface StoreFixture {
  store: ObjectStore;
  /** where the store's URLs point (for fault injection by origin) */
  origin: string;
  /** moves the store's clock by `ms` from real time */
  shiftClock(ms: number): void;
  close(): Promise<void>;
}

export interface LocalFixture extends StoreFixture {
  store: LocalStore;
  root: string;
  app: FastifyInstance;
}

export async function localFixture(o: { root?: string } = {}): Promise<LocalFixture> {
  const root = o.root ?? (await mkdtemp(join(tmpdir(), 'iota-store-')));
  let offset = 0;
  let origin = '';
  const store = await LocalStore.open({
    root,
    baseUrl: () => origin,
    clock: () => Date.now() + offset,
  });
  const app = Fastify();
  await app.register(localStoreRoutes(store));
  await app.listen({ host: '127.0.0.1', port: 0 });
  origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    store,
    root,
    app,
    origin,
    shiftClock: (ms) => (offset = ms),
    async close() {
      await app.close();
      if (!o.root) await rm(root, { recursive: true, force: true });
    },
  };
}

export async function s3Fixture(): Promise<StoreFixture> {
  const s3 = await startS3rver();
  let offset = 0;
  const store = new S3Store({
    bucket: s3.bucket,
    region: 'us-east-1',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    prefix: 'deployment-a',
    credentials: s3.credentials,
    clock: () => Date.now() + offset,
    // every listing of more than two keys pages, so pagination is always exercised
    listPageSize: 2,
  });
  return {
    store,
    origin: s3.endpoint,
    shiftClock: (ms) => (offset = ms),
    async close() {
      store.client.destroy();
      await s3.stop();
    },
  };
}
