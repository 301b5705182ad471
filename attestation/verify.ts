/**
 * Verifies an NSM attestation document end to end. The one entry point for the
 * parent's gate, the KMS emulator and auditors:
 *
 *   cose → payload → signature → chain → validity → debug → nonce/public_key/user_data → pcrs
 *
 * Any failure throws an AttestationError naming the failed check; nothing else
 * escapes (unexpected exceptions are wrapped as ATTEST_MALFORMED).
 */
import { bytesEqual, parseHex, toHex } from '../common/bytes.js';
import { checkCoseHeaders, parseCoseSign1, verifyCoseSign1 } from './cose.js';
import { decodeDocument } from './document.js';
import { AttestationError } from './errors.js';
import { checkValidity, publicKeyOf, verifyChain } from './chain.js';
import { awsNitroRoot } from './roots.js';
import type { AttestationDocument, ParsedAttestation, VerifiedAttestation, VerifyOptions } from './types.js';

/** Largest document we read: NSM's response buffer is 0x3000 bytes; allow headroom for encodings. */
export const MAX_DOCUMENT_BYTES = 16 * 1024;

const ZERO_PCR = new Uint8Array(48);

/** True when PCR0, PCR1 and PCR2 are all zero: the enclave runs in debug mode. */
export function isDebugDocument(doc: AttestationDocument): boolean {
  return [0, 1, 2].every((i) => {
    const p = doc.pcrs.get(i);
    return p !== undefined && bytesEqual(p, ZERO_PCR);
  });
}

/** Parses without verifying anything but structure. For display and for callers that verify separately. */
export function parseAttestation(bytes: Uint8Array): ParsedAttestation {
  if (!(bytes instanceof Uint8Array)) throw new AttestationError('ATTEST_INPUT', 'input', 'document must be bytes');
  if (bytes.length === 0) throw new AttestationError('ATTEST_INPUT', 'input', 'document is empty');
  if (bytes.length > MAX_DOCUMENT_BYTES) {
    throw new AttestationError('ATTEST_INPUT', 'input', `document is ${bytes.length} bytes, more than the ${MAX_DOCUMENT_BYTES}-byte limit`);
  }
  const cose = parseCoseSign1(bytes);
  return { ...cose, doc: decodeDocument(cose.payload) };
}

function expectBytes(name: 'nonce' | 'public_key' | 'user_data', actual: Uint8Array | null, expected: Uint8Array): void {
  const code = name === 'nonce' ? 'ATTEST_NONCE_MISMATCH' : name === 'public_key' ? 'ATTEST_PUBLIC_KEY_MISMATCH' : 'ATTEST_USER_DATA_MISMATCH';
  if (actual === null) throw new AttestationError(code, name, `document has no ${name}, expected ${expected.length} bytes`);
  if (!bytesEqual(actual, expected)) throw new AttestationError(code, name, `${name} in the document does not match the expected value`);
}

function pcrBytes(v: Uint8Array | string, idx: number): Uint8Array {
  if (v instanceof Uint8Array) return v;
  const b = parseHex(v);
  if (!b) throw new AttestationError('ATTEST_PCR_MISMATCH', 'pcrs', `expected PCR${idx} is not hex`);
  return b;
}

function run(bytes: Uint8Array, opts: VerifyOptions): VerifiedAttestation {
  const checks: string[] = [];
  const parsed = parseAttestation(bytes);
  checks.push('cose', 'payload');
  const doc = parsed.doc;
  const root = opts.root ?? awsNitroRoot();
  const at = opts.at === 'document' ? new Date(doc.timestamp) : opts.at ?? new Date();
  if (Number.isNaN(at.getTime())) throw new AttestationError('ATTEST_INPUT', 'input', 'verification time is not a valid date');

  // Chain structure first (so the leaf key is known to be a P-384 key from a
  // pinned chain), then the document signature, then time: an authentic but
  // old document reports an expiry, a forged one a signature or chain fault.
  const chain = verifyChain(doc.certificate, doc.cabundle, root);
  checks.push('chain');
  checkCoseHeaders(parsed);
  if (!verifyCoseSign1(parsed, publicKeyOf(chain.leaf))) {
    throw new AttestationError('ATTEST_SIGNATURE', 'signature', 'COSE signature does not verify with the leaf certificate key');
  }
  checks.push('signature');
  checkValidity(chain, at);
  checks.push('validity');

  const debug = isDebugDocument(doc);
  if (debug && opts.allowDebug !== true) {
    throw new AttestationError('ATTEST_DEBUG_MODE', 'debug', 'document comes from a debug-mode enclave (PCR0, PCR1 and PCR2 are all zero)', {
      hint: 'debug enclaves can be inspected by the host; accept them only in development (--allow-debug)',
    });
  }
  checks.push('debug');

  if (opts.expectedNonce) {
    expectBytes('nonce', doc.nonce, opts.expectedNonce);
    checks.push('nonce');
  }
  if (opts.expectedPublicKey) {
    expectBytes('public_key', doc.publicKey, opts.expectedPublicKey);
    checks.push('public_key');
  }
  if (opts.expectedUserData) {
    expectBytes('user_data', doc.userData, opts.expectedUserData);
    checks.push('user_data');
  }
  if (opts.expectedPcrs) {
    const entries = Object.entries(opts.expectedPcrs);
    if (entries.length === 0) throw new AttestationError('ATTEST_PCR_MISMATCH', 'pcrs', 'an empty expected PCR set proves nothing');
    for (const [k, v] of entries) {
      const idx = Number(k);
      const want = pcrBytes(v, idx);
      const got = doc.pcrs.get(idx);
      if (!got) throw new AttestationError('ATTEST_PCR_MISMATCH', 'pcrs', `document has no PCR${idx}`);
      if (!bytesEqual(got, want)) {
        throw new AttestationError('ATTEST_PCR_MISMATCH', 'pcrs', `PCR${idx} is ${toHex(got)}, expected ${toHex(want)}`);
      }
    }
    checks.push('pcrs');
  }

  return {
    document: doc,
    checks,
    verifiedAt: at,
    root: { name: root.name, fingerprint: root.fingerprint },
    chainSubjects: chain.certs.map((c) => c.subject),
    debug,
  };
}

/**
 * Verifies a document. Throws AttestationError (with `.check`) on any failure.
 * Synchronous: all crypto is node:crypto, and callers verify in hot paths.
 */
export function verifyAttestation(bytes: Uint8Array, opts: VerifyOptions = {}): VerifiedAttestation {
  try {
    return run(bytes, opts);
  } catch (e) {
    if (e instanceof AttestationError) throw e;
    throw new AttestationError('ATTEST_MALFORMED', 'payload', `document could not be processed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}
