import { IotaError, isIotaError } from '../../src/errors.js';

describe('IotaError', () => {
  it('carries a code and a hint, and is recognised', () => {
    const e = new IotaError('E_TEST', 'something failed', 'do this instead');
    expect(isIotaError(e)).toBe(true);
    expect(e.code).toBe('E_TEST');
    expect(e.hint).toBe('do this instead');
    expect(isIotaError(new Error('plain'))).toBe(false);
  });
});
