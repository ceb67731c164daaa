/** What a miner is given (the CLI builds it), what it says (its events), and the run it joins. */
import type { ModelConfig } from '../config/model.js';
import type { RunConfig } from '../config/run.js';
import type { Identity } from '../protocol/keys.js';
import type { TransferOptions } from '../store/index.js';
import type { ManifestRefSchema } from '../protocol/swarm-messages.js';
import type { Static } from '@sinclair/typebox';

export interface MinerOptions {
  orchestrator: string;
  identity: Identity;
  layer: 'auto' | number;
  backend: string;
  version: string;
  name?: string;
  maxSamples?: number;
  maxEpochs?: number;
  /** called with every event (the CLI prints or renders them) */
  onEvent: (e: MinerEvent) => void;
  transfer?: TransferOptions;
  /** recompute each backward's forward instead of keeping its tape (less memory, more compute) */
  recompute?: boolean;
  /** where the built compute-worker.js is (default: beside this module; tests running from sources point at dist/) */
  computeWorker?: URL;
}

export type MinerEvent = { event: string; [k: string]: unknown };

export interface RunInfo {
  name: string;
  config_hash: string;
  stages: number;
  params: number[];
  run: RunConfig;
  model: ModelConfig;
}

export type ManifestRef = Static<typeof ManifestRefSchema>;

/** What a miner counts, for its view, its health port and its last words. */
export function newStats() {
  return {
    fwd: 0,
    bwd: 0,
    /** backwards from a kept forward, and those that ran the forward again */
    bwdKept: 0,
    bwdRecomputed: 0,
    tail: 0,
    samples: 0,
    bytesIn: 0,
    bytesOut: 0,
    refused: 0,
    lastLoss: NaN,
    epochsDone: 0,
    phase: '',
    idle: '',
  };
}
