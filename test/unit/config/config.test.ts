import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  loadConfig,
  loadModelConfig,
  loadNodeConfig,
  loadRunConfig,
  plainParamCount,
  stageParamCount,
  stageSpecs,
  type ModelConfig,
} from '../../../src/config/index.js';
import { IotaError } from '../../../src/errors.js';

const configs = join(process.cwd(), 'configs');
const dir = mkdtempSync(join(tmpdir(), 'iota-config-'));
const tiny = loadModelConfig(join(configs, 'tiny.yaml'));

function writeModel(name: string, patch: Record<string, unknown>, drop: string[] = []): string {
  const v: Record<string, unknown> = { ...structuredClone(tiny), ...patch };
  for (const d of drop) delete v[d];
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(v));
  return file;
}

function refusal(fn: () => unknown): IotaError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(IotaError);
    return e as IotaError;
  }
  throw new Error('expected the config to be refused');
}

describe('shipped configs', () => {
  it('loads every model config in configs/', () => {
    const files = readdirSync(configs).filter((f) => f.endsWith('.yaml') && f !== 'node.yaml');
    expect(new Set(files)).toEqual(
      new Set(['iota-100m.yaml', 'iota-1.5b.yaml', 'iota-15b.yaml', 'small.yaml', 'tiny.yaml']),
    );
    for (const f of files) {
      const c = loadModelConfig(join(configs, f));
      expect(c.rope_theta).toBeGreaterThan(0);
      expect(c.rope_scaling).not.toBeNull();
    }
  });

  it('loads every run config with its model, and the node config', () => {
    for (const f of readdirSync(join(configs, 'runs'))) {
      const { run, model } = loadRunConfig(join(configs, 'runs', f));
      expect(run.samples_per_epoch).toBeGreaterThan(0);
      expect(model.name).toBeTruthy();
    }
    const node = loadNodeConfig(join(configs, 'node.yaml'));
    // The store follows the state folder (--state-dir moves both).
    expect(node.storage).toEqual({ kind: 'local' });
  });

  it('keeps tiny within its limits', () => {
    expect(tiny).toMatchObject({ tokenizer: 'byte', vocab_size: 256 });
    expect(tiny.dim).toBeLessThanOrEqual(64);
    expect(tiny.seq).toBeLessThanOrEqual(64);
  });

  it('gives the 15B model 15,076,418,560 parameters from its shapes', () => {
    expect(plainParamCount(loadModelConfig(join(configs, 'iota-15b.yaml')))).toBe(15_076_418_560);
  });

  it('has the 1.5B shapes of the issue', () => {
    const c = loadModelConfig(join(configs, 'iota-1.5b.yaml'));
    expect(c).toMatchObject({
      dim: 2048,
      n_layers: 16,
      n_heads: 32,
      n_kv_groups: 8,
      ffn_dim: 8192,
      bottleneck: 32,
      vocab_size: 128256,
    });
    expect(c.stages).toEqual([
      [-1, 4],
      [4, 12],
      [12, -1],
    ]);
  });
});

describe('stages', () => {
  it('cuts blocks into head, bodies and tail', () => {
    const specs = stageSpecs(loadModelConfig(join(configs, 'iota-15b.yaml')));
    expect(specs.map((s) => [s.firstBlock, s.endBlock])).toEqual([
      [0, 8],
      [8, 19],
      [19, 30],
      [30, 41],
      [41, 50],
    ]);
    expect(specs.map((s) => [s.hasEmbedding, s.hasHead, s.decodesInput, s.encodesOutput])).toEqual([
      [true, false, false, true],
      [false, false, true, true],
      [false, false, true, true],
      [false, false, true, true],
      [false, true, true, false],
    ]);
  });

  it('counts the bottleneck encoder and decoder in stage parameter counts', () => {
    const specs = stageSpecs(tiny);
    const total = specs.reduce((s, x) => s + stageParamCount(tiny, x), 0);
    const boundaries = specs.length - 1;
    expect(total).toBe(plainParamCount(tiny) + boundaries * 2 * tiny.dim * tiny.bottleneck);
  });

  it('accepts splits as an alias of stages', () => {
    const file = writeModel(
      'alias',
      {
        splits: [
          [-1, 2],
          [2, -1],
        ],
      },
      ['stages'],
    );
    expect(loadModelConfig(file).stages).toEqual([
      [-1, 2],
      [2, -1],
    ]);
  });
});

