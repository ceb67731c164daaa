/**
 * Without the native addon (not built, or built without OpenBLAS), nothing fails: the build
 * script exits 0 and says why, the backend probe reports how to fix it, `auto` falls back to
 * wasm, and the model trains there.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NATIVE_DIR = join(process.cwd(), 'src', 'kernels', 'native');
const work = mkdtempSync(join(tmpdir(), 'iota-native-fallback-'));

/** A copy of the addon's sources, so a failing build cannot touch the real one. */
function sourceCopy(name: string): string {
  const dir = join(work, name);
  for (const f of ['build.mjs', 'binding.gyp', 'csrc'])
    cpSync(join(NATIVE_DIR, f), join(dir, f), { recursive: true });
  return dir;
}

function build(dir: string, env: Record<string, string>) {
  const r = spawnSync(process.execPath, [join(dir, 'build.mjs')], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  const status = JSON.parse(readFileSync(join(dir, 'build', 'status.json'), 'utf8')) as {
    ok: boolean;
    reason?: string;
  };
  return { code: r.status, out: r.stdout + r.stderr, status };
}

const saved = { ...process.env };
// these tests make the addon unavailable themselves, whatever the suite was run with
delete process.env.IOTA_NATIVE;
afterAll(() => {
  process.env = saved;
  rmSync(work, { recursive: true, force: true });
});

describe('without the native kernels', () => {
  it('the build exits 0 and says what to install when there is no compiler', () => {
    const r = build(sourceCopy('no-compiler'), { CXX: join(work, 'no-such-compiler') });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/not built: no C\+\+ compiler .*wasm.*libopenblas-dev/);
    expect(r.status).toEqual(expect.objectContaining({ ok: false }));
  });

  it('the build exits 0 and names OpenBLAS when the library cannot be linked', () => {
    // a compiler that has lost OpenBLAS: it refuses to link -lopenblas, as on a host without it
    const cxx = join(work, 'cxx-without-openblas');
    writeFileSync(
      cxx,
      '#!/bin/sh\nfor a in "$@"; do [ "$a" = -lopenblas ] && { echo "/usr/bin/ld: cannot find -lopenblas: No such file or directory" >&2; exit 1; }; done\nexec g++ "$@"\n',
    );
    chmodSync(cxx, 0o755);
    const dir = sourceCopy('no-openblas');
    const r = build(dir, { CXX: cxx });
    expect(r.code).toBe(0);
    expect(r.status.reason).toBe('OpenBLAS library missing');
    process.env.IOTA_NATIVE_ADDON = join(dir, 'build', 'Release', 'iota_native.node');
  });

  it('auto picks wasm, says why native is missing, and a training step runs there', async () => {
    const { probeBackend, selectBackend, describeSelection } =
      await import('../../../src/kernels/backends.js');
    const probe = await probeBackend('native');
    expect(probe.available).toBe(false);
    expect(probe.reason).toMatch(
      /^not built \(OpenBLAS library missing\): install g\+\+, make and libopenblas-dev/,
    );
    const s = await selectBackend('auto');
    const gpu = await probeBackend('tensorflow');
    if (!gpu.available) expect(s.backend).toBe('wasm');
    expect(describeSelection(s)).toMatch(/native \(not built/);

    const { testModel, testRun } = await import('../../support/model.js');
    const { Model } = await import('../../../src/model/model.js');
    const { Trainer } = await import('../../../src/model/trainer.js');
    const config = testModel();
    const run = testRun({ samples_per_epoch: 1 });
    const model = Model.initial(config, 'fallback');
    const sample = Int32Array.from(
      { length: config.seq + 1 },
      (_, i) => (i * 31) % config.vocab_size,
    );
    const r = new Trainer(model, {
      optimizer: run.optimizer,
      schedule: run.schedule,
      batch: 1,
    }).step([sample, sample]);
    expect(Number.isFinite(r.loss)).toBe(true);
    expect(tf.getBackend()).toBe(s.backend);
    model.dispose();
  });
});
