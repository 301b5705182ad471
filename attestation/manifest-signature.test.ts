import { createHash, generateKeyPairSync, verify as nodeVerify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AttestationError } from './errors.js';
import { createManifest, type PcrManifest } from './manifest-format.js';
import {
  manifestKeyId,
  parseSignedManifest,
  signManifest,
  verifySignedManifest,
  verifySignedManifestDetailed,
  type SignedManifest,
} from './manifest-signature.js';

const P0 = 'e72a46ca80a260fb044a125442f0c7e331813bcbaf9724d9f3857758992766f2d65710a27aa94ae3949dd54e7c9fe86a';
const P1 = '0343b056cd8485ca7890ddd833476d78460aed2aa161548e4e26bedf321726696257d623e8805f3f605946b3d8b0c6aa';
const P2 = 'd5dcbdea0aa39c802f9d55ced2ea6e4d74ecec5f08fe40c508882639c9090642669106a062a3e24ee2805a3024b9b75c';

const manifest = createManifest({
  image: { name: 'enclave-signer', version: '0.1.0', sourceCommit: 'a'.repeat(40), eifSha256: 'b'.repeat(64) },
  pcrs: { 0: P0, 1: P1, 2: P2, 8: '0'.repeat(96) },
  match: [0, 1, 2, 8],
  buildInputs: { lockfileSha256: 'c'.repeat(64), blobs: { init: 'd'.repeat(64) }, sourceDateEpoch: 1, other: { note: 'x' } },
  createdAt: '2024-01-01T00:00:00.000Z',
});

const keys = {
  ES384: generateKeyPairSync('ec', { namedCurve: 'P-384' }),
  Ed25519: generateKeyPairSync('ed25519'),
};
const stranger = generateKeyPairSync('ed25519');

function manifestError(fn: () => unknown, msg?: RegExp): AttestationError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AttestationError);
    const ae = e as AttestationError;
    expect(ae.code, ae.message).toBe('ATTEST_MANIFEST');
    expect(ae.check).toBe('manifest');
    if (msg) expect(ae.message).toMatch(msg);
    return ae;
  }
  throw new Error('expected ATTEST_MANIFEST, verification passed');
}

/** Every leaf path of a JSON value, e.g. ['manifest', 'pcrs', '0']. */
function leafPaths(v: unknown, prefix: string[] = []): string[][] {
  if (v !== null && typeof v === 'object') {
    return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => leafPaths(x, [...prefix, k]));
  }
  return [prefix];
}

/** Changes a leaf to a *different, still well-formed* value, so only the signature can catch it. */
function tweak(v: unknown): unknown {
  if (typeof v === 'number') return v + 1;
  if (typeof v !== 'string') throw new Error('unexpected leaf');
  if (/^[0-9a-f]+$/.test(v)) return v.slice(0, -1) + (v.endsWith('1') ? '2' : '1');
  if (/^\d{4}-.*Z$/.test(v)) return v.replace('2024', '2025');
  return `${v}x`;
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

function setPath(obj: unknown, path: string[], f: (v: unknown) => unknown): void {
  let o = obj as Record<string, unknown>;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
  const last = path[path.length - 1]!;
  o[last] = f(o[last]);
}

/** An auditor's independent canonicalization: recursively sorted keys, JSON.stringify, UTF-8. */
function auditorCanonical(v: unknown): Buffer {
  const sort = (x: unknown): unknown =>
    Array.isArray(x) ? x.map(sort) : x !== null && typeof x === 'object' ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, sort((x as Record<string, unknown>)[k])])) : x;
  return Buffer.from(JSON.stringify(sort(v)), 'utf8');
}

