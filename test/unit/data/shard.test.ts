import {
  SHARD_HEADER_BYTES,
  decodeShard,
  decodeTokens,
  encodeShard,
  readShardHeader,
} from '../../../src/data/shard.js';

const badShard = expect.objectContaining({ code: 'E_BAD_SHARD' });

describe('token shards', () => {
  it('round-trips tokens with 2 bytes each for a vocabulary of at most 65536', () => {
    const tokens = [0, 1, 255, 256, 65535, 42];
    const bytes = encodeShard(tokens, 'gpt2', 65536);
    expect(bytes.length).toBe(SHARD_HEADER_BYTES + tokens.length * 2);
    const { header, tokens: back } = decodeShard(bytes);
    expect(header).toEqual({
      version: 1,
      headerBytes: 64,
      tokenizer: 'gpt2',
      vocabSize: 65536,
      bytesPerToken: 2,
      tokens: 6,
    });
    expect(Array.from(back)).toEqual(tokens);
  });

  it('round-trips tokens with 4 bytes each for a larger vocabulary', () => {
    const tokens = [0, 65536, 128255, 70000, 1];
    const bytes = encodeShard(tokens, 'llama3', 128256);
    expect(bytes.length).toBe(SHARD_HEADER_BYTES + tokens.length * 4);
    const { header, tokens: back } = decodeShard(bytes);
    expect(header.bytesPerToken).toBe(4);
    expect(Array.from(back)).toEqual(tokens);
  });

  it('writes the documented header layout, little-endian', () => {
    const bytes = encodeShard([0x0102, 0x0304], 'gpt2', 50257);
    expect(Buffer.from(bytes.subarray(0, 8)).toString('ascii')).toBe('IOTASHRD');
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    expect(view.getUint32(8, true)).toBe(1);
    expect(view.getUint32(12, true)).toBe(64);
    expect(Buffer.from(bytes.subarray(16, 32)).toString('ascii')).toBe(
      'gpt2\0\0\0\0\0\0\0\0\0\0\0\0',
    );
    expect(view.getUint32(32, true)).toBe(50257);
    expect(view.getUint32(36, true)).toBe(2);
    expect(view.getBigUint64(40, true)).toBe(2n);
    expect(bytes.subarray(48, 64).every((b) => b === 0)).toBe(true);
    expect(Array.from(bytes.subarray(64))).toEqual([0x02, 0x01, 0x04, 0x03]);
  });

  it('round-trips an empty shard', () => {
    expect(decodeShard(encodeShard([], 'byte', 256)).tokens.length).toBe(0);
  });

  it('reads the header from the first 64 bytes alone', () => {
    const bytes = encodeShard(new Array(1000).fill(7), 'byte', 256);
    expect(readShardHeader(bytes.subarray(0, 64)).tokens).toBe(1000);
  });

  it('refuses a token outside the vocabulary when encoding', () => {
    expect(() => encodeShard([1, 256], 'byte', 256)).toThrow(badShard);
    expect(() => encodeShard([-1], 'byte', 256)).toThrow(badShard);
    expect(() => encodeShard([1.5], 'byte', 256)).toThrow(badShard);
  });

  it('refuses bad magic, version, header size and token width', () => {
    const good = encodeShard([1, 2, 3], 'byte', 256);
    const tamper = (offset: number, value: number): Uint8Array => {
      const b = good.slice();
      new DataView(b.buffer).setUint32(offset, value, true);
      return b;
    };
    const magic = good.slice();
    magic[0] = 0x58;
    expect(() => decodeShard(magic)).toThrow(badShard);
    expect(() => decodeShard(tamper(8, 2))).toThrow(badShard);
    expect(() => decodeShard(tamper(12, 128))).toThrow(badShard);
    expect(() => decodeShard(tamper(36, 4))).toThrow(badShard);
  });

  it('refuses a truncated or overlong shard', () => {
    const good = encodeShard([1, 2, 3], 'byte', 256);
    expect(() => decodeShard(good.subarray(0, 40))).toThrow(badShard);
    expect(() => decodeShard(good.subarray(0, good.length - 1))).toThrow(badShard);
    expect(() => decodeShard(good.subarray(0, good.length - 2))).toThrow(badShard);
    expect(() => decodeShard(new Uint8Array([...good, 0, 0]))).toThrow(badShard);
  });

  it('refuses a stored token outside the vocabulary', () => {
    const b = encodeShard([1, 2, 3], 'gpt2', 50257);
    new DataView(b.buffer).setUint16(64 + 2, 50257, true);
    expect(() => decodeShard(b)).toThrow(badShard);
  });

  it('decodes a byte range of tokens at any alignment', () => {
    const bytes = new Uint8Array([0xff, 0x01, 0x00, 0x02, 0x00]);
    expect(Array.from(decodeTokens(bytes.subarray(1), 2))).toEqual([1, 2]);
    expect(() => decodeTokens(bytes.subarray(1, 4), 2)).toThrow(badShard);
  });
});
