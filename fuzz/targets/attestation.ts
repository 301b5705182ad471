/**
 * attestation/: COSE_Sign1 envelope, attestation document payload, the X.509
 * certificates inside it, and end-to-end verification against the pinned
 * AWS root at the document's own time.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Asn1Error } from '../../common/der.js';
import { checkCoseHeaders } from '../../attestation/cose.js';
import { AttestationError } from '../../attestation/errors.js';
import { parseAttestation, verifyAttestation } from '../../attestation/verify.js';
import { parseCertificate } from '../../attestation/x509.js';
import { hex, invariant, typed, utf8 } from '../check.js';
import type { FuzzTarget } from '../engine.js';
import { CBOR, DER } from '../mutate.js';
import { FIXTURES, fixture } from '../fixtures.js';

let authentic = new Set<string>();
/** ECDSA P-384 costs ~1 ms: run the full verification for every document whose signed triple is authentic, and every VERIFY_EVERY-th other one. */
const VERIFY_EVERY = 16;
let sampled = 0;
const certsSeen = new Set<string>();
export const attestationStats = { parsed: 0, verified: 0 };

function fixtureDocs(): Uint8Array[] {
  if (!FIXTURES) return [];
  const dir = join(FIXTURES, 'attestation');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cbor'))
    .sort()
    .map((f) => fixture(`attestation/${f}`)!)
    .filter((b) => b !== undefined);
}

/** The signed triple of a document: two documents with the same triple say the same thing. */
function triple(p: { protectedHeader: Uint8Array; payload: Uint8Array; signature: Uint8Array }): string {
  return `${hex(p.protectedHeader)}|${hex(p.payload)}|${hex(p.signature)}`;
}

export const attestationTarget: FuzzTarget = {
  name: 'attestation',
  description:
    'parseAttestation, checkCoseHeaders and parseCertificate (leaf and cabundle) on mutated real Nitro documents; verifyAttestation(at: document time) on every mutant that keeps an authentic signed triple and on every 16th other one (ECDSA P-384 costs ~1 ms). ' +
    'Only AttestationError (Asn1Error for the certificate parser) escapes; verifyAttestation never reaches its catch-all ("could not be processed": an unexpected exception inside a check); ' +
    'a document that verifies carries exactly the protected header, payload and signature of an authentic seed (no forgery by re-encoding).',
  cover: ['/attestation/', '/common/cbor.', '/common/der.'],
  maxLen: 16 * 1024 + 64,
  seeds() {
    const docs = fixtureDocs();
    authentic = new Set();
    for (const d of docs) {
      try {
        const v = verifyAttestation(d, { at: 'document' });
        void v;
        authentic.add(triple(parseAttestation(d)));
      } catch {
        // known-bad fixture: a seed, but not authentic
      }
    }
    return docs;
  },
  dict: [utf8('module_id'), utf8('public_key'), utf8('user_data'), utf8('nonce'), utf8('cabundle'), utf8('SHA384'), Uint8Array.of(0xa1, 0x01, 0x38, 0x22), Uint8Array.of(0xd2)],
  mutators: [...CBOR, ...DER],
  run(x) {
    const parsed = typed(() => parseAttestation(x), AttestationError);
    if (parsed) {
      typed(() => checkCoseHeaders(parsed), AttestationError);
      for (const der of [parsed.doc.certificate, ...parsed.doc.cabundle]) {
        // Most mutants carry the seeds' certificates unchanged: parse each distinct one once.
        const k = Buffer.from(der).toString('base64');
        if (certsSeen.has(k)) continue;
        if (certsSeen.size > 50_000) certsSeen.clear();
        certsSeen.add(k);
        typed(() => parseCertificate(der), Asn1Error);
      }
    }
    if (parsed) attestationStats.parsed++;
    // Re-encodings of an authentic triple are the forgery candidates: always verified.
    if (!(parsed && authentic.has(triple(parsed))) && ++sampled % VERIFY_EVERY !== 0) return;
    attestationStats.verified++;
    let verified = false;
    try {
      verifyAttestation(x, { at: 'document' });
      verified = true;
    } catch (e) {
      if (!(e instanceof AttestationError)) throw e;
      invariant(!e.message.startsWith('document could not be processed'), `verifyAttestation hit its catch-all: ${e.message} (cause: ${String((e.cause as Error)?.stack ?? e.cause)})`);
    }
    if (verified) invariant(parsed !== undefined && authentic.has(triple(parsed)), 'a mutated document verified with a signed triple no authentic seed has');
  },
};
