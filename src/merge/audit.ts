/**
 * A validator's spot check of one merged partition (DESIGN.md section 5): it reads a few runs
 * of elements by Range from every participant's gradient, from w_E and the previous moments,
 * and from the merger's uploaded weights and moments, recomputes step 1 and step 2 on just
 * those elements (both are elementwise, in plain JavaScript, so an honest merger's bytes are
 * reproduced exactly), and counts the elements that differ.
 */
import { IotaError } from '../errors.js';
import type { AdamWSettings } from '../model/optimizer.js';
import type { ParamSpec } from '../model/params.js';
import {
  PREFIX_BYTES,
  readHeaderLength,
  readSafetensorsHeader,
  type SafetensorsHeader,
} from '../tensor-io/header.js';
import { decodeSlice } from './gradient.js';
import { reduceSlices } from './reduce.js';
import { verdictOnUnreadable } from '../store/unreadable.js';
import { updatePartition } from './update.js';

/** Verified byte ranges of stored objects (the caller checks them against the object's chunk hashes). */
export interface RangeReader {
  read(key: string, start: number, end: number): Promise<Uint8Array>;
  /** the object's length in bytes */
  size(key: string): Promise<number>;
}

export interface MergeAuditSpec {
  offset: number;
  length: number;
  N: number;
  clip_factor: number;
  lr: number;
  /** the optimizer step this merge took */
  t: number;
  /** each participant's gradient object and the bytes of this partition in it */
  inputs: Array<{ miner: string; key: string; start: number; end: number }>;
  /** w_E of the partition and the moments before the step (absent before the first step) */
  w: string;
  optim?: string;
  /** what the merger uploaded */
  result: { w: string; optim: string };
}

export interface AuditOutcome {
  elements: number;
  /** elements of w, m or v whose bits differ from the recomputation */
  mismatches: number;
  /** ||w_replay - w_merger|| / ||w_replay|| over the elements read (and the same for m, v: the largest) */
  relErr: number;
}

/** `runs` runs of `run` consecutive elements at random starts in [0, length) (overlaps merge). */
export function pickRuns(
  length: number,
  runs: number,
  run: number,
  random: () => number,
): Array<[number, number]> {
  const n = Math.min(run, length);
  const starts = Array.from({ length: runs }, () => Math.floor(random() * (length - n + 1))).sort(
    (a, b) => a - b,
  );
  const out: Array<[number, number]> = [];
  for (const s of starts) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], s + n);
    else out.push([s, s + n]);
  }
  return out;
}

/** Reads elements [a, b) of a float32 tensor of a safetensors object, header first (cached per key). */
export class TensorRanges {
  private headers = new Map<string, Promise<SafetensorsHeader>>();
  constructor(private readonly reader: RangeReader) {}

  private header(key: string): Promise<SafetensorsHeader> {
    let h = this.headers.get(key);
    if (!h) {
      h = (async () => {
        const prefix = await this.reader.read(key, 0, PREFIX_BYTES);
        const n = readHeaderLength(prefix);
        const rest = await this.reader.read(key, PREFIX_BYTES, PREFIX_BYTES + n);
        const bytes = new Uint8Array(PREFIX_BYTES + n);
        bytes.set(prefix);
        bytes.set(rest, PREFIX_BYTES);
        return readSafetensorsHeader(bytes, { fileBytes: await this.reader.size(key) });
      })();
      this.headers.set(key, h);
    }
    return h;
  }

  async read(key: string, tensor: string, a: number, b: number): Promise<Float32Array> {
    const h = await this.header(key);
    const t = h.tensors[tensor];
    if (!t || t.dtype !== 'F32')
      throw new IotaError('E_BAD_TENSOR', `${key} has no float32 tensor ${tensor}`);
    const start = h.dataStart + t.dataOffsets[0] + 4 * a;
    if (h.dataStart + t.dataOffsets[0] + 4 * b > h.dataStart + t.dataOffsets[1])
      throw new IotaError('E_BAD_TENSOR', `${key}: tensor ${tensor} is shorter than element ${b}`);
    return decodeSlice(await this.reader.read(key, start, start + 4 * (b - a)), b - a);
  }
}

/** Recomputes the chosen runs of a merged partition and compares with the merger's objects. */
export async function auditMerge(
  spec: MergeAuditSpec,
  runs: ReadonlyArray<[number, number]>,
  reader: RangeReader,
  layout: readonly ParamSpec[],
  adamw: Omit<AdamWSettings, 'lr'>,
): Promise<AuditOutcome> {
  const tensors = new TensorRanges(reader);
  let elements = 0;
  let mismatches = 0;
  const num = [0, 0, 0];
  const den = [0, 0, 0];
  for (const [a, b] of runs) {
    const n = b - a;
    const slices = await Promise.all(
      spec.inputs.map(async (i) => ({
        miner: i.miner,
        data: decodeSlice(await reader.read(i.key, i.start + 4 * a, i.start + 4 * b), n),
      })),
    );
    const { gbar } = reduceSlices(slices, spec.N);
    const wE = await tensors.read(spec.w, 'w', a, b);
    const prev = spec.optim
      ? {
          m: await tensors.read(spec.optim, 'm', a, b),
          v: await tensors.read(spec.optim, 'v', a, b),
        }
      : undefined;
    const want = updatePartition(
      wE,
      gbar,
      prev,
      spec.offset + a,
      layout,
      { ...adamw, lr: spec.lr },
      spec.t,
      spec.clip_factor,
    );
    const got = await Promise.all([
      tensors.read(spec.result.w, 'w', a, b),
      tensors.read(spec.result.optim, 'm', a, b),
      tensors.read(spec.result.optim, 'v', a, b),
    ]).catch((e) => {
      // The merger's own objects are its claim: malformed, they fail it; gone since (pruned) or
      // out of reach, they say nothing about it (store/unreadable.ts).
      throw e instanceof IotaError && verdictOnUnreadable(e.code) === false
        ? new IotaError(
            'E_MERGE_RESULT_UNUSABLE',
            `the merger's result is unusable (${e.code}): ${e.message}`,
          )
        : e;
    });
    [want.w, want.m, want.v].forEach((v, k) => {
      for (let j = 0; j < n; j++) {
        if (!Object.is(v[j], got[k][j])) mismatches++;
        num[k] += (v[j] - got[k][j]) ** 2;
        den[k] += v[j] ** 2;
      }
    });
    elements += n;
  }
  const rel = num.map((x, k) => (den[k] === 0 ? (x === 0 ? 0 : Infinity) : Math.sqrt(x / den[k])));
  return { elements, mismatches, relErr: Math.max(...rel) };
}
