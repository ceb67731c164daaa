import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIota } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'iota-train-'));
const data = join(dir, 'data', 'byte');
const out = join(dir, 'ck');

function lastJson(stdout: string) {
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

beforeAll(async () => {
  writeFileSync(
    join(dir, 'text.txt'),
    'It was the best of times, it was the worst of times, it was the age of wisdom.\n'.repeat(100),
  );
  const r = await runIota([
    'data',
    'prepare',
    '--corpus',
    join(dir, 'text.txt'),
    '--out',
    join(dir, 'data'),
  ]);
  expect(r.code).toBe(0);
});

describe('iota train and generate', () => {
  const args = [
    'train',
    '--model',
    'configs/tiny.yaml',
    '--samples-per-step',
    '4',
    '--batch',
    '4',
    '--lr',
    '0.01',
    '--data',
    data,
    '--out',
    out,
    '--backend',
    'wasm',
    '--json',
  ];

  it('trains, checkpoints, refuses to overwrite, and resumes where it stopped', async () => {
    const first = await runIota([...args, '--steps', '4']);
    expect(first.code).toBe(0);
    const steps = first.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(steps.filter((s) => s.event === 'step').map((s) => s.step)).toEqual([1, 2, 3, 4]);
    const done = steps[steps.length - 1];
    expect(done).toMatchObject({ event: 'done', steps: 4, backend: 'wasm', checkpoint: out });
    expect(done.loss).toBeLessThan(done.first_loss);

    const again = await runIota([...args, '--steps', '1']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/E_CHECKPOINT_EXISTS/);

    const resumed = await runIota([...args, '--steps', '2', '--resume']);
    expect(resumed.code).toBe(0);
    expect(lastJson(resumed.stdout)).toMatchObject({ event: 'done', steps: 6 });
  });

  it('generates the same text for the same seed', async () => {
    const gen = (seed: string) =>
      runIota([
        'generate',
        '--checkpoint',
        out,
        '--prompt',
        'It was',
        '--tokens',
        '12',
        '--seed',
        seed,
        '--backend',
        'wasm',
      ]);
    const a = await gen('3');
    const b = await gen('3');
    expect(a.code).toBe(0);
    expect(a.stdout.startsWith('It was')).toBe(true);
    expect(Buffer.byteLength(a.stdout)).toBeGreaterThan('It was'.length);
    expect(b.stdout).toBe(a.stdout);
  });

  it('says clearly when there is no checkpoint or the data does not fit the model', async () => {
    const none = await runIota(['generate', '--checkpoint', join(dir, 'nothing')]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/E_NO_CHECKPOINT/);
    const wrong = await runIota([
      'train',
      '--model',
      'configs/small.yaml',
      '--data',
      data,
      '--out',
      join(dir, 'x'),
      '--steps',
      '1',
    ]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(
      /E_DATA_MISMATCH[\s\S]*hint: prepare data with: iota data prepare --tokenizer gpt2/,
    );
  });
});
