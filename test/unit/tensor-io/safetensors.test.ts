import { isIotaError } from '../../../src/errors.js';
import {
  TensorEntry,
  decodeSafetensors,
  encodeSafetensors,
  readHeaderLength,
  readSafetensorsHeader,
} from '../../../src/tensor-io/index.js';

/** A file from a literal header object and data bytes, as another writer might produce it. */
function rawFile(header: unknown, data: ArrayLike<number> = [], pad = 0): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  return withPrefix(json.length, json, Uint8Array.from(data));
}

function withPrefix(
  headerLength: number | bigint,
  json: Uint8Array,
  data = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function expectBad(fn: () => unknown, fragment: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(isIotaError(caught)).toBe(true);
  const err = caught as { code: string; message: string };
  expect(err.code).toBe('E_BAD_TENSOR');
  expect(err.message).toContain(fragment);
}

const f32 = (shape: number[], values: number[]): TensorEntry => ({
  dtype: 'F32',
  shape,
  data: Float32Array.from(values),
});
const oneF32 = { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } };

function sample(): Record<string, TensorEntry> {
  return {
    'w.f32': f32([2, 3], [1, -2.5, 3e38, -1e-40, 0, 7]),
    'w.f16': { dtype: 'F16', shape: [3], data: Uint16Array.from([0x3c00, 0xc000, 0x0001]) },
    'w.bf16': { dtype: 'BF16', shape: [2], data: Uint16Array.from([0x3f80, 0xbf82]) },
    'w.i32': {
      dtype: 'I32',
      shape: [2, 2],
      data: Int32Array.from([-2147483648, -1, 0, 2147483647]),
    },
    'w.u8': { dtype: 'U8', shape: [5], data: Uint8Array.from([0, 1, 127, 128, 255]) },
    scalar: f32([], [42]),
    empty: f32([0, 3], []),
  };
}

