/**
 * Errors are values with codes. An `IotaError` is an expected failure: the CLI prints its
 * message and hint without a stack trace and exits non-zero; servers turn it into a 4xx.
 */
export class IotaError extends Error {
  readonly code: string;
  readonly hint?: string;

  constructor(code: string, message: string, hint?: string) {
    super(message);
    this.name = 'IotaError';
    this.code = code;
    this.hint = hint;
  }
}

export function isIotaError(e: unknown): e is IotaError {
  return (
    e instanceof Error &&
    (e as IotaError).name === 'IotaError' &&
    typeof (e as IotaError).code === 'string'
  );
}