describe('invalid configs', () => {
  const cases: Array<[string, Record<string, unknown>, string[], RegExp]> = [
    ['wrong type', { dim: 'sixty-four' }, [], /field "dim": expected integer \(got "sixty-four"\)/],
    ['missing field', {}, ['rope_theta'], /field "rope_theta": is required/],
    ['unknown field', { dimm: 64 }, [], /field "dimm": is not a known field/],
    [
      'bad enum',
      { tokenizer: 'bpe' },
      [],
      /field "tokenizer": must be one of "byte", "gpt2", "llama3"/,
    ],
    [
      'out of range',
      { n_heads: 0 },
      [],
      /field "n_heads": expected integer to be greater or equal to 1/,
    ],
    [
      'nested field',
      {
        rope_scaling: {
          factor: -1,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_context_length: 8192,
        },
      },
      [],
      /field "rope_scaling.factor"/,
    ],
    ['heads not dividing dim', { n_heads: 5 }, [], /field "dim": must be divisible by n_heads/],
    [
      'kv groups not dividing heads',
      { n_kv_groups: 3 },
      [],
      /field "n_kv_groups": must divide n_heads/,
    ],
    [
      'bottleneck wider than dim',
      { bottleneck: 65 },
      [],
      /field "bottleneck": must be smaller than dim \(65 >= 64\)/,
    ],
    [
      'bottleneck as wide as dim',
      { bottleneck: 64 },
      [],
      /field "bottleneck": must be smaller than dim \(64 >= 64\)/,
    ],
    [
      'gap between stages',
      {
        stages: [
          [-1, 1],
          [2, -1],
        ],
      },
      [],
      /field "stages\[1\]": must start at block 1/,
    ],
    [
      'stage past the end',
      {
        stages: [
          [-1, 2],
          [2, 9],
        ],
      },
      [],
      /field "stages\[1\]\[1\]"/,
    ],
    [
      'no embedding stage',
      {
        stages: [
          [0, 2],
          [2, -1],
        ],
      },
      [],
      /field "stages\[0\]\[0\]": the first stage must start with -1/,
    ],
    [
      'byte vocab',
      { vocab_size: 300 },
      [],
      /field "vocab_size": must be 256 with the byte tokenizer/,
    ],
  ];
  it.each(cases)('refuses %s, naming the file and the field', (name, patch, drop, message) => {
    const file = writeModel(name.replace(/ /g, '-'), patch, drop);
    const e = refusal(() => loadModelConfig(file));
    expect(e.code).toBe('E_CONFIG_INVALID');
    expect(e.message).toContain(file);
    expect(e.message).toMatch(message);
  });

  it('refuses a missing file and invalid YAML with their own messages', () => {
    expect(refusal(() => loadModelConfig(join(dir, 'nope.yaml'))).code).toBe('E_CONFIG_NOT_FOUND');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'dim: 64\n  n_heads: [4\n');
    const e = refusal(() => loadModelConfig(bad));
    expect(e.code).toBe('E_CONFIG_INVALID');
    expect(e.message).toMatch(/bad\.yaml: not valid YAML \(line \d+/);
  });

  it('refuses giving both stages and its alias splits', () => {
    const file = writeModel('both', { splits: [[-1, 4]] });
    expect(refusal(() => loadModelConfig(file)).message).toMatch(
      /"splits": is an alias of "stages"/,
    );
  });

  it('refuses an invalid run config field and an inconsistent schedule', () => {
    const file = join(dir, 'run.yaml');
    writeFileSync(
      file,
      stringify({
        name: 'r',
        model: join(configs, 'tiny.yaml'),
        samples_per_epoch: 0,
        optimizer: { lr: 1e-3 },
        schedule: { total_epochs: 10 },
      }),
    );
    expect(refusal(() => loadRunConfig(file)).message).toMatch(
      /run\.yaml: field "samples_per_epoch"/,
    );
    writeFileSync(
      file,
      stringify({
        name: 'r',
        model: join(configs, 'tiny.yaml'),
        samples_per_epoch: 4,
        optimizer: { lr: 1e-3 },
        schedule: { total_epochs: 3, warmup_epochs: 4 },
      }),
    );
    expect(refusal(() => loadRunConfig(file)).message).toMatch(
      /field "schedule.total_epochs": must be >= warmup_epochs/,
    );
  });
});

describe('overrides and immutability', () => {
  it('applies environment then flag overrides, flags last', () => {
    const c = loadModelConfig(join(configs, 'tiny.yaml'), {
      env: { IOTA_MODEL__SEQ: '32', IOTA_MODEL__ROPE_SCALING__FACTOR: '16', IOTA_RUN__SEED: '9' },
      set: ['seq=48'],
    }) as ModelConfig;
    expect(c.seq).toBe(48);
    expect(c.rope_scaling?.factor).toBe(16);
  });

  it('names the variable or flag when an override is invalid', () => {
    const e1 = refusal(() =>
      loadModelConfig(join(configs, 'tiny.yaml'), { env: { IOTA_MODEL__DIM: 'big' } }),
    );
    expect(e1.message).toMatch(/field "dim": expected integer \(got "big"\)/);
    const e2 = refusal(() => loadModelConfig(join(configs, 'tiny.yaml'), { set: ['dim'] }));
    expect(e2.code).toBe('E_BAD_FLAG');
  });

  it('fills defaults and freezes the result', () => {
    const node = loadConfig('node', undefined) as { port: number; validators: string[] };
    expect(node.port).toBe(4100);
    expect(Object.isFrozen(node)).toBe(true);
    expect(Object.isFrozen(node.validators)).toBe(true);
    expect(() => {
      (tiny as { dim: number }).dim = 1;
    }).toThrow(TypeError);
  });
});
