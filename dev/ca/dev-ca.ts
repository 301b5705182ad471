/**
 * The development CA: a P-384 chain shaped like AWS's Nitro chain —
 * root → intermediate → short-lived leaf — so that dev attestation documents
 * exercise exactly the verifier code that production documents do. Only the
 * trust anchor differs, and nothing trusts it unless a caller passes
 * `ca.trustRoot` explicitly.
 *
 * It also issues TLS server certificates (for the KMS emulator and other dev
 * endpoints) from the same intermediate, so one `caPem` trusts all of them.
 *
 * Persistence (loadOrCreateDevCa): root and intermediate certificates and
 * their PKCS#8 keys as PEM, mode 0600, in a 0700 directory. Creation is
 * atomic: the files are written to a sibling temp directory that is renamed
 * into place, so two processes starting at once end up with one CA.
 */
import { createPrivateKey, generateKeyPairSync, verify as nodeVerify, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { bytesEqual, wipe } from '../../common/bytes.js';
import { SignerError } from '../../common/errors.js';
import { derToPem, pemToDer, trustRoot } from '../../attestation/roots.js';
import type { TrustRoot } from '../../attestation/types.js';
import { parseCertificate, type Certificate } from '../../attestation/x509.js';
import { buildCertificate, EXT_OID, ext, spkiOf, type DistinguishedName } from './certificate.js';

export class DevCaError extends SignerError {}

export const DEV_ROOT_NAME = 'enclave-signer-DEV-root';
export const DEV_ROOT_CN = 'enclave-signer DEV ROOT — NOT FOR PRODUCTION';
export const DEV_INTERMEDIATE_CN = 'enclave-signer DEV intermediate — NOT FOR PRODUCTION';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
/** AWS's NSM leaf certificates live about three hours; ours too, so expiry handling gets exercised in dev. */
export const ATTESTATION_LEAF_LIFETIME_MS = 3 * HOUR;
const ROOT_LIFETIME_MS = 20 * 365 * DAY;
const INTERMEDIATE_LIFETIME_MS = 2 * 365 * DAY;
/** A loaded intermediate with less than this left is replaced (same root, new key). */
const INTERMEDIATE_RENEW_MS = 30 * DAY;
/** CA certificates are backdated so an enclave clock slightly behind the host still accepts them. */
const CA_BACKDATE_MS = DAY;
const TLS_DEFAULT_DAYS = 90;
const TLS_MAX_DAYS = 397; // the CA/Browser Forum ceiling; nothing dev needs more

const ORG: DistinguishedName = [
  ['O', 'enclave-signer'],
  ['OU', 'DEV'],
];

export interface IssuedKeyPair {
  certDer: Uint8Array;
  /** Private key (P-384). */
  key: KeyObject;
}

export interface TlsServerCert {
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
  /** Leaf + intermediate, what a server presents. */
  chainPem: string;
  /** The dev root, what a client trusts. */
  caPem: string;
}

export interface DevCa {
  root: IssuedKeyPair;
  intermediate: IssuedKeyPair;
  /** The dev root as a trust anchor for verifyAttestation({ root }). Never the default anywhere. */
  trustRoot: TrustRoot;
  /** A fresh P-384 leaf for one attestation document, valid ~3 hours from `now`, issued by the intermediate. */
  issueAttestationLeaf(subjectCn: string, now?: Date): IssuedKeyPair;
  /** A TLS server certificate for `hostnames` (DNS names and/or IP addresses). */
  issueTlsServerCert(hostnames: string[], opts?: { now?: Date; days?: number }): TlsServerCert;
}

function p384(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
}

function at(now: Date | undefined): Date {
  const d = now ?? new Date();
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw new DevCaError('DEVCA_BAD_TIME', 'time must be a valid Date');
  return d;
}

function issueRoot(now: Date): IssuedKeyPair {
  const key = p384();
  const spki = spkiOf(key);
  const name: DistinguishedName = [...ORG, ['CN', DEV_ROOT_CN]];
  const certDer = buildCertificate({
    issuer: name,
    subject: name,
    notBefore: new Date(now.getTime() - CA_BACKDATE_MS),
    notAfter: new Date(now.getTime() + ROOT_LIFETIME_MS),
    subjectKey: key,
    signingKey: key,
    // Like AWS_NitroEnclaves_Root-G1: basicConstraints, SKI, keyUsage. pathLen 1: the root signs
    // only intermediates that sign only leaves.
    extensions: [ext.basicConstraints({ ca: true, pathLen: 1 }), ext.subjectKeyIdentifier(spki), ext.keyUsage(['keyCertSign', 'cRLSign'])],
  });
  return { certDer, key };
}

function issueIntermediate(root: IssuedKeyPair, rootCert: Certificate, now: Date): IssuedKeyPair {
  const key = p384();
  const certDer = buildCertificate({
    issuer: rootCert.subjectDer,
    subject: [...ORG, ['CN', DEV_INTERMEDIATE_CN]],
    notBefore: new Date(now.getTime() - CA_BACKDATE_MS),
    notAfter: new Date(Math.min(now.getTime() + INTERMEDIATE_LIFETIME_MS, rootCert.notAfter.getTime())),
    subjectKey: key,
    signingKey: root.key,
    extensions: [
      ext.basicConstraints({ ca: true, pathLen: 0 }),
      ext.authorityKeyIdentifier(rootCert.spkiDer),
      ext.subjectKeyIdentifier(spkiOf(key)),
      ext.keyUsage(['digitalSignature', 'keyCertSign', 'cRLSign']),
    ],
  });
  return { certDer, key };
}

function checkCn(cn: string): string {
  if (typeof cn !== 'string' || cn.length === 0 || cn.length > 64) throw new DevCaError('DEVCA_BAD_NAME', 'subject CN must be 1..64 characters');
  return cn;
}

/** Builds the DevCa object around an existing root and intermediate. */
function assemble(root: IssuedKeyPair, intermediate: IssuedKeyPair): DevCa {
  const intCert = parseCertificate(intermediate.certDer);
  const rootPem = derToPem(root.certDer);
  const intPem = derToPem(intermediate.certDer);

  const issueLeaf = (
    subject: DistinguishedName,
    notBefore: Date,
    notAfter: Date,
    extensions: (spki: Uint8Array) => Uint8Array[],
  ): IssuedKeyPair => {
    const key = p384();
    const certDer = buildCertificate({
      issuer: intCert.subjectDer,
      subject,
      notBefore,
      // A leaf never outlives its issuer: verifiers would reject it at the end anyway.
      notAfter: new Date(Math.min(notAfter.getTime(), intCert.notAfter.getTime())),
      subjectKey: key,
      signingKey: intermediate.key,
      extensions: extensions(spkiOf(key)),
    });
    return { certDer, key };
  };

  return {
    root,
    intermediate,
    trustRoot: trustRoot(root.certDer, DEV_ROOT_NAME),

    issueAttestationLeaf(subjectCn: string, now?: Date): IssuedKeyPair {
      const t = at(now);
      // Whole seconds: UTCTime has no fractions, and notBefore must not be after the document's
      // millisecond timestamp.
      const start = Math.floor(t.getTime() / 1000) * 1000;
      return issueLeaf([...ORG, ['CN', checkCn(subjectCn)]], new Date(start), new Date(start + ATTESTATION_LEAF_LIFETIME_MS), (spki) => [
        ext.basicConstraints({ ca: false }),
        ext.keyUsage(['digitalSignature']),
        ext.authorityKeyIdentifier(intCert.spkiDer),
        ext.subjectKeyIdentifier(spki),
      ]);
    },

    issueTlsServerCert(hostnames: string[], opts: { now?: Date; days?: number } = {}): TlsServerCert {
      if (!Array.isArray(hostnames) || hostnames.length === 0) throw new DevCaError('DEVCA_BAD_NAME', 'a TLS certificate needs at least one hostname or IP address');
      const days = opts.days ?? TLS_DEFAULT_DAYS;
      if (!Number.isInteger(days) || days < 1 || days > TLS_MAX_DAYS) throw new DevCaError('DEVCA_BAD_VALIDITY', `days must be an integer 1..${TLS_MAX_DAYS}`);
      const t = at(opts.now);
      const cn = hostnames[0]!.length <= 64 ? hostnames[0]! : 'enclave-signer dev TLS';
      const leaf = issueLeaf([...ORG, ['CN', cn]], new Date(t.getTime() - 5 * 60_000), new Date(t.getTime() + days * DAY), (spki) => [
        ext.basicConstraints({ ca: false }),
        ext.keyUsage(['digitalSignature']),
        ext.extKeyUsage([EXT_OID.serverAuth]),
        ext.subjectAltName(hostnames),
        ext.authorityKeyIdentifier(intCert.spkiDer),
        ext.subjectKeyIdentifier(spki),
      ]);
      const certPem = derToPem(leaf.certDer);
      return {
        certPem,
        keyPem: leaf.key.export({ type: 'pkcs8', format: 'pem' }) as string,
        chainPem: certPem + intPem,
        caPem: rootPem,
      };
    },
  };
}

/** A fresh in-memory dev CA. */
export function createDevCa(opts: { now?: Date } = {}): DevCa {
  const now = at(opts.now);
  const root = issueRoot(now);
  const intermediate = issueIntermediate(root, parseCertificate(root.certDer), now);
  return assemble(root, intermediate);
}

// ------------------------------------------------------------ persistence

const FILES = {
  rootCert: 'root.pem',
  rootKey: 'root.key.pem',
  intCert: 'intermediate.pem',
  intKey: 'intermediate.key.pem',
} as const;

function writeSecretFile(path: string, data: Uint8Array | string): void {
  writeFileSync(path, data, { mode: 0o600, flag: 'wx' });
}

function keyPemBytes(key: KeyObject): Buffer {
  const der = key.export({ type: 'pkcs8', format: 'der' });
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  wipe(der);
  return Buffer.from(`-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`, 'ascii');
}

function writeCa(dir: string, ca: { root: IssuedKeyPair; intermediate: IssuedKeyPair }): void {
  writeSecretFile(join(dir, FILES.rootCert), derToPem(ca.root.certDer));
  writeSecretFile(join(dir, FILES.intCert), derToPem(ca.intermediate.certDer));
  for (const [file, key] of [
    [FILES.rootKey, ca.root.key],
    [FILES.intKey, ca.intermediate.key],
  ] as const) {
    const pem = keyPemBytes(key);
    writeSecretFile(join(dir, file), pem);
    wipe(pem);
  }
}

function readCaFile(dir: string, file: string): Buffer {
  const path = join(dir, file);
  const st = statSync(path);
  if ((st.mode & 0o077) !== 0) {
    throw new DevCaError('DEVCA_PERMISSIONS', `${path} is accessible to group or others (mode ${(st.mode & 0o777).toString(8)})`, {
      hint: `chmod 600 ${path}`,
    });
  }
  return readFileSync(path);
}

function loadPair(dir: string, certFile: string, keyFile: string): { pair: IssuedKeyPair; cert: Certificate } {
  const certDer = pemToDer(readCaFile(dir, certFile).toString('ascii'));
  const keyPem = readCaFile(dir, keyFile);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyPem, format: 'pem' });
  } catch (e) {
    throw new DevCaError('DEVCA_CORRUPT', `${join(dir, keyFile)} is not a readable private key`, { cause: e });
  } finally {
    wipe(keyPem);
  }
  let cert: Certificate;
  try {
    cert = parseCertificate(certDer);
  } catch (e) {
    throw new DevCaError('DEVCA_CORRUPT', `${join(dir, certFile)} is not a valid certificate`, { cause: e });
  }
  if (!bytesEqual(spkiOf(key), cert.spkiDer)) {
    throw new DevCaError('DEVCA_CORRUPT', `${join(dir, keyFile)} does not belong to the certificate in ${certFile}`);
  }
  return { pair: { certDer, key }, cert };
}

