/**
 * The two places a run's weights are exported from: a local run's state folder (the
 * orchestrator's database, opened read only, and its local object store), and a remote
 * orchestrator (a registered key reads the run's objects through the URLs it issues).
 */
import { join } from 'node:path';
import { validateConfig } from '../config/index.js';
import { IotaError, isIotaError } from '../errors.js';
import { SignedClient } from '../protocol/client.js';
import type { Identity } from '../protocol/keys.js';
import type { SwarmStatus } from '../protocol/swarm-messages.js';
import { download, LocalStore } from '../store/index.js';
import { keys } from '../store/keys.js';
import { RunDb } from './run-db.js';
import type { RunSource } from './stitch.js';

/** A run's state folder: `<dir>/state.db` and the local store (default `<dir>/store`). */
export async function localRunSource(stateDir: string, storeDir?: string): Promise<RunSource> {
  const db = RunDb.open(stateDir);
  try {
    const store = await LocalStore.open({
      root: storeDir ?? join(stateDir, 'store'),
      baseUrl: 'http://127.0.0.1',
      secretFile: join(stateDir, 'store-secret'),
    });
    return {
      run: db.run,
      model: db.model,
      async latestEpoch() {
        const epochs = db.stageEpochs();
        if (epochs.some((e) => e < 0))
          throw new IotaError('E_NO_EPOCH', `the run in ${stateDir} has no weights of every stage`);
        return Math.min(...epochs);
      },
      async manifest(stage, epoch) {
        const ref = db.manifest(stage, epoch);
        try {
          return { bytes: await store.get(ref.key), sha256: ref.sha256 };
        } catch (e) {
          if (!(isIotaError(e) && e.code === 'E_NOT_FOUND')) throw e;
          throw new IotaError(
            'E_EPOCH_PRUNED',
            `the weights of epoch ${epoch} (stage ${stage}) were deleted by retention`,
            `the run keeps the initial weights, ` +
              (db.run.keep_weights_every > 0
                ? `those of the epochs divisible by ${db.run.keep_weights_every} (keep_weights_every), `
                : '') +
              `and the last ${db.run.keep_epochs}: export one of those`,
          );
        }
      },
      object: (key) => store.get(key),
      async close() {
        db.close();
      },
    };
  } catch (e) {
    db.close();
    throw e;
  }
}

/** A remote run, read with a registered key (it registers as a participant if it is new). */
export async function remoteRunSource(
  baseUrl: string,
  identity: Identity,
  version: string,
): Promise<RunSource> {
  const client = new SignedClient({ baseUrl, identity, run: '' });
  try {
    const hello = await client.get<{ run: string; config_hash?: string }>('/v1/info');
    if (!hello.config_hash)
      throw new IotaError('E_NO_RUN', `${baseUrl} serves no run`, 'start it with --run FILE');
    (client.o as { run: string }).run = hello.run;
    await client.post('/v1/register', { version, backend: 'none' });
    const info = await client.get<{ run: unknown; model: unknown }>('/v1/run');
    const run = validateConfig('run', info.run, `${baseUrl}/v1/run`);
    const model = validateConfig('model', info.model, `${baseUrl}/v1/run`);
    const object = async (key: string) => {
      const o = await client.get<{ url: string; sha256: string; size: number }>(
        `/v1/storage/download?key=${encodeURIComponent(key)}`,
      );
      return { bytes: await download(o.url, { sha256: o.sha256, size: o.size }), sha256: o.sha256 };
    };
    return {
      run,
      model,
      async latestEpoch() {
        const st = await client.get<SwarmStatus>('/v1/swarm');
        return Math.min(...st.stages.map((s) => s.manifest.epoch));
      },
      manifest: (stage, epoch) => object(keys.manifest({ run: run.name, epoch, stage })),
      object: async (key) => (await object(key)).bytes,
      close: () => client.close(),
    };
  } catch (e) {
    await client.close();
    throw e;
  }
}
