/**
 * Malformed tensors for every decoder a participant reads the store with: a miner's activations
 * (each codec), a merger's gradient slices and optimizer moments, anyone's weight partitions and
 * stage manifests, and safetensors itself. Each input is a valid encoding damaged one way: header
 * bytes flipped, cut short, lengthened, its 8-byte header length forged, its header replaced by
 * hostile JSON, or plain random bytes. A decoder may return (the damage hit only data bytes) or
 * refuse with an IotaError and a code; anything else (a TypeError, a RangeError, a hang) is a
 * failure.
 */
import { randomBytes } from 'node:crypto';
import { decodeActivation, encodeActivation, type Codec } from '../../../src/compute/tensors.js';
import { isIotaError } from '../../../src/errors.js';
import { decodeSlice } from '../../../src/merge/gradient.js';
import {
  decodePartition,
  encodeManifest,
  encodePartition,
  MANIFEST_FORMAT,
  parseManifest,
} from '../../../src/merge/manifest.js';
import { decodeOptimState, encodeOptimState } from '../../../src/merge/update.js';
import { decodeSafetensors } from '../../../src/tensor-io/safetensors.js';
import { rng } from '../../support/rng.js';

export interface DecoderTally {
  inputs: number;
  /** decoder -> inputs it refused with a code / returned */
  refused: Record<string, number>;
  returned: Record<string, number>;
  codes: Record<string, number>;
  /** anything but a coded refusal or a well-formed result (one per decoder and error) */
  failures: Array<{ decoder: string; error: string }>;
}

const SHAPE: [number, number, number] = [2, 8, 5];
const N = 80;

const HOSTILE_HEADERS = [
  '{"a":{"dtype":"F32","shape":[2,8,5],"data_offsets":[0,99999999]}}',
  '{"a":{"dtype":"F32","shape":[-2,8,5],"data_offsets":[0,320]}}',
  '{"a":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,320]}}',
  '{"a":{"dtype":"X9","shape":[2,8,5],"data_offsets":[0,320]}}',
  '{"a":{"dtype":"F32","shape":[2,8,5],"data_offsets":[320,0]}}',
  '{"a":{"dtype":"F32","shape":"2,8,5","data_offsets":[0,320]}}',
  '{"__proto__":{"dtype":"F32","shape":[80],"data_offsets":[0,320]}}',
  '{"a":{"dtype":"F32","shape":[80],"data_offsets":[0,320]},"b":{"dtype":"F32","shape":[80],"data_offsets":[0,320]}}',
  '{"__metadata__":{"codec":{"x":1}},"a":{"dtype":"F32","shape":[2,8,5],"data_offsets":[0,320]}}',
  '[1,2,3]',
  'null',
  '{"a":null}',
  `{"a":{"dtype":"F32","shape":[${'1,'.repeat(2000)}1],"data_offsets":[0,4]}}`,
];

export function fuzzDecoders(n: number, seed = 9): DecoderTally {
  const random = rng(seed);
  const values = new Float32Array(N).map(() => random() - 0.5);
  const decoders: Array<{ name: string; good: Uint8Array; decode: (b: Uint8Array) => unknown }> = [
    ...(['f32', 'bf16', 'int8'] as Codec[]).map((codec) => ({
      name: `activation ${codec}`,
      good: encodeActivation(values, SHAPE, codec),
      decode: (b: Uint8Array) => {
        const out = decodeActivation(b, SHAPE);
        if (out.length !== N || out.some((x) => !Number.isFinite(x)))
          throw new Error('an activation of the wrong size or not finite was returned');
        return out;
      },
    })),
    {
      name: 'gradient slice',
      good: new Uint8Array(values.buffer.slice(0)),
      decode: (b) => decodeSlice(b, N),
    },
    {
      name: 'weights partition',
      good: encodePartition(values, 0),
      decode: (b) => decodePartition(b, N),
    },
    {
      name: 'optimizer moments',
      good: encodeOptimState(values, values.map(Math.abs), 0),
      decode: (b) => decodeOptimState(b, N),
    },
    { name: 'safetensors', good: encodePartition(values, 40), decode: (b) => decodeSafetensors(b) },
    {
      name: 'stage manifest',
      good: encodeManifest({
        format: MANIFEST_FORMAT,
        version: 1,
        run: 'r',
        stage: 0,
        epoch: 1,
        step: 1,
        params: N,
        partitions: [
          { index: 0, offset: 0, length: N, key: 'k', sha256: 'a'.repeat(64), size: 400 },
        ],
      }),
      decode: (b) => parseManifest(b),
    },
  ];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  const damage = (good: Uint8Array): Uint8Array => {
    const b = Uint8Array.from(good);
    const headerEnd = Math.min(b.length, 8 + Number(new DataView(b.buffer).getUint32(0, true)));
    switch (Math.floor(random() * 6)) {
      case 0: // flip bytes in the header
        for (let k = 0; k < 1 + Math.floor(random() * 4); k++)
          b[Math.floor(random() * headerEnd)] ^= 1 << Math.floor(random() * 8);
        return b;
      case 1:
        return b.subarray(0, Math.floor(random() * b.length));
      case 2:
        return Buffer.concat([b, randomBytes(1 + Math.floor(random() * 64))]);
      case 3: {
        const v = new DataView(b.buffer);
        const forged = pick([
          0n,
          1n,
          7n,
          BigInt(b.length),
          BigInt(b.length) * 1000n,
          2n ** 53n,
          2n ** 64n - 1n,
        ]);
        if (b.length >= 8) v.setBigUint64(0, forged, true);
        return b;
      }
      case 4: {
        const json = Buffer.from(pick(HOSTILE_HEADERS));
        const head = Buffer.alloc(8);
        head.writeBigUInt64LE(BigInt(json.length));
        return Buffer.concat([head, json, b.subarray(headerEnd)]);
      }
      default:
        return randomBytes(Math.floor(random() * 600));
    }
  };
  const tally: DecoderTally = { inputs: 0, refused: {}, returned: {}, codes: {}, failures: [] };
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const d = decoders[i % decoders.length];
    const bytes = damage(d.good);
    tally.inputs++;
    try {
      d.decode(bytes);
      tally.returned[d.name] = (tally.returned[d.name] ?? 0) + 1;
    } catch (e) {
      if (isIotaError(e)) {
        tally.refused[d.name] = (tally.refused[d.name] ?? 0) + 1;
        tally.codes[e.code] = (tally.codes[e.code] ?? 0) + 1;
        continue;
      }
      const what = `${d.name}: ${(e as Error).name}: ${(e as Error).message}`;
      if (!seen.has(what)) {
        seen.add(what);
        tally.failures.push({ decoder: d.name, error: what.slice(0, 300) });
      }
    }
  }
  return tally;
}
