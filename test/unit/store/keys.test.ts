/** Key syntax, what keys name, and the prefix rule the orchestrator applies before issuing a URL. */
import { sha256Hex } from '../../../src/tensor-io/hash.js';
import {
  authorizeUpload,
  DEFAULT_SIZE_LIMITS,
  formatKey,
  keys,
  parseKey,
  refusalError,
  validateKey,
  validatePrefix,
  type UploadRequest,
} from '../../../src/store/keys.js';

const sha256 = sha256Hex('x');
const MINER = 'Xk3-_9aQ0zVbY7wLmN2pR5sT8uE1cD4fG6hJ9kM0nOq'; // a 43-character key id with - and _

describe('formatKey and keys', () => {
  const examples = [
    { kind: 'data', run: 'r1', shard: 'shard-00000' },
    {
      kind: 'activation',
      run: 'r1',
      epoch: 12,
      sample: 7,
      stage: 3,
      direction: 'bwd',
      owner: MINER,
      lease: 'a_1b_ff',
    },
    { kind: 'gradient', run: 'r1', epoch: 4, stage: 2, owner: MINER },
    { kind: 'merged', run: 'r1', epoch: 4, stage: 2, partition: 9, owner: MINER },
    { kind: 'optimizer', run: 'r1', epoch: 3, stage: 2, partition: 9, owner: MINER },
    { kind: 'manifest', run: 'r1', epoch: 0, stage: 1 },
    { kind: 'probe', run: 'r1', owner: MINER },
  ] as const;

  it('writes the key parseKey reads back, for every kind', () => {
    for (const k of examples) expect(parseKey(formatKey(k))).toEqual(k);
  });

  it('writes the layout of DESIGN.md section 7', () => {
    expect(keys.gradient({ run: 'r1', epoch: 4, stage: 2, owner: 'm' })).toBe(
      'runs/r1/e4/grad/2/m.safetensors',
    );
    expect(keys.manifest({ run: 'r1', epoch: 5, stage: 0 })).toBe('runs/r1/e5/stage/0.json');
    expect(keys.probe({ run: 'r1', owner: 'm' })).toBe('runs/r1/probe/m.bin');
    expect(keys.runPrefix('r1')).toBe('runs/r1/');
  });

  it('refuses to write a key outside the syntax', () => {
    let thrown: unknown;
    try {
      keys.data({ run: '../x', shard: 's' });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toMatchObject({ code: 'E_BAD_KEY' });
  });
});

describe('validateKey', () => {
  it('accepts the keys of DESIGN.md section 7', () => {
    for (const key of [
      'runs/r1/data/shard-00000.bin',
      `runs/r1/e12/act/7/3/bwd/${MINER}-L9.safetensors`,
      `runs/r1/e3/optim/2/0/${MINER}.safetensors`,
      'a',
      'runs/-leading-dash',
    ]) {
      expect(validateKey(key)).toBe(key);
    }
  });

  it('refuses traversal, absolute paths, empty or hidden segments and other characters', () => {
    for (const key of [
      '',
      '/runs/a',
      'runs/a/',
      'runs//a',
      'runs/../etc',
      '..',
      'runs/./a',
      'runs/.iota/x',
      'runs/a b',
      'runs/a%2Fb',
      'runs/a\\b',
      'rüns/a',
      `runs/${'x'.repeat(201)}`,
      `r/${'x/'.repeat(300)}x`,
    ]) {
      expect(() => validateKey(key)).toThrow(expect.objectContaining({ code: 'E_BAD_KEY' }));
    }
  });

  it('accepts listing prefixes that begin a key, and nothing else', () => {
    for (const p of ['', 'runs/', 'runs/r1/e1', 'runs/r1/e1/']) expect(validatePrefix(p)).toBe(p);
    for (const p of ['/', '../', 'runs/../', 'runs//', 'runs/.x'])
      expect(() => validatePrefix(p)).toThrow(expect.objectContaining({ code: 'E_BAD_KEY' }));
  });
});

describe('parseKey', () => {
  it('names every kind with its fields', () => {
    expect(parseKey('runs/r1/data/shard-00003.bin')).toEqual({
      kind: 'data',
      run: 'r1',
      shard: 'shard-00003',
    });
    expect(parseKey(`runs/r1/e4/act/17/2/fwd/${MINER}-L_77.safetensors`)).toEqual({
      kind: 'activation',
      run: 'r1',
      epoch: 4,
      sample: 17,
      stage: 2,
      direction: 'fwd',
      owner: MINER,
      lease: 'L_77',
    });
    expect(parseKey(`runs/r1/e4/grad/2/${MINER}.safetensors`)).toEqual({
      kind: 'gradient',
      run: 'r1',
      epoch: 4,
      stage: 2,
      owner: MINER,
    });
    expect(parseKey(`runs/r1/e4/merged/2/9/${MINER}.safetensors`)).toEqual({
      kind: 'merged',
      run: 'r1',
      epoch: 4,
      stage: 2,
      partition: 9,
      owner: MINER,
    });
    expect(parseKey(`runs/r1/e3/optim/2/9/${MINER}.safetensors`)).toEqual({
      kind: 'optimizer',
      run: 'r1',
      epoch: 3,
      stage: 2,
      partition: 9,
      owner: MINER,
    });
    expect(parseKey('runs/r1/e5/stage/2.json')).toEqual({
      kind: 'manifest',
      run: 'r1',
      epoch: 5,
      stage: 2,
    });
  });

  it('takes an activation owner as everything before the last dash', () => {
    expect(parseKey('runs/r1/e0/act/1/0/fwd/a-b-c-lease9.safetensors')).toMatchObject({
      owner: 'a-b-c',
      lease: 'lease9',
    });
  });

  it('names nothing for keys of no kind', () => {
    for (const key of [
      'runs/r1/e01/grad/2/m.safetensors',
      'runs/r1/e1/grad/x/m.safetensors',
      'runs/r1/e1/act/1/0/sideways/m-l.safetensors',
      'runs/r1/e1/grad/2/m.bin',
      'other/r1/data/s.bin',
    ]) {
      expect(parseKey(key)).toBeUndefined();
    }
  });
});

describe('authorizeUpload', () => {
  const policy = { run: 'r1' };
  const ask = (o: Partial<UploadRequest>) =>
    authorizeUpload(
      {
        caller: MINER,
        kind: 'gradient',
        key: `runs/r1/e3/grad/1/${MINER}.safetensors`,
        size: 1000,
        sha256,
        ...o,
      },
      policy,
    );

  it('lets a miner write keys named for its own id', () => {
    expect(ask({})).toMatchObject({ ok: true, key: { kind: 'gradient', owner: MINER, epoch: 3 } });
    expect(
      ask({ kind: 'activation', key: `runs/r1/e3/act/5/1/bwd/${MINER}-L1.safetensors` }).ok,
    ).toBe(true);
    expect(ask({ kind: 'merged', key: `runs/r1/e3/merged/1/0/${MINER}.safetensors` }).ok).toBe(
      true,
    );
  });

  it("refuses another participant's keys with E_NOT_YOUR_PREFIX", () => {
    const other = 'Zk3-_9aQ0zVbY7wLmN2pR5sT8uE1cD4fG6hJ9kM0nOq';
    expect(ask({ key: `runs/r1/e3/grad/1/${other}.safetensors` })).toMatchObject({
      ok: false,
      code: 'E_NOT_YOUR_PREFIX',
    });
    // a caller whose id is a prefix of the owner's gets nothing either
    expect(
      ask({
        caller: 'Xk3',
        kind: 'activation',
        key: `runs/r1/e3/act/5/1/fwd/${MINER}-L1.safetensors`,
      }),
    ).toMatchObject({ ok: false, code: 'E_NOT_YOUR_PREFIX' });
    expect(ask({ key: `runs/r2/e3/grad/1/${MINER}.safetensors` })).toMatchObject({
      ok: false,
      code: 'E_NOT_YOUR_PREFIX',
    });
  });

  it('lets only assigned participants write ownerless keys', () => {
    const manifest = { kind: 'manifest' as const, key: 'runs/r1/e3/stage/1.json' };
    expect(ask(manifest)).toMatchObject({ ok: false, code: 'E_NOT_YOUR_PREFIX' });
    expect(ask({ ...manifest, assignedTo: ['someone-else'] })).toMatchObject({
      ok: false,
      code: 'E_NOT_YOUR_PREFIX',
    });
    expect(ask({ ...manifest, assignedTo: ['someone-else', MINER] }).ok).toBe(true);
    // optimizer state is written per merger, under its own id
    expect(ask({ kind: 'optimizer', key: `runs/r1/e3/optim/1/4/${MINER}.safetensors` }).ok).toBe(
      true,
    );
    expect(
      ask({ kind: 'optimizer', key: 'runs/r1/e3/optim/1/4/someone-else.safetensors' }),
    ).toMatchObject({ ok: false, code: 'E_NOT_YOUR_PREFIX' });
    expect(ask({ kind: 'data', key: 'runs/r1/data/shard-00000.bin' })).toMatchObject({
      ok: false,
      code: 'E_NOT_YOUR_PREFIX',
    });
  });

  it('refuses bad keys and keys of another kind with E_BAD_KEY', () => {
    expect(ask({ key: `runs/r1/e3/grad/1/../${MINER}.safetensors` })).toMatchObject({
      ok: false,
      code: 'E_BAD_KEY',
    });
    expect(ask({ key: `runs/r1/e3/grad/1/${MINER}.bin` })).toMatchObject({
      ok: false,
      code: 'E_BAD_KEY',
    });
    expect(ask({ kind: 'activation' })).toMatchObject({ ok: false, code: 'E_BAD_KEY' });
  });

  it('refuses sizes over the kind limit with E_TOO_LARGE, and bad sizes or hashes', () => {
    expect(ask({ size: DEFAULT_SIZE_LIMITS.gradient }).ok).toBe(true);
    expect(ask({ size: DEFAULT_SIZE_LIMITS.gradient + 1 })).toMatchObject({
      ok: false,
      code: 'E_TOO_LARGE',
    });
    expect(
      authorizeUpload(
        {
          caller: MINER,
          kind: 'gradient',
          key: `runs/r1/e3/grad/1/${MINER}.safetensors`,
          size: 101,
          sha256,
        },
        { run: 'r1', limits: { gradient: 100 } },
      ),
    ).toMatchObject({ ok: false, code: 'E_TOO_LARGE' });
    expect(ask({ size: -1 })).toMatchObject({ ok: false, code: 'E_BAD_SIZE' });
    expect(ask({ size: 1.5 })).toMatchObject({ ok: false, code: 'E_BAD_SIZE' });
    expect(ask({ sha256: sha256.toUpperCase() })).toMatchObject({ ok: false, code: 'E_BAD_HASH' });
  });

  it('turns a refusal into a coded error with a hint', () => {
    const d = ask({ key: 'runs/r1/e3/grad/1/someone.safetensors' });
    if (d.ok) throw new Error('expected a refusal');
    expect(refusalError(d)).toMatchObject({ code: 'E_NOT_YOUR_PREFIX', hint: expect.any(String) });
  });
});
