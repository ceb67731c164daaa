/**
 * Loading a stage's weights from its manifest through the orchestrator's scoped URLs: the
 * manifest and every partition are checked against their sha256 before use (a partition the
 * caller already holds with that sha256 is not downloaded). Miners and validators both do this.
 */
import { IotaError } from '../errors.js';
import type { SignedClient } from '../protocol/client.js';
import { download, type TransferOptions } from '../store/index.js';
import { decodePartition, parseManifest, type StageManifest } from './manifest.js';

export interface WeightsRef {
  key: string;
  size: number;
  sha256: string;
  url?: string;
}

export async function loadStageWeights(
  client: SignedClient,
  ref: WeightsRef,
  transfer?: TransferOptions,
  onBytes: (n: number) => void = () => {},
  /** a partition already held (by its sha256), e.g. one this miner computed in the merge */
  held: (sha256: string) => Uint8Array | undefined = () => undefined,
): Promise<{ manifest: StageManifest; weights: Float32Array }> {
  const url =
    ref.url ??
    (await client.get<{ url: string }>(`/v1/storage/download?key=${encodeURIComponent(ref.key)}`))
      .url;
  const manifest = parseManifest(
    await download(url, { sha256: ref.sha256, size: ref.size }, transfer),
  );
  const weights = new Float32Array(manifest.params);
  for (const p of manifest.partitions) {
    const own = held(p.sha256);
    if (own) {
      weights.set(decodePartition(own, p.length), p.offset);
      continue;
    }
    const info = await client.get<{ url: string; sha256: string; size: number }>(
      `/v1/storage/download?key=${encodeURIComponent(p.key)}`,
    );
    if (info.sha256 !== p.sha256)
      throw new IotaError(
        'E_HASH_MISMATCH',
        `partition ${p.index} of ${ref.key}: the store holds another object`,
      );
    const b = await download(info.url, { sha256: p.sha256, size: p.size }, transfer);
    onBytes(b.length);
    weights.set(decodePartition(b, p.length), p.offset);
  }
  return { manifest, weights };
}
