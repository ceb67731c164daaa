/** An addon built with -march=native on another CPU would die of SIGILL: the loader refuses it. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const work = mkdtempSync(join(tmpdir(), 'iota-native-cpu-'));
const saved = { ...process.env };
afterAll(() => {
  process.env = saved;
  rmSync(work, { recursive: true, force: true });
});

it('refuses an addon whose build status names another CPU, and says to rebuild', async () => {
  // the addon is never opened: the status file rules it out first
  mkdirSync(join(work, 'build', 'Release'), { recursive: true });
  writeFileSync(join(work, 'build', 'Release', 'iota_native.node'), 'not a shared object');
  writeFileSync(
    join(work, 'build', 'status.json'),
    JSON.stringify({ ok: true, node: process.version, cpu: '0123456789abcdef' }),
  );
  delete process.env.IOTA_NATIVE;
  process.env.IOTA_NATIVE_ADDON = join(work, 'build', 'Release', 'iota_native.node');
  const { loadNative } = await import('../../../src/kernels/native/loader.js');
  const r = loadNative();
  expect(r.ok).toBe(false);
  if (!r.ok) expect(r.reason).toMatch(/built on another CPU: run npm run build:native/);
});
