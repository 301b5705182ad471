/**
 * Trust anchors. The AWS Nitro Enclaves root is embedded and pinned by its
 * SHA-256 fingerprint; any other root (the dev CA, a test CA) must be passed
 * explicitly by the caller — nothing is trusted because a document carries it.
 */
import { createHash } from 'node:crypto';
import { SignerError } from '../common/errors.js';
import type { TrustRoot } from './types.js';

/** AWS_NitroEnclaves_Root-G1 (valid 2019-10-28 .. 2049-10-28). */
export const AWS_NITRO_ROOT_G1_PEM = `-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----`;

export const AWS_NITRO_ROOT_G1_FINGERPRINT = '641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B';

export function sha256Fingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex').toUpperCase();
}

/** Extracts the first CERTIFICATE block of a PEM text as DER. */
export function pemToDer(pem: string, label = 'CERTIFICATE'): Uint8Array {
  const m = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(pem);
  if (!m) throw new SignerError('PEM_INVALID', `no ${label} block found in PEM text`);
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

export function derToPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/**
 * Builds a trust root from PEM or DER. With `expectedFingerprint`, refuses a
 * certificate whose SHA-256 differs (how production pins AWS's root).
 */
export function trustRoot(input: string | Uint8Array, name: string, expectedFingerprint?: string): TrustRoot {
  const der = typeof input === 'string' ? pemToDer(input) : input;
  const fingerprint = sha256Fingerprint(der);
  if (expectedFingerprint !== undefined && fingerprint !== expectedFingerprint.replace(/:/g, '').toUpperCase()) {
    throw new SignerError('ROOT_FINGERPRINT_MISMATCH', `root ${name} has fingerprint ${fingerprint}, expected ${expectedFingerprint}`);
  }
  return { name, der, fingerprint };
}

let awsRoot: TrustRoot | undefined;

/** The pinned AWS Nitro Enclaves root (the default for every verification). */
export function awsNitroRoot(): TrustRoot {
  awsRoot ??= trustRoot(AWS_NITRO_ROOT_G1_PEM, 'AWS_NitroEnclaves_Root-G1', AWS_NITRO_ROOT_G1_FINGERPRINT);
  return awsRoot;
}
