/**
 * Certificate path validation for NSM chains: cabundle = [root, …, intermediate],
 * then the leaf. The first element must be byte-identical to the pinned root
 * (compared by SHA-256 fingerprint); each next certificate must be issued and
 * signed by the previous one, which must be a CA allowed to sign certificates
 * within its path length; every certificate must be valid at the given time;
 * every key is P-384.
 *
 * Verified issuer→subject signatures are cached (keyed by both DERs'
 * fingerprints): a long-lived parent re-verifies the same intermediates every
 * few minutes, and ECDSA P-384 verification dominates the cost. Time validity
 * is never cached.
 *
 * A pinned root's key is imported once per process and kept even by
 * clearChainCache: it is the verifier's configuration (a root the caller
 * passed), not something a document brings, and OpenSSL 3.0's SPKI import costs
 * ~0.13 ms (3 % of a cold verification on Node 20).
 */
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { bytesEqual } from '../common/bytes.js';
import { AttestationError } from './errors.js';
import type { TrustRoot } from './types.js';
import { KeyUsage, OID, parseCertificate, type Certificate } from './x509.js';

const MAX_CACHE = 1024;
const parsedCache = new Map<string, Certificate>();
const keyCache = new Map<string, KeyObject>();
const verifiedLinks = new Set<string>();
/** Pinned roots' keys by fingerprint: few (AWS's root, a dev or test CA), so a small bound. */
const MAX_ROOT_KEYS = 16;
const rootKeys = new Map<string, KeyObject>();

function remember<K, V>(m: Map<K, V>, k: K, v: V, max = MAX_CACHE): V {
  if (m.size >= max) m.delete(m.keys().next().value as K);
  m.set(k, v);
  return v;
}

/** Clears the caches (benchmarks use it to measure cold verification). */
export function clearChainCache(): void {
  parsedCache.clear();
  keyCache.clear();
  verifiedLinks.clear();
}

function chainError(msg: string, cause?: unknown): AttestationError {
  return new AttestationError('ATTEST_CHAIN', 'chain', msg, cause === undefined ? {} : { cause });
}

export function certificate(der: Uint8Array, what: string): Certificate {
  // Cheap pre-key: most documents repeat the same intermediates byte for byte.
  const key = Buffer.from(der).toString('base64');
  const hit = parsedCache.get(key);
  if (hit) return hit;
  try {
    return remember(parsedCache, key, parseCertificate(der));
  } catch (e) {
    throw chainError(`${what} is not a valid certificate: ${(e as Error).message}`, e);
  }
}

export function publicKeyOf(cert: Certificate): KeyObject {
  const hit = keyCache.get(cert.fingerprint);
  if (hit) return hit;
  return remember(keyCache, cert.fingerprint, importKey(cert));
}

/** The key of cabundle[0] once it is known to be byte-identical to the pinned root. */
function pinnedRootKey(top: Certificate): KeyObject {
  const hit = rootKeys.get(top.fingerprint);
  if (hit) return hit;
  return remember(rootKeys, top.fingerprint, importKey(top), MAX_ROOT_KEYS);
}

function importKey(cert: Certificate): KeyObject {
  if (cert.curve !== OID.secp384r1) throw chainError(`certificate ${cert.subject} uses curve ${cert.curve}, Nitro chains use P-384 (secp384r1)`);
  try {
    return createPublicKey({ key: Buffer.from(cert.spkiDer), format: 'der', type: 'spki' });
  } catch (e) {
    throw chainError(`certificate ${cert.subject} has an unusable public key`, e);
  }
}

function checkIssued(issuer: Certificate, issuerKey: KeyObject, subject: Certificate, depth: number, below: number): void {
  if (!bytesEqual(issuer.subjectDer, subject.issuerDer)) {
    throw chainError(`chain order broken: "${subject.subject}" is not issued by "${issuer.subject}"`, undefined);
  }
  if (issuer.ca !== true) throw chainError(`"${issuer.subject}" is not a CA (basicConstraints cA is not true)`);
  if (issuer.keyUsage && !issuer.keyUsage.has(KeyUsage.keyCertSign)) throw chainError(`"${issuer.subject}" may not sign certificates (keyUsage lacks keyCertSign)`);
  if (issuer.pathLen !== undefined && below > issuer.pathLen) {
    throw chainError(`"${issuer.subject}" allows ${issuer.pathLen} intermediate(s) below it, chain has ${below}`);
  }
  const link = `${issuer.fingerprint}>${subject.fingerprint}`;
  if (verifiedLinks.has(link)) return;
  const ok = nodeVerify(subject.signatureHash, subject.tbs, { key: issuerKey, dsaEncoding: 'der' }, subject.signature);
  if (!ok) throw chainError(`signature on certificate ${depth} ("${subject.subject}") does not verify with its issuer's key`);
  if (verifiedLinks.size >= MAX_CACHE) verifiedLinks.clear();
  verifiedLinks.add(link);
}

