/**
 * Creating or resuming a run: `iota orchestrator serve --run FILE`. A new run validates its
 * configs, tokenizes the corpus if needed, uploads the shards to the object store, and
 * publishes epoch 0's stage manifests from the seeded initial weights. A known run resumes
 * from the state database; a changed config is refused rather than silently mixed in.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stageParamCount, stageSpecs, type ModelConfig } from '../../config/model.js';
import type { RunConfig } from '../../config/run.js';
import {
  datasetDir,
  expandCorpus,
  loadDataset,
  LocalWindows,
  prepareData,
} from '../../data/index.js';
import { IotaError } from '../../errors.js';
import {
  encodeManifest,
  encodePartition,
  partitionBounds,
  partitionElements,
  MANIFEST_FORMAT,
  type StageManifest,
} from '../../merge/manifest.js';
import { initialWeights } from '../../model/init.js';
import { stageLayout } from '../../model/params.js';
import { keys, type ObjectStore } from '../../store/index.js';
import { sha256Hex } from '../../tensor-io/hash.js';
import type { ManifestRef, SwarmState, WindowRef } from '../state/swarm.js';
import type { SwarmSettings } from './contracts.js';

export interface OpenedRun {
  settings: SwarmSettings;
  configHash: string;
  /** manifests to create the run with; undefined when the run is resumed */
  manifests?: ManifestRef[];
  windows: LocalWindows;
}

/** The hash clients compare to know they train the same run (part of the version check). */
export function runConfigHash(run: RunConfig, model: ModelConfig): string {
  return sha256Hex(JSON.stringify({ run, model }));
}

export function dataKey(run: string, shard: string): string {
  return keys.data({ run, shard });
}

export async function openRun(o: {
  run: RunConfig;
  model: ModelConfig;
  state: SwarmState;
  store: ObjectStore;
  log: (s: string) => void;
}): Promise<OpenedRun> {
  const { run, model, state, store, log } = o;
  const configHash = runConfigHash(run, model);
  const existing = state.run();
  if (existing && existing.name !== run.name) {
    throw new IotaError(
      'E_RUN_MISMATCH',
      `this state folder holds run ${existing.name}, not ${run.name}`,
      'use another --state-dir for a new run',
    );
  }
  if (existing && existing.config_hash !== configHash) {
    throw new IotaError(
      'E_RUN_CHANGED',
      `the config of run ${run.name} changed since it was created`,
      'restore the run and model configs it was created with, or start a new run under another name or state folder',
    );
  }

  const dir = datasetDir(run.data.dir, model.tokenizer);
  if (!existsSync(join(dir, 'manifest.json'))) {
    log(`no dataset at ${dir}: tokenizing the ${run.data.corpus} corpus with ${model.tokenizer}`);
    await prepareData({
      out: run.data.dir,
      tokenizer: model.tokenizer,
      corpus: run.data.corpus === 'demo' ? 'demo' : { files: expandCorpus([run.data.corpus]) },
    });
  }
  const dataset = await loadDataset(dir);
  if (
    dataset.manifest.tokenizer !== model.tokenizer ||
    dataset.manifest.vocabSize > model.vocab_size
  ) {
    throw new IotaError(
      'E_DATA_MISMATCH',
      `${dir} holds ${dataset.manifest.tokenizer} tokens (vocab ` +
        `${dataset.manifest.vocabSize}); model ${model.name} uses ${model.tokenizer} ` +
        `(vocab ${model.vocab_size})`,
    );
  }
  const windows = new LocalWindows(dataset, model.seq, run.seed, run.data.held_out_fraction);
  const settings: SwarmSettings = {
    name: run.name,
    run,
    model,
    costs: stageSpecs(model).map((s) => stageParamCount(model, s)),
    params: stageSpecs(model).map((s) => stageLayout(model, s).size),
    window: (sampleId: number): WindowRef => {
      const w = windows.index.trainWindow(sampleId);
      const r = windows.index.byteRange(w);
      return {
        key: dataKey(run.name, r.shard),
        start: r.start,
        end: r.end,
        sha256: sha256Hex(windows.windowBytes(w)),
      };
    },
    heldOut: {
      count: windows.index.numHeldOut,
      window: (j: number): WindowRef => {
        const w = windows.index.heldOutWindow(j);
        const r = windows.index.byteRange(w);
        return {
          key: dataKey(run.name, r.shard),
          start: r.start,
          end: r.end,
          sha256: sha256Hex(windows.windowBytes(w)),
        };
      },
    },
  };
  if (existing) return { settings, configHash, windows };

  for (const shard of dataset.shards) {
    const key = dataKey(run.name, shard.name);
    const have = await store.head(key);
    if (have?.sha256 === shard.sha256) continue;
    log(`uploading shard ${shard.name} (${shard.bytes} bytes)`);
    await store.put(key, await readFile(shard.path));
  }
  const manifests: ManifestRef[] = [];
  const elements = partitionElements(run.merge.partition_bytes);
  for (const spec of stageSpecs(model)) {
    const flat = initialWeights(stageLayout(model, spec), run.seed);
    const manifest: StageManifest = {
      format: MANIFEST_FORMAT,
      version: 1,
      run: run.name,
      stage: spec.index,
      epoch: 0,
      step: 0,
      params: flat.length,
      partitions: [],
    };
    for (const [index, [offset, length]] of partitionBounds(flat.length, elements).entries()) {
      const key = keys.merged({
        run: run.name,
        epoch: 0,
        stage: spec.index,
        partition: index,
        owner: 'init',
      });
      const info = await store.put(
        key,
        encodePartition(flat.subarray(offset, offset + length), offset),
      );
      manifest.partitions.push({
        index,
        offset,
        length,
        key,
        size: info.size,
        sha256: info.sha256!,
      });
    }
    const key = keys.manifest({ run: run.name, epoch: 0, stage: spec.index });
    const info = await store.put(key, encodeManifest(manifest));
    manifests.push({ key, size: info.size, sha256: info.sha256!, epoch: 0, step: 0 });
  }
  log(`created run ${run.name}: ${manifests.length} stages, ${dataset.shards.length} shards`);
  return { settings, configHash, manifests, windows };
}
