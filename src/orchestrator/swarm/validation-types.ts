/** What a validator receives: a task to replay, and the items of a whole upload to recompute. */
import type { ManifestRef, ObjectRef, WindowRef } from '../state/swarm.js';
import type { MergeAuditInputs } from './merge-types.js';

export interface ReplayItem {
  item: number;
  kind: 'bwd' | 'tail';
  samples: number[];
  windows?: WindowRef[];
  x?: ObjectRef;
  dy?: ObjectRef;
}

export interface ValidationTask {
  id: number;
  epoch: number;
  stage: number;
  item: number;
  kind: 'fwd' | 'bwd' | 'tail' | 'upload' | 'merge';
  miner: string;
  samples: number[];
  /** the weights the miner used: the stage's manifest for that epoch */
  weights: ManifestRef;
  windows?: WindowRef[];
  x?: ObjectRef;
  dy?: ObjectRef;
  /** what the miner reported: its output and, at the tail, its mean loss */
  output?: ObjectRef;
  loss?: number;
  /** how forward outputs travel (the replay encodes its own the same way before comparing) */
  codec: string;
  expires_at: number;
  gradient?: ObjectRef;
  items?: ReplayItem[];
  /** a merged partition (item is the partition): what the merger used and uploaded */
  merge?: MergeAuditInputs & { partition: number };
}
