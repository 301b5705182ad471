import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { attestationFixtures, type AttestationSidecar } from '../test/fixtures.js';
import { AttestationError } from './errors.js';
import { createManifest } from './manifest-format.js';
import { signManifest, type SignedManifest } from './manifest-signature.js';
import { verifyAttestationAgainstManifest } from './manifest-attest.js';
import { parseAttestation } from './verify.js';
import { trustRoot } from './roots.js';

const fixtures = attestationFixtures();
const valid = fixtures.filter((f) => !f.knownBad);
const release = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const stranger = generateKeyPairSync('ed25519');

function pcr(s: AttestationSidecar, i: number): string {
  const v = s.all_pcrs[String(i)];
  if (!v) throw new Error(`fixture has no PCR${i}`);
  return v;
}

/** A manifest for the image a fixture's enclave ran, as CI would publish it. */
function manifestFor(s: AttestationSidecar, opts: { match?: number[]; edit?: Partial<Record<0 | 1 | 2 | 8, string>> } = {}): SignedManifest {
  const pcrs = { 0: pcr(s, 0), 1: pcr(s, 1), 2: pcr(s, 2), 8: pcr(s, 8), ...opts.edit };
  const allowDebug = s.debug_mode_pcrs_zero;
  const m = createManifest(
    { image: { name: 'fixture', version: '1', sourceCommit: '0'.repeat(40), eifSha256: '1'.repeat(64) }, pcrs, match: opts.match ?? [0, 1, 2], createdAt: new Date(s.timestamp_raw) },
    { allowDebug },
  );
  return signManifest(m, release.privateKey, { allowDebug });
}

function attestError(fn: () => unknown, code: string, check: string): AttestationError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AttestationError);
    const ae = e as AttestationError;
    expect(ae.code, ae.message).toBe(code);
    expect(ae.check, ae.message).toBe(check);
    return ae;
  }
  throw new Error(`expected ${code}, verification passed`);
}

