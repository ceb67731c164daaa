/** HTTP statuses of the protocol's error codes; a code not listed is a 400. */
import { IotaError } from '../errors.js';

const STATUS: Record<string, number> = {
  E_UNSIGNED: 401,
  E_BAD_SIGNATURE: 401,
  E_BAD_KEY_ID: 401,
  E_CLOCK_SKEW: 401,
  E_UNKNOWN_KEY: 403,
  E_FORBIDDEN: 403,
  E_NOT_ALLOWED: 403,
  E_NOT_YOUR_PREFIX: 403,
  E_NOT_FOUND: 404,
  E_NO_UPLOAD: 404,
  E_REPLAY: 409,
  E_WRONG_RUN: 409,
  E_REQUEST_ID_REUSED: 409,
  E_PHASE_CLOSED: 409,
  E_LEASE_LOST: 409,
  E_TOO_LARGE: 413,
  E_BAD_CONTENT_TYPE: 415,
  E_VERSION_MISMATCH: 426,
  E_RATE_LIMITED: 429,
  E_NOT_READY: 503,
};

export function statusOf(code: string): number {
  return STATUS[code] ?? 400;
}

/** An error meant for the client, with extra fields for the reply (e.g. server_time). */
export class HttpError extends IotaError {
  constructor(
    code: string,
    message: string,
    hint?: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(code, message, hint);
  }
}