for (const alg of ['ES384', 'Ed25519'] as const) {
  const { privateKey, publicKey } = keys[alg];
  const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;

  describe(`${alg} signed manifests`, () => {
    const signed = signManifest(manifest, privateKey);

    it('signs with the right algorithm, keyId and key', () => {
      expect(signed.signature.alg).toBe(alg);
      const der = publicKey.export({ type: 'spki', format: 'der' });
      expect(signed.signature.keyId).toBe(createHash('sha256').update(der).digest('hex'));
      expect(signed.signature.keyId).toBe(manifestKeyId(publicKey));
      expect(manifestKeyId(privateKey)).toBe(manifestKeyId(publicKey));
      expect(signed.signature.publicKey).toBe(der.toString('base64'));
      expect(Buffer.from(signed.signature.value, 'base64').length).toBe(alg === 'ES384' ? 96 : 64);
    });

    it('signature verifies independently over sorted-key JSON (what docs/manifest.md tells auditors)', () => {
      const sig = Buffer.from(signed.signature.value, 'base64');
      const data = auditorCanonical(signed.manifest);
      const ok = alg === 'ES384' ? nodeVerify('sha384', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig) : nodeVerify(null, data, publicKey, sig);
      expect(ok).toBe(true);
    });

    it('verifies against a trusted KeyObject, PEM text, keyId, or the private key', () => {
      for (const trusted of [publicKey, pem, signed.signature.keyId, signed.signature.keyId.toUpperCase(), privateKey]) {
        expect(verifySignedManifest(signed, [stranger.publicKey, trusted])).toEqual(manifest);
      }
      const d = verifySignedManifestDetailed(signed, [publicKey]);
      expect(d).toEqual({ manifest, keyId: signed.signature.keyId, alg });
    });

    it('verifies from JSON text and bytes, whatever the formatting', () => {
      const text = JSON.stringify(signed, null, 4);
      expect(verifySignedManifest(text, [publicKey])).toEqual(manifest);
      expect(verifySignedManifest(new TextEncoder().encode(JSON.stringify(signed)), [publicKey])).toEqual(manifest);
    });

    const paths = leafPaths(signed.manifest).map((p) => ['manifest', ...p]);
    it('covers every manifest field', () => {
      expect(paths.length).toBeGreaterThanOrEqual(20);
    });
    for (const path of paths) {
      it(`detects tampering with ${path.join('.')}`, () => {
        const t = clone(signed);
        setPath(t, path, tweak);
        expect(t).not.toEqual(signed);
        manifestError(() => verifySignedManifest(t, [publicKey]));
      });
    }

    it('detects a tampered signature value, alg, keyId and public key', () => {
      const flip = clone(signed);
      const sig = Buffer.from(flip.signature.value, 'base64');
      sig[10]! ^= 1;
      flip.signature.value = sig.toString('base64');
      manifestError(() => verifySignedManifest(flip, [publicKey]), /does not verify/);

      const otherAlg = clone(signed);
      otherAlg.signature.alg = alg === 'ES384' ? 'Ed25519' : 'ES384';
      manifestError(() => verifySignedManifest(otherAlg, [publicKey]));

      const otherId = clone(signed);
      otherId.signature.keyId = manifestKeyId(stranger.publicKey);
      manifestError(() => verifySignedManifest(otherId, [publicKey, stranger.publicKey]), /keyId does not match/);
    });

    it('rejects an untrusted signer, even when the file carries its key', () => {
      manifestError(() => verifySignedManifest(signed, [stranger.publicKey]), /not a trusted key/);
      // An attacker re-signs a changed manifest with their own key and embeds it.
      const evil = signManifest(createManifest({ ...manifest, pcrs: { 0: P1, 1: P1, 2: P2 }, match: [0, 1, 2], createdAt: manifest.createdAt }), stranger.privateKey);
      manifestError(() => verifySignedManifest(evil, [publicKey]), /not a trusted key/);
      // Swapping in the trusted key's keyId/publicKey leaves the attacker's signature, which fails.
      const spliced: SignedManifest = { manifest: evil.manifest, signature: { ...evil.signature, keyId: signed.signature.keyId, publicKey: signed.signature.publicKey, alg } };
      if (alg === 'Ed25519') manifestError(() => verifySignedManifest(spliced, [publicKey]), /does not verify/);
      else manifestError(() => verifySignedManifest(spliced, [publicKey]));
    });

    it('rejects when no keys are trusted', () => {
      const e = manifestError(() => verifySignedManifest(signed, []), /no trusted manifest keys/);
      expect(e.hint).toBeDefined();
    });

    it('rejects unknown and missing fields in the envelope', () => {
      manifestError(() => verifySignedManifest({ ...clone(signed), note: 'hi' }, [publicKey]), /unknown field "note"/);
      manifestError(() => verifySignedManifest({ ...clone(signed), signature: { ...signed.signature, kid: 'x' } }, [publicKey]), /signature: unknown field "kid"/);
      manifestError(() => verifySignedManifest({ manifest: signed.manifest }, [publicKey]), /missing field "signature"/);
      const withExtra = clone(signed) as unknown as { manifest: Record<string, unknown> };
      withExtra.manifest.comment = 'looks harmless';
      manifestError(() => verifySignedManifest(withExtra, [publicKey]), /unknown field "comment"/);
    });

    it('rejects duplicate keys and non-canonical base64 in the JSON text', () => {
      const text = JSON.stringify(signed);
      const dup = text.replace('"hashAlgorithm":"SHA384"', '"hashAlgorithm":"SHA384","hashAlgorithm":"SHA384"');
      expect(dup).not.toBe(text);
      manifestError(() => verifySignedManifest(dup, [publicKey]), /duplicate key "hashAlgorithm"/);
      const b64 = clone(signed);
      b64.signature.value = b64.signature.value.replace(/=+$/, '');
      if (b64.signature.value !== signed.signature.value) manifestError(() => verifySignedManifest(b64, [publicKey]), /base64/);
      const url = clone(signed);
      url.signature.publicKey = url.signature.publicKey.replace(/\+/g, '-').replace(/\//g, '_') + '!';
      manifestError(() => verifySignedManifest(url, [publicKey]), /base64/);
    });

    it('rejects garbage trusted keys', () => {
      manifestError(() => verifySignedManifest(signed, ['not a key']), /neither PEM text nor a 64-hex keyId/);
      manifestError(() => verifySignedManifest(signed, ['-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----']), /not a readable PEM/);
    });
  });
}

describe('signing policy', () => {
  it('refuses unsupported key types', () => {
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    manifestError(() => signManifest(manifest, p256.privateKey), /EC key on prime256v1/);
    manifestError(() => signManifest(manifest, rsa.privateKey), /rsa key/);
    manifestError(() => signManifest(manifest, keys.Ed25519.publicKey), /needs a private key/);
  });

  it('refuses to sign an invalid or debug manifest, unless debug is allowed', () => {
    const bad = { ...clone(manifest), match: [] } as unknown as PcrManifest;
    manifestError(() => signManifest(bad, keys.ES384.privateKey), /at least one PCR/);
    const z = '0'.repeat(96);
    const debug = createManifest({ ...manifest, pcrs: { 0: z, 1: z, 2: z }, match: [0, 1, 2] }, { allowDebug: true });
    manifestError(() => signManifest(debug, keys.ES384.privateKey), /debug-mode/);
    const s = signManifest(debug, keys.ES384.privateKey, { allowDebug: true });
    manifestError(() => verifySignedManifest(s, [keys.ES384.publicKey]), /debug-mode/);
    expect(verifySignedManifest(s, [keys.ES384.publicKey], { allowDebug: true }).pcrs['0']).toBe(z);
  });

  it('parseSignedManifest reads structure without claiming trust', () => {
    const s = signManifest(manifest, keys.Ed25519.privateKey);
    expect(parseSignedManifest(JSON.stringify(s)).signature.keyId).toBe(manifestKeyId(keys.Ed25519.publicKey));
    manifestError(() => parseSignedManifest('x'.repeat(70_000)), /larger than/);
  });

  it('a P-384 public key cannot pass as Ed25519 and vice versa', () => {
    const s = signManifest(manifest, keys.ES384.privateKey);
    const der = keys.Ed25519.publicKey.export({ type: 'spki', format: 'der' });
    const swapped = clone(s);
    swapped.signature.publicKey = der.toString('base64');
    swapped.signature.keyId = manifestKeyId(keys.Ed25519.publicKey);
    manifestError(() => verifySignedManifest(swapped, [keys.Ed25519.publicKey]), /signature.alg is ES384 but the embedded key is Ed25519/);
  });
});
