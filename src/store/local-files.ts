/**
 * Disk primitives of the local store: incremental hashing, full writes, receiving a body of an
 * exact length, fsync of directories, the HMAC secret's file, and tidying empty directories.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  link,
  mkdir,
  open,
  readFile,
  rm,
  rmdir,
  stat,
  unlink,
  writeFile,
  type FileHandle,
} from 'node:fs/promises';
import { dirname } from 'node:path';
import { IotaError } from '../errors.js';
import { CHUNK_BYTES } from '../tensor-io/hash.js';

/** sha256 of the whole and of each CHUNK_BYTES chunk, fed incrementally as bytes stream in. */
export class ObjectHasher {
  private readonly whole = createHash('sha256');
  private chunk = createHash('sha256');
  private inChunk = 0;
  private readonly chunks: string[] = [];
  size = 0;

  update(buf: Uint8Array): void {
    this.whole.update(buf);
    this.size += buf.length;
    for (let at = 0; at < buf.length;) {
      const take = Math.min(CHUNK_BYTES - this.inChunk, buf.length - at);
      this.chunk.update(buf.subarray(at, at + take));
      this.inChunk += take;
      at += take;
      if (this.inChunk === CHUNK_BYTES) this.closeChunk();
    }
  }

  private closeChunk(): void {
    this.chunks.push(this.chunk.digest('hex'));
    this.chunk = createHash('sha256');
    this.inChunk = 0;
  }

  finish(): { sha256: string; chunkHashes: string[] } {
    if (this.inChunk > 0) this.closeChunk();
    return { sha256: this.whole.digest('hex'), chunkHashes: this.chunks };
  }
}

export async function writeAll(fh: FileHandle, buf: Uint8Array): Promise<void> {
  for (let off = 0; off < buf.length;)
    off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
}

/** Writes every byte of `bufs` in order, with as few system calls as the kernel allows. */
export async function writeAllv(fh: FileHandle, bufs: Uint8Array[]): Promise<void> {
  const total = bufs.reduce((a, b) => a + b.length, 0);
  const { bytesWritten } = await fh.writev(bufs);
  if (bytesWritten < total) await writeAll(fh, Buffer.concat(bufs).subarray(bytesWritten));
}

/** Socket reads arrive in chunks of about 64 KiB: they are written to disk in batches of this. */
const WRITE_BATCH_BYTES = 1 << 20;

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function isErrno(e: unknown, ...codes: string[]): boolean {
  return (
    typeof e === 'object' && e !== null && codes.includes((e as NodeJS.ErrnoException).code ?? '')
  );
}

/**
 * Reads the store's HMAC secret, creating it on first use. Created under a temp name and linked
 * into place, so a concurrent opener never reads a half-written file.
 */
export async function loadOrCreateSecret(file: string): Promise<Buffer> {
  await mkdir(dirname(file), { recursive: true });
  try {
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, randomBytes(32), { mode: 0o600, flag: 'wx', flush: true });
    try {
      await link(tmp, file);
      await fsyncDir(dirname(file));
    } finally {
      await unlink(tmp);
    }
  } catch (e) {
    if (!isErrno(e, 'EEXIST')) throw e;
  }
  const st = await stat(file);
  if ((st.mode & 0o077) !== 0) {
    throw new IotaError(
      'E_INSECURE_SECRET',
      `${file} is readable by other users`,
      `chmod 600 ${file}`,
    );
  }
  const secret = await readFile(file);
  if (secret.length !== 32)
    throw new IotaError(
      'E_BAD_SECRET',
      `${file} does not hold a 32-byte secret`,
      'delete it to make a new one (outstanding URLs stop working)',
    );
  return secret;
}

/** Removes empty directories from `dir` up to (not including) `top`. */
export async function pruneEmptyDirs(dir: string, top: string): Promise<void> {
  while (dir.length > top.length && dir.startsWith(top)) {
    try {
      await rmdir(dir);
    } catch {
      return;
    }
    dir = dirname(dir);
  }
}

/** Streams `body` into a new file at `dest`, refusing more or fewer than `length` bytes. */
export async function receiveInto(
  dest: string,
  body: AsyncIterable<Uint8Array>,
  length: number,
): Promise<{ sha256: string; chunkHashes: string[] }> {
  const fh = await open(dest, 'wx');
  const hasher = new ObjectHasher();
  let batch: Uint8Array[] = [];
  let batched = 0;
  try {
    for await (const chunk of body) {
      if (hasher.size + chunk.length > length)
        throw new IotaError(
          'E_TOO_LARGE',
          `the body is longer than the ${length} bytes this URL allows`,
        );
      hasher.update(chunk);
      batch.push(chunk);
      batched += chunk.length;
      if (batched >= WRITE_BATCH_BYTES) {
        await writeAllv(fh, batch);
        batch = [];
        batched = 0;
      }
    }
    if (batched > 0) await writeAllv(fh, batch);
    if (hasher.size !== length)
      throw new IotaError(
        'E_LENGTH_MISMATCH',
        `received ${hasher.size} bytes, this URL is for ${length}`,
      );
    await fh.sync();
  } catch (e) {
    await fh.close();
    await rm(dest, { force: true });
    throw e;
  }
  await fh.close();
  return hasher.finish();
}
