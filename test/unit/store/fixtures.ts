/** The two stores under test, each with a clock the test can shift and a way to clean up. */
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { LocalStore, localStoreRoutes, type ObjectStore } from '../../../src/store/index.js';

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
  const store = await LocalStore.open({ root, baseUrl: () => origin, clock: () => Date.now() + offset });
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
