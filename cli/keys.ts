/**
 * Loading the keys and roots an operator points at. A file that is not what
 * it should be is a CliInputError (exit 2): the invocation is wrong, nothing
 * was checked yet. Key bytes read here never appear in messages.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { wipe } from '../common/bytes.js';
import { awsNitroRoot, trustRoot } from '../attestation/roots.js';
import { parseCertificate } from '../attestation/x509.js';
import type { TrustRoot } from '../attestation/types.js';
import { CliInputError } from './errors.js';
import { readInputFile } from './io.js';

const MAX_KEY_FILE = 64 * 1024;

export async function loadPublicKey(path: string, flag: string): Promise<KeyObject> {
  const bytes = await readInputFile(path, 'public key', MAX_KEY_FILE);
  const text = Buffer.from(bytes).toString('utf8');
  try {
    if (text.includes('PRIVATE KEY')) {
      throw new CliInputError(`--${flag} ${path} holds a private key; pass the public key (.pub.pem)`, { hint: 'auditors and verifiers only ever need the public half' });
    }
    return createPublicKey(text);
  } catch (e) {
    if (e instanceof CliInputError) throw e;
    throw new CliInputError(`--${flag} ${path} is not a PEM public key`, { cause: e });
  } finally {
    wipe(bytes);
  }
}

export async function loadPrivateKey(path: string, flag: string): Promise<KeyObject> {
  const bytes = await readInputFile(path, 'private key', MAX_KEY_FILE);
  try {
    return createPrivateKey({ key: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), format: 'pem' });
  } catch (e) {
    const encrypted = /passphrase/i.test((e as Error)?.message ?? '');
    // Deliberately not chaining `cause`: OpenSSL messages can quote key material positions, not worth the risk.
    throw new CliInputError(encrypted ? `--${flag} ${path} is an encrypted private key, which this command cannot unlock` : `--${flag} ${path} is not a PEM private key`, {
      hint: encrypted ? 'decrypt it to a 0600 file first (openssl pkey -in enc.pem -out key.pem)' : 'create one with `enclave-signer manifest keygen`',
    });
  } finally {
    wipe(bytes);
  }
}

/** `--root`: a PEM (or DER) certificate to trust instead of AWS's root. */
export async function loadRoot(path: string): Promise<TrustRoot> {
  const bytes = await readInputFile(path, 'root certificate', MAX_KEY_FILE);
  const text = Buffer.from(bytes).toString('latin1');
  try {
    const pem = text.includes('-----BEGIN CERTIFICATE-----');
    if (!pem && bytes[0] !== 0x30) throw new CliInputError(`--root ${path} is not a PEM or DER certificate`);
    const input = pem ? text : bytes;
    const provisional = trustRoot(input, 'root');
    if (provisional.fingerprint === awsNitroRoot().fingerprint) return awsNitroRoot();
    let subject = path;
    try {
      subject = parseCertificate(provisional.der).subject;
    } catch (e) {
      throw new CliInputError(`--root ${path} is not a usable X.509 certificate: ${(e as Error).message}`, { cause: e });
    }
    return { ...provisional, name: `custom root ${subject}` };
  } catch (e) {
    if (e instanceof CliInputError) throw e;
    throw new CliInputError(`--root ${path} is not a PEM or DER certificate: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}

export function isAwsRoot(root: { fingerprint: string }): boolean {
  return root.fingerprint === awsNitroRoot().fingerprint;
}