function checkTime(cert: Certificate, at: Date, role: string): void {
  const t = at.getTime();
  if (t < cert.notBefore.getTime()) {
    throw new AttestationError(
      'ATTEST_CERT_NOT_YET_VALID',
      'validity',
      `${role} certificate "${cert.subject}" is not valid until ${cert.notBefore.toISOString()} (verification time ${at.toISOString()})`,
    );
  }
  if (t > cert.notAfter.getTime()) {
    throw new AttestationError(
      'ATTEST_CERT_EXPIRED',
      'validity',
      `certificate expired: ${role} certificate "${cert.subject}" was valid until ${cert.notAfter.toISOString()}, verification time is ${at.toISOString()}`,
      { hint: 'to audit an old document, verify at its own timestamp (--at doc)' },
    );
  }
}

export interface VerifiedChain {
  leaf: Certificate;
  /** Root first, leaf last. */
  certs: Certificate[];
}

/**
 * Verifies leaf ← cabundle against `root`: structure, constraints and
 * signatures (ATTEST_CHAIN / ATTEST_UNTRUSTED_ROOT). Time is checked
 * separately by checkValidity, so an authentic but old document reports an
 * expiry, not a chain fault.
 */
export function verifyChain(leafDer: Uint8Array, cabundle: Uint8Array[], root: TrustRoot): VerifiedChain {
  const first = cabundle[0];
  if (!first) throw chainError(`document carries no CA bundle, so it cannot chain to the pinned root ${root.name}`);
  const top = certificate(first, 'cabundle[0]');
  if (top.fingerprint !== root.fingerprint) {
    throw new AttestationError(
      'ATTEST_UNTRUSTED_ROOT',
      'chain',
      `chain does not start at the pinned root ${root.name} (${root.fingerprint}); cabundle[0] is "${top.subject}" with fingerprint ${top.fingerprint}`,
      { hint: 'a document from real Nitro hardware chains to AWS_NitroEnclaves_Root-G1; dev documents need the dev root passed explicitly' },
    );
  }
  if (!bytesEqual(top.der, root.der)) throw new AttestationError('ATTEST_UNTRUSTED_ROOT', 'chain', 'cabundle[0] differs from the pinned root');
  if (top.ca !== true) throw chainError('pinned root is not a CA certificate');
  if (!bytesEqual(top.subjectDer, top.issuerDer)) throw chainError('pinned root is not self-issued');

  const certs: Certificate[] = [top];
  for (let i = 1; i < cabundle.length; i++) certs.push(certificate(cabundle[i]!, `cabundle[${i}]`));
  const leaf = certificate(leafDer, 'leaf certificate');
  certs.push(leaf);

  // Curve check on every key, root included.
  const keys = certs.map((c, i) => (i === 0 ? pinnedRootKey(c) : publicKeyOf(c)));
  for (let i = 1; i < certs.length; i++) {
    // intermediates strictly between issuer i-1 and the leaf
    checkIssued(certs[i - 1]!, keys[i - 1]!, certs[i]!, i, certs.length - 1 - i);
  }
  if (leaf.ca === true) throw chainError(`leaf certificate "${leaf.subject}" is a CA certificate`);
  if (leaf.keyUsage && !leaf.keyUsage.has(KeyUsage.digitalSignature)) throw chainError('leaf certificate may not make digital signatures (keyUsage)');
  return { leaf, certs };
}

/** Every certificate of the chain must be valid at `at` (ATTEST_CERT_EXPIRED / ATTEST_CERT_NOT_YET_VALID). */
export function checkValidity(chain: VerifiedChain, at: Date): void {
  const n = chain.certs.length;
  chain.certs.forEach((c, i) => {
    checkTime(c, at, i === 0 ? 'root' : i === n - 1 ? 'leaf' : 'intermediate');
  });
}