describe('safetensors round trip', () => {
  it('round-trips every dtype with metadata', () => {
    const tensors = sample();
    const metadata = { stage: '1', blocks: '0..3', codec: 'bf16' };
    const out = decodeSafetensors(encodeSafetensors(tensors, metadata));
    expect(out.metadata).toEqual(metadata);
    expect(Object.keys(out.tensors).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      expect(out.tensors[name].dtype).toBe(t.dtype);
      expect(out.tensors[name].shape).toEqual(t.shape);
      expect(out.tensors[name].data.constructor.name).toBe(t.data.constructor.name);
      expect(Array.from(out.tensors[name].data)).toEqual(Array.from(t.data));
    }
  });

  it('writes identical bytes whatever order tensors and metadata are given in', () => {
    const a = sample();
    const b = Object.fromEntries(Object.entries(a).reverse());
    const bytesA = encodeSafetensors(a, { x: '1', y: '2' });
    const bytesB = encodeSafetensors(b, { y: '2', x: '1' });
    expect(Buffer.from(bytesA).equals(Buffer.from(bytesB))).toBe(true);
  });

  it('pads the header with spaces to a multiple of 8 and aligns every tensor to its element size', () => {
    let padded = 0;
    for (let k = 0; k < 8; k++) {
      const bytes = encodeSafetensors(sample(), { k: 'v'.repeat(k) });
      const { dataStart } = readSafetensorsHeader(bytes);
      expect(dataStart % 8).toBe(0);
      const text = new TextDecoder().decode(bytes.subarray(8, dataStart));
      const json = text.trimEnd();
      expect(text.slice(json.length)).toMatch(/^ *$/);
      padded += text.length - json.length;
    }
    expect(padded).toBeGreaterThan(0);
    const bytes = encodeSafetensors(sample(), { k: 'v' });
    const header = readSafetensorsHeader(bytes);
    for (const t of Object.values(header.tensors)) {
      expect(t.dataOffsets[0] % { F32: 4, I32: 4, F16: 2, BF16: 2, U8: 1 }[t.dtype]).toBe(0);
    }
    // Aligned tensors decode as views, no copies.
    const out = decodeSafetensors(bytes);
    expect(out.tensors['w.f32'].data.buffer).toBe(bytes.buffer);
  });

  it('decodes from a misaligned buffer into aligned copies', () => {
    const bytes = encodeSafetensors(sample());
    const shifted = new Uint8Array(bytes.length + 1).subarray(1);
    shifted.set(bytes);
    const out = decodeSafetensors(shifted);
    const data = out.tensors['w.f32'].data;
    expect(data.byteOffset % 4).toBe(0);
    expect(Array.from(data)).toEqual(Array.from(sample()['w.f32'].data));
  });

  it('decodes a misaligned Buffer view (a range cut out of a download) into aligned copies', () => {
    const bytes = encodeSafetensors(sample());
    const shifted = Buffer.concat([Buffer.from([0]), bytes]).subarray(1);
    expect(shifted.byteOffset % 4).not.toBe(0);
    const data = decodeSafetensors(shifted).tensors['w.f32'].data;
    expect(data.byteOffset % 4).toBe(0);
    expect(Array.from(data)).toEqual(Array.from(sample()['w.f32'].data));
  });

  it('reads files from other writers: unpadded header, name-ordered data', () => {
    const data = new Uint8Array(Float32Array.from([1.5, -2]).buffer);
    const bytes = rawFile(
      {
        b: { dtype: 'U8', shape: [1], data_offsets: [8, 9] },
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      },
      [...data, 9],
    );
    const out = decodeSafetensors(bytes);
    expect(Array.from(out.tensors.a.data)).toEqual([1.5, -2]);
    expect(Array.from(out.tensors.b.data)).toEqual([9]);
    expect(out.metadata).toEqual({});
  });

  it('treats a tensor named __proto__ as an ordinary name', () => {
    const tensors: Record<string, TensorEntry> = Object.create(null);
    tensors['__proto__'] = f32([1], [3]);
    const out = decodeSafetensors(encodeSafetensors(tensors));
    expect(Object.keys(out.tensors)).toEqual(['__proto__']);
    expect(Array.from(out.tensors['__proto__'].data)).toEqual([3]);
  });

  it('reads the header from a prefix of the file, given the file size', () => {
    const bytes = encodeSafetensors(sample());
    const n = readHeaderLength(bytes.subarray(0, 8));
    const header = readSafetensorsHeader(bytes.subarray(0, 8 + n), { fileBytes: bytes.length });
    expect(header.dataStart).toBe(8 + n);
    expect(header.tensors['w.u8']).toEqual({
      dtype: 'U8',
      shape: [5],
      dataOffsets: expect.any(Array),
    });
    const [b, e] = header.tensors['w.u8'].dataOffsets;
    expect(Array.from(bytes.subarray(header.dataStart + b, header.dataStart + e))).toEqual([
      0, 1, 127, 128, 255,
    ]);
  });

  it('allows non-finite values only when requireFinite is false', () => {
    const bytes = encodeSafetensors({ x: f32([2], [1, NaN]) });
    expectBad(() => decodeSafetensors(bytes), "tensor 'x': element 1 is not finite");
    expect(Number.isNaN(decodeSafetensors(bytes, { requireFinite: false }).tensors.x.data[1])).toBe(
      true,
    );
  });
});

