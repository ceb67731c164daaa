/** The S3 SDK's failures as coded errors a user can act on. */
import { IotaError } from '../errors.js';

interface S3Failure {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** An SDK failure as a coded error; anything unexpected is E_STORE_FAILED with S3's own words. */
export function s3Error(e: unknown, op: string, key: string): IotaError {
  const f = (e ?? {}) as S3Failure;
  const status = f.$metadata?.httpStatusCode;
  switch (f.name) {
    case 'NoSuchKey':
    case 'NotFound':
      return new IotaError('E_NOT_FOUND', `no object ${key}`);
    case 'InvalidRange':
      return new IotaError('E_BAD_RANGE', `the range is outside ${key}`);
    case 'NoSuchUpload':
      return new IotaError(
        'E_NO_UPLOAD',
        `the multipart upload of ${key} was completed, aborted or never started`,
      );
    case 'BadDigest':
    case 'InvalidDigest':
    case 'XAmzContentChecksumMismatch':
      return new IotaError('E_HASH_MISMATCH', `S3 refused ${key}: ${f.message}`);
    case 'InvalidPart':
    case 'InvalidPartOrder':
      return new IotaError(
        'E_INCOMPLETE_UPLOAD',
        `S3 cannot assemble ${key}: ${f.message}`,
        'upload every part, then complete with their ETags',
      );
  }
  if (status === 404) return new IotaError('E_NOT_FOUND', `no object ${key}`);
  return new IotaError(
    'E_STORE_FAILED',
    `S3 ${op} ${key} failed: ${f.name ?? 'error'}: ${f.message ?? String(e)}`,
    'check the bucket, endpoint and credentials in the node config',
  );
}