function load(dir: string, now: Date): DevCa {
  const root = loadPair(dir, FILES.rootCert, FILES.rootKey);
  const int = loadPair(dir, FILES.intCert, FILES.intKey);
  const rootPub = createPublicKey(root.pair.key);
  const linked =
    bytesEqual(int.cert.issuerDer, root.cert.subjectDer) &&
    nodeVerify(int.cert.signatureHash, int.cert.tbs, { key: rootPub, dsaEncoding: 'der' }, int.cert.signature);
  if (!linked) throw new DevCaError('DEVCA_CORRUPT', `${FILES.intCert} in ${dir} is not issued by ${FILES.rootCert}`);
  if (root.cert.notAfter.getTime() <= now.getTime()) {
    throw new DevCaError('DEVCA_EXPIRED', `the dev root in ${dir} expired on ${root.cert.notAfter.toISOString()}`, {
      hint: `delete ${dir} to create a new dev CA (clients must then trust the new root)`,
    });
  }
  if (int.cert.notAfter.getTime() - now.getTime() < INTERMEDIATE_RENEW_MS) {
    // Same root (so everything trusting it keeps working), new intermediate. Each file is replaced
    // by a rename, so no reader sees a half-written file; a reader racing between the two renames
    // gets DEVCA_CORRUPT (key and certificate disagree) and can simply run again.
    const fresh = issueIntermediate(root.pair, root.cert, now);
    const tmp = join(dir, `.renew-${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(tmp, { mode: 0o700 });
    try {
      writeSecretFile(join(tmp, FILES.intCert), derToPem(fresh.certDer));
      const pem = keyPemBytes(fresh.key);
      writeSecretFile(join(tmp, FILES.intKey), pem);
      wipe(pem);
      renameSync(join(tmp, FILES.intKey), join(dir, FILES.intKey));
      renameSync(join(tmp, FILES.intCert), join(dir, FILES.intCert));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    return assemble(root.pair, fresh);
  }
  return assemble(root.pair, int.pair);
}

/**
 * Loads the dev CA persisted in `dir`, or creates and persists one when `dir`
 * is missing or empty. A rerun loads the same root. A directory holding only
 * some of the files is an error (never silently replace a root someone trusts).
 */
export function loadOrCreateDevCa(dir: string, opts: { now?: Date } = {}): DevCa {
  if (typeof dir !== 'string' || dir.length === 0) throw new DevCaError('DEVCA_BAD_DIR', 'dev CA directory must be a non-empty path');
  const now = at(opts.now);
  const names = Object.values(FILES);
  const present = () => (existsSync(dir) ? names.filter((f) => existsSync(join(dir, f))) : []);

  let have = present();
  if (have.length === 0) {
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw new DevCaError('DEVCA_BAD_DIR', `${dir} exists and is not a directory`);
    if (existsSync(dir) && readdirSync(dir).length > 0) {
      throw new DevCaError('DEVCA_BAD_DIR', `${dir} is not empty and holds no dev CA`, { hint: 'point the dev CA at its own directory' });
    }
    mkdirSync(dirname(dir), { recursive: true });
    const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(tmp, { mode: 0o700 });
    try {
      const ca = createDevCa({ now });
      writeCa(tmp, ca);
      try {
        // rename(2) replaces a missing or empty directory atomically; if another process won the
        // race the target is no longer empty and we load theirs instead.
        renameSync(tmp, dir);
        return ca;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    have = present();
  }
  if (have.length !== names.length) {
    const missing = names.filter((f) => !have.includes(f));
    throw new DevCaError('DEVCA_INCOMPLETE', `${dir} holds part of a dev CA; missing ${missing.join(', ')}`, {
      hint: `restore the missing files or delete ${dir} to create a new dev CA`,
    });
  }
  return load(dir, now);
}
