/**
 * The local store's multipart uploads on disk: `uploads/<id>/upload.json` records what was
 * declared, and one file per received part sits beside it until the upload completes (its
 * parts are concatenated into the object and hashed on the way), is aborted, or expires.
 */
import { createReadStream } from 'node:fs';
import { open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IotaError } from '../errors.js';
import { bareEtag, partLayout } from './declaration.js';
import { isErrno, ObjectHasher, writeAll } from './local-files.js';
import type { UploadPlan } from './types.js';

/** What a multipart upload declared when it began. */
export interface Upload {
  key: string;
  size: number;
  sha256: string;
  partSize: number;
  partSha256s: string[];
  expiresAt: number;
  chunkHashes?: string[];
}

const UPLOAD_ID = /^[0-9a-f]{32}$/;

/** The folder of an upload id, or E_NO_UPLOAD for an id that cannot be one. */
export function uploadDir(root: string, uploadId: string | undefined): string {
  if (!uploadId || !UPLOAD_ID.test(uploadId))
    throw new IotaError('E_NO_UPLOAD', `no multipart upload ${JSON.stringify(uploadId)}`);
  return join(root, 'uploads', uploadId);
}

export async function writeUpload(dir: string, upload: Upload): Promise<void> {
  await writeFile(join(dir, 'upload.json'), JSON.stringify(upload), { flush: true });
}

export async function readUpload(dir: string): Promise<Upload> {
  try {
    return JSON.parse(await readFile(join(dir, 'upload.json'), 'utf8')) as Upload;
  } catch (e) {
    if (isErrno(e, 'ENOENT'))
      throw new IotaError(
        'E_NO_UPLOAD',
        'this multipart upload was completed, aborted or never started',
      );
    throw e;
  }
}

/** Every part is there, at its size, with the ETag it was uploaded with: the parts' layout. */
export async function checkParts(
  dir: string,
  upload: Upload,
  plan: UploadPlan,
  etags: readonly string[],
): Promise<ReturnType<typeof partLayout>> {
  if (upload.key !== plan.key)
    throw new IotaError(
      'E_BAD_PART',
      `upload ${plan.uploadId} is for ${upload.key}, not ${plan.key}`,
    );
  const layout = partLayout(upload.size, upload.partSize);
  if (etags.length !== layout.length)
    throw new IotaError(
      'E_INCOMPLETE_UPLOAD',
      `${layout.length} parts, ${etags.length} ETags given`,
    );
  for (const p of layout) {
    if (bareEtag(etags[p.number - 1]) !== upload.partSha256s[p.number - 1])
      throw new IotaError(
        'E_BAD_PART',
        `the ETag of part ${p.number} is not the one it was uploaded with`,
      );
    const st = await stat(join(dir, String(p.number))).catch(() => undefined);
    if (st?.size !== p.size)
      throw new IotaError(
        'E_INCOMPLETE_UPLOAD',
        `part ${p.number} of ${plan.key} has not been uploaded`,
        'upload every part, then complete',
      );
  }
  return layout;
}

/** Concatenates the parts in order into `tmp` (fsynced), hashing on the way. */
export async function assembleParts(
  dir: string,
  layout: ReturnType<typeof partLayout>,
  tmp: string,
): Promise<{ sha256: string; chunkHashes: string[] }> {
  const fh = await open(tmp, 'wx');
  const hasher = new ObjectHasher();
  try {
    for (const p of layout) {
      for await (const chunk of createReadStream(join(dir, String(p.number)), {
        highWaterMark: 1 << 20,
      }) as AsyncIterable<Buffer>) {
        hasher.update(chunk);
        await writeAll(fh, chunk);
      }
    }
    await fh.sync();
  } catch (e) {
    await fh.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  return hasher.finish();
}

/** Drops the uploads whose URLs expired before `now`; returns how many. */
export async function sweepUploads(root: string, now: number): Promise<number> {
  let swept = 0;
  for (const id of await readdir(join(root, 'uploads'))) {
    if (!UPLOAD_ID.test(id)) continue;
    const upload = await readUpload(join(root, 'uploads', id)).catch(() => undefined);
    if (upload && upload.expiresAt >= now) continue;
    await rm(join(root, 'uploads', id), { recursive: true, force: true });
    swept++;
  }
  return swept;
}
