/**
 * s3rver for tests, in a child process on loopback with a random port and a temp directory.
 * A separate process because s3rver's continuation tokens use a DES cipher that OpenSSL 3 only
 * has with `--openssl-legacy-provider` (paginated listings fail without it), and that flag is
 * for a whole process. Ready when the child prints its port; never a sleep.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

export interface S3rverHandle {
  endpoint: string;
  /** where s3rver keeps an object's bytes on disk */
  objectFile(key: string): string;
  bucket: string;
  /** s3rver's built-in account */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** stops s3rver and removes its files (unless keepFiles: a failed run's objects to read) */
  stop(o?: { keepFiles?: boolean }): Promise<void>;
}

const CHILD = `
const S3rver = require(process.argv[1]);
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: process.argv[2], configureBuckets: [{ name: process.argv[3] }] });
server.run().then((addr) => console.log(JSON.stringify({ port: addr.port })), (e) => { console.error(e); process.exit(1); });
process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
`;

export async function startS3rver(bucket = 'iota-test'): Promise<S3rverHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'iota-s3rver-'));
  const entry = createRequire(import.meta.url).resolve('s3rver');
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child: ChildProcess = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '-e', CHILD, entry, dir, bucket],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        resolve((JSON.parse(line) as { port: number }).port);
      } catch {
        // not the ready line
      }
    });
    child.once('exit', (code) =>
      reject(new Error(`s3rver exited (${code}) before listening: ${stderr}`)),
    );
    child.once('error', reject);
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    objectFile: (key) => join(dir, bucket, dirname(key), `${basename(key)}._S3rver_object`),
    bucket,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    async stop(o) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      if (!o?.keepFiles) await rm(dir, { recursive: true, force: true });
    },
  };
}
