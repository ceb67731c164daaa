import { newIdentity, signBytes } from '../../../src/protocol/keys.js';
import { SignatureVerifier } from '../../../src/orchestrator/verifier.js';

describe('signature verifier', () => {
  const alice = newIdentity();
  const bob = newIdentity();
  const message = Buffer.from('POST\n/v1/report\nrun\n1795631844078\nnonce\nsha');
  const signature = signBytes(alice, message);
  // A small Buffer is a view into a shared pool: the worker must check just its bytes.
  const pooled = Buffer.from(message.toString('utf8'));

  it.each([
    ['on a worker thread', 1],
    ['inline', 0],
  ])('accepts only the right key, bytes and signature (%s)', async (_how, threads) => {
    const v = new SignatureVerifier(threads);
    const tampered = Buffer.from(message);
    tampered[0] ^= 1;
    const results = await Promise.all([
      v.verify(alice.id, message, signature),
      v.verify(alice.id, pooled, signature),
      v.verify(bob.id, message, signature),
      v.verify(alice.id, tampered, signature),
      v.verify(alice.id, message, signature.slice(0, -2)),
      v.verify(alice.id, message, signBytes(bob, message)),
    ]);
    expect(results).toEqual([true, true, false, false, false, false]);
    await v.close();
  });

  it('refuses a key id that is not a key, on the worker', async () => {
    const v = new SignatureVerifier(1);
    expect(await v.verify('AAAA', message, signature)).toBe(false);
    await v.close();
  });
});
