/**
 * Ed25519 identities. A participant's id is its raw 32-byte public key in base64url (43
 * characters): anyone can verify a signature from the id alone. Key files are JSON, mode 0600.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { IotaError } from '../errors.js';

const KEY_FORMAT = 'iota-ed25519-key';
/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw key follows. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface Identity {
  id: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function newIdentity(): Identity {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { id: keyIdOf(publicKey), privateKey, publicKey };
}

export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return der.subarray(SPKI_PREFIX.length).toString('base64url');
}

export const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** Parsing a key costs as much as verifying with it; a server sees the same keys again and again. */
const publicKeys = new Map<string, KeyObject>();
const MAX_CACHED_KEYS = 50_000;

/** The public key named by an id; throws E_BAD_KEY_ID when it is not one. */
export function publicKeyFromId(id: string): KeyObject {
  const cached = publicKeys.get(id);
  if (cached) return cached;
  if (!KEY_ID_PATTERN.test(id))
    throw new IotaError('E_BAD_KEY_ID', `"${id}" is not a key id (43 base64url characters)`);
  const raw = Buffer.from(id, 'base64url');
  if (raw.length !== 32) throw new IotaError('E_BAD_KEY_ID', `"${id}" is not a key id`);
  const key = createPublicKey({
    key: Buffer.concat([SPKI_PREFIX, raw]),
    format: 'der',
    type: 'spki',
  });
  if (publicKeys.size >= MAX_CACHED_KEYS)
    publicKeys.delete(publicKeys.keys().next().value as string);
  publicKeys.set(id, key);
  return key;
}

export function signBytes(identity: Identity, message: Uint8Array): string {
  return sign(null, message, identity.privateKey).toString('base64url');
}

export function verifyBytes(publicKey: KeyObject, message: Uint8Array, signature: string): boolean {
  const sig = Buffer.from(signature, 'base64url');
  if (sig.length !== 64) return false;
  return verify(null, message, publicKey, sig);
}

export function writeKeyFile(path: string, identity: Identity): void {
  if (existsSync(path))
    throw new IotaError(
      'E_KEY_EXISTS',
      `${path} already exists`,
      'choose another --out; a key file is never overwritten',
    );
  const body = {
    format: KEY_FORMAT,
    id: identity.id,
    private_key: identity.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
  };
  writeFileSync(path, `${JSON.stringify(body, null, 1)}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
}

export function readKeyFile(path: string): Identity {
  let body: { format?: string; id?: string; private_key?: string };
  try {
    body = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new IotaError(
      'E_BAD_KEY_FILE',
      `cannot read key file ${path}: ${code ?? 'not JSON'}`,
      'create one with `iota keys new --out FILE`',
    );
  }
  if (body.format !== KEY_FORMAT || typeof body.private_key !== 'string') {
    throw new IotaError(
      'E_BAD_KEY_FILE',
      `${path} is not an iota key file`,
      'create one with `iota keys new --out FILE`',
    );
  }
  const privateKey = createPrivateKey({
    key: Buffer.from(body.private_key, 'base64'),
    format: 'der',
    type: 'pkcs8',
  });
  const publicKey = createPublicKey(privateKey);
  const id = keyIdOf(publicKey);
  if (body.id !== undefined && body.id !== id)
    throw new IotaError('E_BAD_KEY_FILE', `${path}: its id does not match its private key`);
  if ((statSync(path).mode & 0o077) !== 0)
    process.emitWarning(`${path} is readable by other users; chmod 600 it`);
  return { id, privateKey, publicKey };
}
