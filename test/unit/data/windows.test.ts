import { decodeShard, encodeShard } from '../../../src/data/shard.js';
import { WindowIndex, readWindow, type ShardInfo } from '../../../src/data/windows.js';

const shard = (name: string, tokens: number, bytesPerToken = 2): ShardInfo => ({
  name,
  tokens,
  bytesPerToken,
  headerBytes: 64,
});

describe('WindowIndex', () => {
  it('cuts non-overlapping windows of seq + 1 tokens that never cross a shard end', () => {
    // seq 4 -> windows of 5: 12 tokens give 2 (2 left over), 4 give none, 15 give 3.
    const shards = [shard('a', 12), shard('empty', 4), shard('b', 15)];
    const idx = new WindowIndex(shards, 4, 's');
    expect(idx.numWindows).toBe(5);
    const covered = new Map<string, Set<number>>();
    for (let w = 0; w < idx.numWindows; w++) {
      const { shard: name, shardIndex, tokenStart } = idx.locate(w);
      expect(shards[shardIndex].name).toBe(name);
      expect(tokenStart % 5).toBe(0);
      expect(tokenStart + 5).toBeLessThanOrEqual(shards[shardIndex].tokens);
      const set = covered.get(name) ?? new Set<number>();
      for (let t = tokenStart; t < tokenStart + 5; t++) {
        expect(set.has(t)).toBe(false);
        set.add(t);
      }
      covered.set(name, set);
    }
    expect([...covered.keys()]).toEqual(['a', 'b']);
    expect(idx.locate(0)).toEqual({ shard: 'a', shardIndex: 0, tokenStart: 0 });
    expect(idx.locate(2)).toEqual({ shard: 'b', shardIndex: 2, tokenStart: 0 });
    expect(idx.locate(4)).toEqual({ shard: 'b', shardIndex: 2, tokenStart: 10 });
  });

  it('gives byte ranges of exactly seq + 1 tokens after the header', () => {
    const idx = new WindowIndex([shard('a', 10, 2), shard('b', 10, 4)], 4, 's');
    expect(idx.byteRange(1)).toEqual({ shard: 'a', start: 64 + 5 * 2, end: 64 + 10 * 2 });
    expect(idx.byteRange(3)).toEqual({ shard: 'b', start: 64 + 5 * 4, end: 64 + 10 * 4 });
  });

  it('never hands a held-out window to training, and covers every training window once per cycle', () => {
    const idx = new WindowIndex([shard('a', 3000), shard('b', 1234)], 7, 'run-1');
    expect(idx.numWindows).toBe(375 + 154);
    expect(idx.numHeldOut).toBe(5);
    expect(idx.numTrain).toBe(idx.numWindows - 5);
    const held = new Set<number>();
    for (let j = 0; j < idx.numHeldOut; j++) held.add(idx.heldOutWindow(j));
    expect(held.size).toBe(idx.numHeldOut);
    const trained = new Set<number>();
    for (let i = 0; i < idx.numTrain; i++) {
      const w = idx.trainWindow(i);
      expect(held.has(w)).toBe(false);
      expect(idx.isHeldOut(w)).toBe(false);
      trained.add(w);
    }
    expect(trained.size).toBe(idx.numTrain);
    for (const w of held) expect(idx.isHeldOut(w)).toBe(true);
    // The next cycle repeats the same order.
    expect(idx.trainWindow(idx.numTrain + 3)).toBe(idx.trainWindow(3));
  });

  it('holds out at least one window when there are two or more, and none when there is one', () => {
    expect(new WindowIndex([shard('a', 4)], 1, 's').numHeldOut).toBe(1);
    expect(new WindowIndex([shard('a', 2)], 1, 's').numHeldOut).toBe(0);
    expect(new WindowIndex([shard('a', 2)], 1, 's').trainWindow(5)).toBe(0);
    expect(new WindowIndex([shard('a', 400)], 1, 's', 0).numHeldOut).toBe(0);
  });

  it('maps the same seed to the same windows, and another seed elsewhere', () => {
    const shards = [shard('a', 10_000)];
    const a = new WindowIndex(shards, 9, 7);
    const b = new WindowIndex(shards, 9, 7);
    const c = new WindowIndex(shards, 9, 8);
    const ids = Array.from({ length: 50 }, (_, i) => i * 17);
    expect(ids.map((i) => b.trainWindow(i))).toEqual(ids.map((i) => a.trainWindow(i)));
    expect(ids.map((i) => c.trainWindow(i))).not.toEqual(ids.map((i) => a.trainWindow(i)));
  });

  it('reads a window by byte range exactly as from the whole shard', () => {
    for (const vocab of [50257, 128256]) {
      const tokens = Array.from({ length: 103 }, (_, i) => (i * 7919) % vocab);
      const file = encodeShard(tokens, 'x', vocab);
      const whole = decodeShard(file).tokens;
      const bpt = decodeShard(file).header.bytesPerToken;
      const idx = new WindowIndex([shard('s', tokens.length, bpt)], 9, 'seed');
      for (let w = 0; w < idx.numWindows; w++) {
        const { start, end } = idx.byteRange(w);
        const { tokenStart } = idx.locate(w);
        const win = readWindow(file.subarray(start, end), bpt, {
          expectTokens: 10,
          vocabSize: vocab,
        });
        expect(Array.from(win)).toEqual(Array.from(whole.subarray(tokenStart, tokenStart + 10)));
      }
    }
  });

  it('refuses a short window read', () => {
    expect(() => readWindow(new Uint8Array(18), 2, { expectTokens: 10 })).toThrow(
      expect.objectContaining({ code: 'E_BAD_SHARD' }),
    );
  });

  it('refuses seq < 1, a dataset without windows, and ids out of range', () => {
    expect(() => new WindowIndex([shard('a', 100)], 0, 's')).toThrow(
      expect.objectContaining({ code: 'E_BAD_SEQ' }),
    );
    expect(() => new WindowIndex([shard('a', 100)], 1.5, 's')).toThrow(
      expect.objectContaining({ code: 'E_BAD_SEQ' }),
    );
    expect(() => new WindowIndex([shard('a', 8), shard('b', 8)], 8, 's')).toThrow(
      expect.objectContaining({ code: 'E_NO_WINDOWS' }),
    );
    expect(() => new WindowIndex([], 8, 's')).toThrow(
      expect.objectContaining({ code: 'E_NO_WINDOWS' }),
    );
    const idx = new WindowIndex([shard('a', 100)], 9, 's');
    const bad = expect.objectContaining({ code: 'E_BAD_SAMPLE' });
    expect(() => idx.trainWindow(-1)).toThrow(bad);
    expect(() => idx.heldOutWindow(idx.numHeldOut)).toThrow(bad);
    expect(() => idx.locate(idx.numWindows)).toThrow(bad);
  });
});