describe('verifyAttestationAgainstManifest on real Nitro documents', () => {
  it('has valid and debug fixtures to work with', () => {
    expect(valid.length).toBeGreaterThanOrEqual(6);
    expect(valid.some((f) => f.sidecar.debug_mode_pcrs_zero)).toBe(true);
  });

  for (const f of valid) {
    const allowDebug = f.sidecar.debug_mode_pcrs_zero;

    it(`${f.name}: verifies against its manifest at the document's timestamp`, () => {
      const signed = manifestFor(f.sidecar, { match: [0, 1, 2, 8] });
      const r = verifyAttestationAgainstManifest(f.bytes, signed, { trustedKeys: [release.publicKey], at: 'document', allowDebug });
      expect(r.document.moduleId).toBe(f.sidecar.module_id);
      expect(r.checks[0]).toBe('manifest');
      expect(r.checks).toContain('pcrs');
      expect(r.manifest).toEqual(signed.manifest);
      expect(r.manifestKeyId).toBe(signed.signature.keyId);
      expect(r.debug).toBe(allowDebug);
      // Also through JSON text, as it travels.
      expect(verifyAttestationAgainstManifest(f.bytes, JSON.stringify(signed, null, 2), { trustedKeys: [signed.signature.keyId], at: 'document', allowDebug }).document.moduleId).toBe(f.sidecar.module_id);
    });

    for (const idx of [0, 1, 2] as const) {
      it(`${f.name}: a different PCR${idx} in the manifest is ATTEST_PCR_MISMATCH`, () => {
        const orig = pcr(f.sidecar, idx);
        const flipped = (orig[0] === 'f' ? 'e' : 'f') + orig.slice(1);
        const signed = manifestFor(f.sidecar, { edit: { [idx]: flipped } });
        const e = attestError(() => verifyAttestationAgainstManifest(f.bytes, signed, { trustedKeys: [release.publicKey], at: 'document', allowDebug }), 'ATTEST_PCR_MISMATCH', 'pcrs');
        expect(e.message).toContain(`PCR${idx}`);
      });
    }

    it(`${f.name}: fails "now" with certificate expired`, () => {
      const e = attestError(() => verifyAttestationAgainstManifest(f.bytes, manifestFor(f.sidecar), { trustedKeys: [release.publicKey], allowDebug }), 'ATTEST_CERT_EXPIRED', 'validity');
      expect(e.message).toMatch(/certificate expired/);
    });
  }

  const nitro = valid.find((f) => f.name.startsWith('blocky_nitrite_nitro'))!;
  const debug = valid.find((f) => f.name.startsWith('blocky_nitrite_debug'))!;
  const trusted = { trustedKeys: [release.publicKey], at: 'document' as const };

  it('checks exactly the PCRs in match', () => {
    const wrong1 = 'f'.repeat(96);
    // PCR1 differs from the document but is not matched: accepted.
    const signed = manifestFor(nitro.sidecar, { match: [0, 2], edit: { 1: wrong1 } });
    expect(verifyAttestationAgainstManifest(nitro.bytes, signed, trusted).checks).toContain('pcrs');
    // The same manifest with PCR1 matched: rejected.
    attestError(() => verifyAttestationAgainstManifest(nitro.bytes, manifestFor(nitro.sidecar, { match: [0, 1, 2], edit: { 1: wrong1 } }), trusted), 'ATTEST_PCR_MISMATCH', 'pcrs');
    // PCR8 is checked when matched (the document's is all zero: unsigned EIF). With PCR0: a manifest
    // must pin PCR0 or PCR2 (manifest-format.ts), PCR8 alone would admit any image.
    attestError(() => verifyAttestationAgainstManifest(nitro.bytes, manifestFor(nitro.sidecar, { match: [0, 8], edit: { 8: wrong1 } }), trusted), 'ATTEST_PCR_MISMATCH', 'pcrs');
  });

  it('manifest problems are ATTEST_MANIFEST, before the document is even looked at', () => {
    const signed = manifestFor(nitro.sidecar);
    attestError(() => verifyAttestationAgainstManifest(nitro.bytes, signed, { ...trusted, trustedKeys: [stranger.publicKey] }), 'ATTEST_MANIFEST', 'manifest');
    attestError(() => verifyAttestationAgainstManifest(nitro.bytes, signed, { ...trusted, trustedKeys: [] }), 'ATTEST_MANIFEST', 'manifest');
    const tampered = JSON.parse(JSON.stringify(signed)) as SignedManifest;
    tampered.manifest.image.version = '2';
    attestError(() => verifyAttestationAgainstManifest(nitro.bytes, tampered, trusted), 'ATTEST_MANIFEST', 'manifest');
    attestError(() => verifyAttestationAgainstManifest(new Uint8Array([1, 2, 3]), tampered, trusted), 'ATTEST_MANIFEST', 'manifest');
    attestError(() => verifyAttestationAgainstManifest(nitro.bytes, '{"manifest":', trusted), 'ATTEST_MANIFEST', 'manifest');
  });

  it('debug documents and all-zero manifests need allowDebug', () => {
    const zeroManifest = manifestFor(debug.sidecar); // signed with allowDebug
    attestError(() => verifyAttestationAgainstManifest(debug.bytes, zeroManifest, trusted), 'ATTEST_MANIFEST', 'manifest');
    expect(verifyAttestationAgainstManifest(debug.bytes, zeroManifest, { ...trusted, allowDebug: true }).debug).toBe(true);
    // A production manifest never admits a debug enclave, even with allowDebug.
    attestError(() => verifyAttestationAgainstManifest(debug.bytes, manifestFor(nitro.sidecar), trusted), 'ATTEST_DEBUG_MODE', 'debug');
    attestError(() => verifyAttestationAgainstManifest(debug.bytes, manifestFor(nitro.sidecar), { ...trusted, allowDebug: true }), 'ATTEST_PCR_MISMATCH', 'pcrs');
  });

  it('passes nonce, public key, user data and extra PCRs through', () => {
    const signed = manifestFor(nitro.sidecar);
    const ones = new Uint8Array(1024).fill(1);
    const r = verifyAttestationAgainstManifest(nitro.bytes, signed, { ...trusted, nonce: ones, publicKey: ones, userData: ones, expectedPcrs: { 4: pcr(nitro.sidecar, 4) } });
    expect(r.checks).toEqual(['manifest', 'cose', 'payload', 'chain', 'signature', 'validity', 'debug', 'nonce', 'public_key', 'user_data', 'pcrs']);
    attestError(() => verifyAttestationAgainstManifest(nitro.bytes, signed, { ...trusted, nonce: new Uint8Array(1024).fill(2) }), 'ATTEST_NONCE_MISMATCH', 'nonce');
    attestError(() => verifyAttestationAgainstManifest(nitro.bytes, signed, { ...trusted, expectedPcrs: { 4: 'ab'.repeat(48) } }), 'ATTEST_PCR_MISMATCH', 'pcrs');
    const e = attestError(() => verifyAttestationAgainstManifest(nitro.bytes, signed, { ...trusted, expectedPcrs: { 0: 'ab'.repeat(48) } }), 'ATTEST_PCR_MISMATCH', 'pcrs');
    expect(e.message).toMatch(/required to be both/);
  });

  it('known-bad documents fail at the chain even with a matching manifest', () => {
    for (const f of fixtures.filter((x) => x.knownBad)) {
      const doc = parseAttestation(f.bytes).doc;
      const hex = (i: number) => Buffer.from(doc.pcrs.get(i) ?? new Uint8Array(48)).toString('hex');
      const m = createManifest({ image: { name: 'x', version: '1', sourceCommit: '0'.repeat(40), eifSha256: '1'.repeat(64) }, pcrs: { 0: hex(0).padEnd(96, '0'), 1: hex(1).padEnd(96, '0'), 2: hex(2).padEnd(96, '0') }, match: [1, 2] });
      const e = attestError(() => verifyAttestationAgainstManifest(f.bytes, signManifest(m, release.privateKey), { ...trusted, allowDebug: true }), (f.name.includes('mockCA') ? 'ATTEST_UNTRUSTED_ROOT' : 'ATTEST_CHAIN'), 'chain');
      expect(e.message).toMatch(/root/);
    }
  });

  it('a custom root is used only when passed explicitly', () => {
    const mock = fixtures.find((f) => f.name.includes('mockCA'))!;
    const root = trustRoot(parseAttestation(mock.bytes).doc.cabundle[0]!, 'marlin mock root');
    const pcrs = { 0: pcr(mock.sidecar, 0), 1: pcr(mock.sidecar, 1), 2: pcr(mock.sidecar, 2) };
    const m = createManifest({ image: { name: 'mock', version: '1', sourceCommit: '0'.repeat(40), eifSha256: '1'.repeat(64) }, pcrs, match: [1, 2] });
    const r = verifyAttestationAgainstManifest(mock.bytes, signManifest(m, release.privateKey), { ...trusted, root });
    expect(r.root.name).toBe('marlin mock root');
  });
});
