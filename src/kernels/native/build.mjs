#!/usr/bin/env node
/**
 * `npm run build:native`: compiles the native kernels addon for this machine (node-gyp, the local
 * Node's headers, Debian's OpenBLAS, -march=native) into ./build/. It never fails the install:
 * when the compiler, the headers or OpenBLAS are missing it says what to install, records the
 * reason in build/status.json (which `iota doctor` reports), and exits 0; iota then runs on wasm.
 * Skips the build when the addon is newer than its sources. --force rebuilds.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import os from 'node:os';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const buildDir = join(here, 'build');
const addon = join(buildDir, 'Release', 'iota_native.node');
const statusFile = join(buildDir, 'status.json');
const force = process.argv.includes('--force');
const FIX = 'apt-get install g++ make libopenblas-dev, then npm run build:native (or ./setup.sh)';

const say = (s) => process.stdout.write(`native kernels: ${s}\n`);

/**
 * The CPU's model and instruction-set flags: a build with -march=native runs only where they match
 * (loader.ts computes the same).
 */
function cpuSignature() {
  let flags = '';
  try {
    flags = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    // not Linux: the model name alone
  }
  return createHash('sha256')
    .update(`${os.cpus()[0]?.model ?? ''}|${flags}`)
    .digest('hex')
    .slice(0, 16);
}

function record(status) {
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(
    statusFile,
    `${JSON.stringify({ ...status, node: process.version, at: new Date().toISOString() })}\n`,
  );
}

function giveUp(reason) {
  rmSync(addon, { force: true }); // an older build would not match these sources or this machine
  record({ ok: false, reason });
  say(`not built: ${reason}. iota will use the wasm backend. To fix: ${FIX}`);
  process.exit(0);
}

function run(cmd, args, opts = {}) {
  return spawnSync(cmd, args, { encoding: 'utf8', ...opts });
}

function newestSource() {
  const files = [
    join(here, 'binding.gyp'),
    ...readdirSync(join(here, 'csrc')).map((f) => join(here, 'csrc', f)),
  ];
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

function upToDate() {
  if (force || !existsSync(addon) || !existsSync(statusFile)) return false;
  try {
    const s = JSON.parse(readFileSync(statusFile, 'utf8'));
    return (
      s.ok === true &&
      s.node === process.version &&
      s.cpu === cpuSignature() &&
      statSync(addon).mtimeMs >= newestSource()
    );
  } catch {
    return false;
  }
}

/** npm's bundled node-gyp (npm sets npm_config_node_gyp in scripts), else one on PATH. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  ];
  for (const c of candidates) if (c && existsSync(c)) return [process.execPath, c];
  if (run('node-gyp', ['--version']).status === 0) return ['node-gyp'];
  return null;
}

if (/^(off|0|false)$/i.test(process.env.IOTA_NATIVE ?? '')) {
  say('skipped (IOTA_NATIVE=off)');
  process.exit(0);
}
if (upToDate()) {
  say('up to date');
  process.exit(0);
}
const cxx = process.env.CXX || 'g++';
if (run(cxx, ['--version']).error) giveUp(`no C++ compiler (${cxx})`);
if (run('make', ['--version']).error) giveUp('no make');
// One probe for the header and the library: compile and link a call into OpenBLAS.
const probe = run(cxx, ['-x', 'c++', '-', '-lopenblas', '-o', '/dev/null'], {
  input: '#include <cblas.h>\nint main() { openblas_set_num_threads(1); return 0; }\n',
});
if (probe.status !== 0) {
  const text = `${probe.stderr}`;
  giveUp(
    /cblas\.h/.test(text)
      ? 'OpenBLAS headers missing (cblas.h)'
      : /-lopenblas|openblas/.test(text)
        ? 'OpenBLAS library missing'
        : `cannot compile against OpenBLAS (${text.trim().split('\n')[0]})`,
  );
}
const gyp = nodeGyp();
if (!gyp) giveUp('node-gyp not found (it ships with npm)');
// The local Node's headers, so nothing is downloaded.
const nodedir = resolve(dirname(process.execPath), '..');
if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h')))
  giveUp(`Node headers not found under ${nodedir}/include/node`);

say('building (about 15 s)');
const t0 = Date.now();
const b = run(gyp[0], [...gyp.slice(1), 'rebuild', `--nodedir=${nodedir}`], {
  cwd: here,
  env: { ...process.env, JOBS: 'max' },
});
if (b.status !== 0) {
  const lines = `${b.stdout}\n${b.stderr}`
    .split('\n')
    .filter((l) => /error/i.test(l) && !/^gyp (ERR|info)/.test(l));
  process.stderr.write(`${b.stdout}\n${b.stderr}\n`);
  giveUp(`compile failed: ${(lines[0] ?? 'see the output above').trim()}`);
}
// Load it once in a fresh process: a build that links but cannot load is no build.
const check = run(process.execPath, [
  '-e',
  `process.env.OPENBLAS_NUM_THREADS='1'; const m = require(${JSON.stringify(addon)}); ` +
    'process.stdout.write(m.info().blas)',
]);
if (check.status !== 0)
  giveUp(`built but does not load: ${`${check.stderr}`.trim().split('\n')[0]}`);
record({ ok: true, blas: check.stdout, cpu: cpuSignature() });
say(`built in ${((Date.now() - t0) / 1000).toFixed(0)} s (${check.stdout})`);
