/**
 * The merge plan (pure): which participants merge which partitions of a stage's flat vector.
 * Every partition goes to `r = min(replicas, k)` distinct participants, round-robin over an
 * order shuffled by a seed that nobody knows before the uploads close (it hashes the run seed,
 * the epoch, the stage and every upload's sha256), so loads differ by at most one partition.
 * The plan freezes each participant's credit `n` and the total `N`.
 */
import { sha256Hex } from '../tensor-io/hash.js';
import { partitionBounds } from './manifest.js';

export interface PlanParticipant {
  miner: string;
  /** its gradient sum object, as accepted by the orchestrator */
  key: string;
  size: number;
  sha256: string;
  /** samples the ledger credits it */
  n: number;
  /** sha256 of each partition's bytes of its gradient (declared with the upload) */
  partitions: string[];
}

export interface PlannedPartition {
  index: number;
  offset: number;
  length: number;
  mergers: string[];
}

export interface MergePlan {
  seed: string;
  epoch: number;
  stage: number;
  /** elements of the stage's flat vector */
  params: number;
  /** the sum of the participants' credits */
  N: number;
  replicas: number;
  /** ascending by id: the order of the reduction's sum */
  participants: PlanParticipant[];
  partitions: PlannedPartition[];
}

export interface PlanInput {
  runSeed: number | string;
  epoch: number;
  stage: number;
  params: number;
  partitionElements: number;
  replicas: number;
  participants: PlanParticipant[];
}

export function planSeed(
  runSeed: number | string,
  epoch: number,
  stage: number,
  hashes: readonly string[],
): string {
  return sha256Hex(
    `iota-merge-plan\n${runSeed}\n${epoch}\n${stage}\n${[...hashes].sort().join('\n')}`,
  );
}

/** A deterministic shuffle (Fisher-Yates) driven by sha256 of the seed and a counter. */
function shuffled<T>(items: readonly T[], seed: string): T[] {
  const out = [...items];
  const pool: number[] = [];
  let counter = 0;
  const next = (): number => {
    if (pool.length === 0) {
      const h = sha256Hex(`${seed}:${counter++}`);
      for (let i = 0; i < 64; i += 8) pool.push(parseInt(h.slice(i, i + 8), 16));
    }
    return pool.pop()!;
  };
  for (let i = out.length - 1; i > 0; i--) {
    const j = next() % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

export function makePlan(input: PlanInput): MergePlan {
  const participants = [...input.participants].sort((a, b) =>
    a.miner < b.miner ? -1 : a.miner > b.miner ? 1 : 0,
  );
  const k = participants.length;
  if (k === 0) throw new Error('makePlan: no participants');
  const ids = new Set(participants.map((p) => p.miner));
  if (ids.size !== k) throw new Error('makePlan: a participant appears twice');
  const seed = planSeed(
    input.runSeed,
    input.epoch,
    input.stage,
    participants.map((p) => p.sha256),
  );
  const r = Math.min(input.replicas, k);
  const order = shuffled(
    participants.map((p) => p.miner),
    seed,
  );
  const partitions = partitionBounds(input.params, input.partitionElements).map(
    ([offset, length], index) => ({
      index,
      offset,
      length,
      mergers: Array.from({ length: r }, (_, i) => order[(index * r + i) % k]),
    }),
  );
  return {
    seed,
    epoch: input.epoch,
    stage: input.stage,
    params: input.params,
    N: participants.reduce((a, p) => a + p.n, 0),
    replicas: r,
    participants,
    partitions,
  };
}

/** Partitions each participant merges. */
export function loads(plan: MergePlan): Map<string, number> {
  const out = new Map(plan.participants.map((p) => [p.miner, 0]));
  for (const p of plan.partitions) for (const m of p.mergers) out.set(m, out.get(m)! + 1);
  return out;
}