describe('safetensors refuses malformed input', () => {
  it('refuses a file shorter than 8 bytes', () => {
    expectBad(() => decodeSafetensors(new Uint8Array(7)), 'shorter than the 8-byte header length');
  });

  it('refuses a header length beyond the file', () => {
    const json = new TextEncoder().encode('{}');
    expectBad(() => decodeSafetensors(withPrefix(3, json)), 'header length 3 is beyond the file');
    expectBad(
      () => decodeSafetensors(withPrefix(2n ** 64n - 1n, json), { maxHeaderBytes: Infinity }),
      'beyond the file',
    );
  });

  it('refuses a header length beyond maxHeaderBytes', () => {
    const bytes = rawFile({ a: { dtype: 'U8', shape: [0], data_offsets: [0, 0] } });
    expectBad(
      () => decodeSafetensors(bytes, { maxHeaderBytes: 16 }),
      'beyond the limit of 16 bytes',
    );
  });

  it('refuses a header claiming 2^50 bytes without allocating it', () => {
    const before = process.memoryUsage().arrayBuffers;
    expectBad(
      () => decodeSafetensors(withPrefix(2n ** 50n, new Uint8Array(8))),
      'header length 1125899906842624 is beyond the limit',
    );
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1 << 20);
  });

  it('refuses a header that is not JSON or not UTF-8', () => {
    expectBad(
      () => decodeSafetensors(withPrefix(5, new TextEncoder().encode('{"a":'))),
      'not valid UTF-8 JSON',
    );
    expectBad(
      () => decodeSafetensors(withPrefix(3, Uint8Array.from([0x7b, 0xff, 0x7d]))),
      'not valid UTF-8 JSON',
    );
  });

  it('refuses a header that is not a JSON object', () => {
    for (const header of [[], null, 3, 'x']) {
      expectBad(() => decodeSafetensors(rawFile(header)), 'header is not a JSON object');
    }
  });

  it('refuses an unknown dtype', () => {
    const bytes = rawFile(
      { a: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } },
      new Array(8).fill(0),
    );
    expectBad(() => decodeSafetensors(bytes), `tensor 'a': unknown dtype "I64"`);
  });

  it('refuses an entry that is not an object or has unknown fields', () => {
    expectBad(() => decodeSafetensors(rawFile({ a: [1] })), "tensor 'a': entry is not an object");
    const extra = { a: { ...oneF32.a, extra: 1 } };
    expectBad(
      () => decodeSafetensors(rawFile(extra, [0, 0, 0, 0])),
      "tensor 'a': unknown field 'extra'",
    );
  });

  it('refuses a shape that is not an array of non-negative safe integers', () => {
    for (const shape of [[-1], [1.5], '4', [2 ** 53], [2 ** 30, 2 ** 30, 2 ** 30], null]) {
      const bytes = rawFile({ a: { dtype: 'U8', shape, data_offsets: [0, 0] } });
      expectBad(
        () => decodeSafetensors(bytes),
        `tensor 'a': shape must be an array of non-negative safe integers`,
      );
    }
  });

  it('refuses data_offsets that are not [begin, end] inside the buffer', () => {
    for (const offsets of [[0], [4, 0], [0, 8], [-4, 0], ['0', 4], [0, 4, 4], [0.5, 4.5], null]) {
      const bytes = rawFile(
        { a: { dtype: 'F32', shape: [1], data_offsets: offsets } },
        [0, 0, 0, 0],
      );
      expectBad(
        () => decodeSafetensors(bytes),
        `tensor 'a': data_offsets must be [begin, end] with 0 <= begin <= end <= 4`,
      );
    }
  });

  it('refuses a byte size that does not match the shape and dtype', () => {
    const bytes = rawFile(
      { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } },
      new Array(8).fill(0),
    );
    expectBad(
      () => decodeSafetensors(bytes),
      "tensor 'a': byte size 8 does not match F32 [3], which needs 12 bytes",
    );
  });

  it('refuses overlapping tensors', () => {
    const header = {
      a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] },
      b: { dtype: 'U8', shape: [2], data_offsets: [2, 4] },
    };
    expectBad(
      () => decodeSafetensors(rawFile(header, [1, 2, 3, 4])),
      "tensors 'a' and 'b' overlap",
    );
  });

  it('refuses bytes of the buffer that belong to no tensor', () => {
    const gap = {
      a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] },
      b: { dtype: 'U8', shape: [1], data_offsets: [2, 3] },
    };
    expectBad(
      () => decodeSafetensors(rawFile(gap, [1, 2, 3])),
      'bytes 1..2 of the data buffer belong to no tensor',
    );
    expectBad(
      () => decodeSafetensors(rawFile(oneF32, [0, 0, 0, 0, 9])),
      'bytes 4..5 of the data buffer belong to no tensor',
    );
    expectBad(
      () => decodeSafetensors(rawFile({}, [9])),
      'bytes 0..1 of the data buffer belong to no tensor',
    );
  });

  it('refuses a duplicated name whose first entry is left without bytes (JSON.parse keeps the last)', () => {
    const json =
      '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    const bytes = withPrefix(json.length, new TextEncoder().encode(json), Uint8Array.from([1, 2]));
    expectBad(() => decodeSafetensors(bytes), 'bytes 0..1 of the data buffer belong to no tensor');
  });

  it('refuses metadata that is not an object of strings', () => {
    expectBad(
      () => decodeSafetensors(rawFile({ __metadata__: { k: 1 } })),
      "metadata value for 'k' is not a string",
    );
    expectBad(
      () => decodeSafetensors(rawFile({ __metadata__: ['x'] })),
      '__metadata__ is not an object',
    );
  });

  it('refuses NaN and infinity in F32, F16 and BF16 tensors', () => {
    const cases: TensorEntry[] = [
      f32([2], [0, Infinity]),
      f32([2], [0, -Infinity]),
      { dtype: 'F16', shape: [2], data: Uint16Array.from([0, 0x7c00]) },
      { dtype: 'F16', shape: [2], data: Uint16Array.from([0, 0xfe00]) },
      { dtype: 'BF16', shape: [2], data: Uint16Array.from([0, 0x7fc0]) },
      { dtype: 'BF16', shape: [2], data: Uint16Array.from([0, 0xff80]) },
    ];
    for (const t of cases) {
      expectBad(
        () => decodeSafetensors(encodeSafetensors({ t })),
        "tensor 't': element 1 is not finite",
      );
    }
    // The same bit patterns are ordinary integers in I32 and U8.
    const ints = encodeSafetensors({
      i: { dtype: 'I32', shape: [1], data: Int32Array.from([0x7fc00000]) },
    });
    expect(decodeSafetensors(ints).tensors.i.data[0]).toBe(0x7fc00000);
  });

  it('refuses a file that does not hold the expected tensors', () => {
    const bytes = encodeSafetensors({ x: f32([2, 3], [1, 2, 3, 4, 5, 6]) });
    expect(() =>
      decodeSafetensors(bytes, { expect: { x: { dtype: 'F32', shape: [2, 3] } } }),
    ).not.toThrow();
    expectBad(() => decodeSafetensors(bytes, { expect: { y: {} } }), "missing tensor 'y'");
    expectBad(
      () => decodeSafetensors(bytes, { expect: { x: { dtype: 'BF16' } } }),
      "tensor 'x': expected dtype BF16, got F32",
    );
    expectBad(
      () => decodeSafetensors(bytes, { expect: { x: { shape: [3, 2] } } }),
      "tensor 'x': expected shape [3,2], got [2,3]",
    );
  });
});

