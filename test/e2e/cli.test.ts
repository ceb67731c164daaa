import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listedCommands, runIota } from '../support/cli.js';

/** Every command `iota --help` lists must be exercised by an end-to-end test; this list names them. */
const EXERCISED = [
  'doctor',
  'data',
  'train',
  'generate',
  'keys',
  'orchestrator',
  'status',
  'miner',
  'validator',
  'scores',
  'local', // test/e2e/local.test.ts
  'export', // test/e2e/local.test.ts
  'setup', // test/e2e/setup.test.ts
];

describe('iota executable', () => {
  it('lists only the commands the end-to-end tests exercise', async () => {
    const r = await runIota(['--help']);
    expect(r.code).toBe(0);
    expect(listedCommands(r.stdout).sort()).toEqual([...EXERCISED].sort());
  });

  it('doctor --json prints one JSON object describing every backend', async () => {
    const r = await runIota(['doctor', '--json', '--size', '64'], {
      env: { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' },
    });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const report = JSON.parse(lines[0]);
    expect(report.huge_pages.on).toBe(true);
    expect(report.backends.map((b: { name: string }) => b.name)).toEqual([
      'tensorflow',
      'native',
      'wasm',
      'cpu',
    ]);
    const gpu = report.backends[0];
    if (!gpu.available) expect(gpu.reason).toMatch(/CUDA 11\.2 and cuDNN 8\.1/);
    for (const b of report.backends.filter((x: { available: boolean }) => x.available))
      expect(b.gflops).toBeGreaterThan(0);
    expect(report.backends.find((b: { name: string }) => b.name === report.chosen).available).toBe(
      true,
    );
  });

  it('data prepare tokenizes text files into shards that data info describes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iota-cli-'));
    const text = join(dir, 'corpus.txt');
    writeFileSync(text, 'The quick brown fox jumps over the lazy dog.\n'.repeat(200));
    const r = await runIota([
      'data',
      'prepare',
      '--corpus',
      text,
      '--out',
      join(dir, 'data'),
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    // one byte per char; the trailing newline is trimmed and the "\n\n" document separator added
    expect(out.manifest.tokens).toBe(200 * 45 - 1 + 2);
    const again = await runIota([
      'data',
      'prepare',
      '--corpus',
      text,
      '--out',
      join(dir, 'data'),
      '--json',
    ]);
    expect(JSON.parse(again.stdout).skipped).toBe(true);
    const info = await runIota([
      'data',
      'info',
      join(dir, 'data', 'byte'),
      '--seq',
      '15',
      '--verify',
      '--json',
    ]);
    expect(info.code).toBe(0);
    const i = JSON.parse(info.stdout);
    expect(i.windows).toBe(Math.floor(9001 / 16));
    expect(i.train_windows + i.held_out_windows).toBe(i.windows);
  });

  it('answers bad input with a code and a hint, exit 2, no stack trace', async () => {
    const r = await runIota(['data', 'prepare', '--tokenizer', 'klingon']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error E_BAD_TOKENIZER: .*\nhint: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const missing = await runIota(['data', 'info', join(tmpdir(), 'no-such-dataset')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/E_NO_DATASET/);
    // A miner with an unreadable key says so before it shows anything else.
    const key = await runIota([
      'miner',
      '--orchestrator',
      'http://127.0.0.1:9',
      '--key',
      join(tmpdir(), 'no-such.key'),
    ]);
    expect(key.code).toBe(2);
    expect(key.stderr).toMatch(/^error E_BAD_KEY_FILE: .*\nhint: /);
    expect(key.stdout + key.stderr).not.toMatch(/joining/);
  });
});
