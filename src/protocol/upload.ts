/**
 * An object a participant uploads (a miner's outputs and gradient, a merger's results): declared
 * to the orchestrator (size, sha256, chunk and part hashes), then sent through the URLs it
 * issues, completed when it was a multipart upload.
 */
import type { SignedClient } from './client.js';
import {
  upload,
  type describeUpload,
  type TransferOptions,
  type UploadPlan,
} from '../store/index.js';

export async function uploadObject(
  client: SignedClient,
  kind: 'activation' | 'gradient' | 'merged' | 'optimizer' | 'probe',
  key: string,
  bytes: Uint8Array,
  d: ReturnType<typeof describeUpload>,
  transfer?: TransferOptions,
): Promise<{ size: number; sha256: string }> {
  const plan = await client.post<UploadPlan>('/v1/storage/upload', {
    kind,
    key,
    size: d.size,
    sha256: d.sha256,
    chunk_hashes: d.chunkHashes,
    ...(d.partSize ? { part_size: d.partSize, part_sha256s: d.partSha256s } : {}),
  });
  const { etags } = await upload(plan, bytes, transfer);
  if (plan.uploadId)
    await client.post('/v1/storage/complete', { key, upload_id: plan.uploadId, etags });
  return { size: d.size, sha256: d.sha256 };
}