describe('safetensors encoder refuses inconsistent tensors', () => {
  it('refuses data of the wrong typed array, a wrong element count and the reserved name', () => {
    const wrongArray = { dtype: 'F32', shape: [1], data: Int32Array.from([1]) } as TensorEntry;
    expectBad(
      () => encodeSafetensors({ a: wrongArray }),
      "tensor 'a': data is not the typed array for F32",
    );
    expectBad(
      () => encodeSafetensors({ a: f32([2, 2], [1, 2, 3]) }),
      "tensor 'a': shape [2,2] needs 4 elements, data has 3",
    );
    expectBad(
      () => encodeSafetensors({ __metadata__: f32([1], [1]) }),
      "'__metadata__' is reserved",
    );
    expectBad(
      () => encodeSafetensors({ a: f32([1], [1]) }, { k: 3 as unknown as string }),
      "metadata value for 'k' is not a string",
    );
  });
});

describe('encoded sizes', () => {
  it('are the lengths of the encodings, for every object the swarm uploads', async () => {
    const { activationSize, encodeActivation } = await import('../../../src/compute/tensors.js');
    const { gradientSize, encodeGradient } = await import('../../../src/merge/gradient.js');
    const { partitionSize, encodePartition } = await import('../../../src/merge/manifest.js');
    const { optimStateSize, encodeOptimState } = await import('../../../src/merge/update.js');
    for (const codec of ['f32', 'bf16', 'int8'] as const)
      for (const shape of [
        [1, 64, 16],
        [4, 800, 128],
        [3, 7, 5],
      ] as Array<[number, number, number]>)
        expect(activationSize(shape, codec)).toBe(
          encodeActivation(new Float32Array(shape[0] * shape[1] * shape[2]), shape, codec).length,
        );
    for (const n of [0, 1, 999, 123_457]) {
      expect(gradientSize(n)).toBe(encodeGradient(new Float32Array(n)).length);
      expect(partitionSize(n, 7 * n)).toBe(encodePartition(new Float32Array(n), 7 * n).length);
      expect(optimStateSize(n, 3)).toBe(
        encodeOptimState(new Float32Array(n), new Float32Array(n), 3).length,
      );
    }
  });
});
