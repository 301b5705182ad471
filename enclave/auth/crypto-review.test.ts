/**
 * Review of the bytes and cryptography of signed requests, approvals and their verification
 * (enclave/auth/principals.ts, verify-request.ts, approvals.ts): real signatures made with
 * node:crypto, altered the way a hostile host (or a careless policy author) could.
 */
import { createHash, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import { signApproval, signRequest, type PrincipalKey } from '../../common/auth/client-signer.js';
import { requestDigest, requestSignatureMessage, toBase64Url } from '../../common/auth/request.js';
import { ApprovalBook } from './approvals.js';
import { isUsableEd25519Key, PrincipalRegistry } from './principals.js';
import { AUDIENCE, errorCode, p256KeyInTwoForms, testPrincipals } from './test-helpers.js';
import { RequestVerifier } from './verify-request.js';

const { keys, registry, document } = testPrincipals();
const T0 = 1_800_000_000;
const METHOD = 'eth_signTransaction';
const TX = [{ from: '0x' + '11'.repeat(20), to: '0x' + '22'.repeat(20), value: '0x1', nonce: '0x0', gas: '0x5208', chainId: '0x1' }];
const DIGEST = requestDigest(AUDIENCE, METHOD, TX);
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const ED25519_P = (1n << 255n) - 19n;

const verifier = (principals = registry) => new RequestVerifier({ principals, audience: AUDIENCE, now: () => T0 });
const signed = (p: 'backend' | 'alice' | 'carol', o: Partial<Parameters<typeof signRequest>[0]> = {}) =>
  signRequest({ key: keys[p], principal: p, audience: AUDIENCE, method: METHOD, params: TX, now: T0, ...o }).auth;

function edPublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: toBase64Url(raw) }, format: 'jwk' });
}
function le(n: bigint): Uint8Array {
  const b = new Uint8Array(32);
  for (let i = 0; i < 32; i++, n >>= 8n) b[i] = Number(n & 0xffn);
  return b;
}

// ── DER helpers (P-256) ─────────────────────────────────────────────────────
function derInt(n: bigint): Buffer {
  let b = Buffer.from(n.toString(16).padStart(64, '0'), 'hex');
  while (b.length > 1 && b[0] === 0 && !(b[1]! & 0x80)) b = b.subarray(1);
  return b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b;
}
function der(r: bigint, s: bigint): Buffer {
  const R = derInt(r);
  const S = derInt(s);
  const body = Buffer.concat([Buffer.from([2, R.length]), R, Buffer.from([2, S.length]), S]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}
function rs(sigDer: Uint8Array): { r: bigint; s: bigint } {
  const b = Buffer.from(sigDer);
  const rl = b[3]!;
  const r = BigInt('0x' + b.subarray(4, 4 + rl).toString('hex'));
  const sl = b[5 + rl]!;
  const s = BigInt('0x' + b.subarray(6 + rl, 6 + rl + sl).toString('hex'));
  return { r, s };
}

describe('Ed25519 principal keys: node:crypto verifies against small-order points', () => {
  // The eight small-order points, from @noble/curves (a test-only import).
  const order8 = ed25519.Point.fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a');
  const torsion: Uint8Array[] = [];
  for (let i = 0, q = ed25519.Point.ZERO; i < 8; i++, q = q.add(order8)) torsion.push(q.toBytes());
  // With either x sign bit, and the two non-canonical encodings (y = p, y = p + 1) node also decodes.
  const smallOrderEncodings = [
    ...torsion,
    ...torsion.map((b) => Uint8Array.from(b, (x, i) => (i === 31 ? x ^ 0x80 : x))),
    le(ED25519_P),
    le(ED25519_P + 1n),
  ];

  it('the threat is real: under the identity key, R = identity and S = 0 verifies for any message', () => {
    const identity = torsion[0]!;
    const k = edPublicKey(identity);
    const forged = Buffer.concat([identity, Buffer.alloc(32)]);
    expect(verify(null, Buffer.from('any message'), k, forged)).toBe(true);
    expect(verify(null, Buffer.from('another one'), k, forged)).toBe(true);
  });

  it('a policy principal with a small-order (or non-canonically encoded) Ed25519 key is refused, whichever one', () => {
    let accepted = 0;
    for (const raw of smallOrderEncodings) {
      let key: KeyObject;
      try {
        key = edPublicKey(raw);
      } catch {
        continue; // node refused to decode it: nothing to sign for
      }
      accepted++;
      const pem = key.export({ type: 'spki', format: 'pem' }) as string;
      expect(errorCode(() => new PrincipalRegistry({ mallory: { alg: 'ed25519', publicKey: pem } })), toBase64Url(raw)).toBe('AUTH_MALFORMED');
    }
    expect(accepted).toBeGreaterThan(8); // node decodes (nearly) all of them, hence the check
  });

  it('so no request signed "by" the all-zero placeholder key authenticates', () => {
    const zero = new Uint8Array(32); // a plausible placeholder; y = 0 is a point of order 4
    const pem = edPublicKey(zero).export({ type: 'spki', format: 'pem' }) as string;
    // Before the fix the registry took it, and a forged signature (R = a small-order point, S = 0)
    // authenticated as "mallory" for most messages.
    let v: RequestVerifier | undefined;
    try {
      v = verifier(new PrincipalRegistry({ ...document, mallory: { alg: 'ed25519', publicKey: pem } }));
    } catch (e) {
      expect((e as { code?: string }).code).toBe('AUTH_MALFORMED');
    }
    if (v === undefined) return;
    let authenticated = 0;
    for (let i = 0; i < 16; i++) {
      const auth = { v: 1, principal: 'mallory', requestId: `forged-request-${i}`, expiresAt: T0 + 60, signature: '' };
      const msg = requestSignatureMessage({ requestDigest: DIGEST, principal: 'mallory', requestId: auth.requestId, expiresAt: auth.expiresAt });
      for (const R of torsion) {
        const sig = Buffer.concat([R, Buffer.alloc(32)]);
        if (verify(null, msg, edPublicKey(zero), sig)) {
          auth.signature = toBase64Url(sig);
          break;
        }
      }
      if (auth.signature && errorCode(() => v.verify(METHOD, TX, auth)) === undefined) authenticated++;
    }
    expect(authenticated).toBe(0);
  });

  it('the check agrees with @noble/curves: real keys pass, the eight small-order points do not', () => {
    for (let i = 0; i < 64; i++) expect(isUsableEd25519Key(generateKeyPairSync('ed25519').publicKey)).toBe(true);
    for (const raw of torsion) expect(ed25519.Point.fromBytes(raw).isSmallOrder()).toBe(true);
    for (const raw of torsion) expect(isUsableEd25519Key(edPublicKey(raw))).toBe(false);
  });
});

describe('a key names one principal, in any encoding', () => {
  it('a P-256 key declared once uncompressed and once compressed (two SPKI forms of one key) is refused', () => {
    const { uncompressed: publicKey, compressed: other } = p256KeyInTwoForms();
    // The two SPKI forms differ byte for byte (what the policy validator compares) ...
    expect(other.export({ type: 'spki', format: 'der' }).equals(publicKey.export({ type: 'spki', format: 'der' }))).toBe(false);
    // ... and are one key: its holder would approve twice towards a threshold, or its own request.
    expect(other.equals(publicKey)).toBe(true);
    expect(errorCode(() => new PrincipalRegistry(new Map([
      ['alice', { alg: 'ecdsa-p256' as const, publicKey }],
      ['alice-laptop', { alg: 'ecdsa-p256' as const, publicKey: other }],
    ])))).toBe('AUTH_MALFORMED');
  });
});

describe('ECDSA P-256 signatures: malleability and DER strictness', () => {
  it('a high-s twin of a request signature verifies (node does not enforce low-s), and is refused as a replay: the cache keys on the request id', () => {
    const auth = signed('alice');
    const { r, s } = rs(Buffer.from(auth.signature, 'base64url'));
    const twin = { ...auth, signature: toBase64Url(der(r, P256_N - s)) };
    const v = verifier();
    expect(v.verify(METHOD, TX, auth).principal).toBe('alice');
    expect(errorCode(() => v.verify(METHOD, TX, twin))).toBe('AUTH_REPLAYED');
    // In a fresh enclave the twin alone authenticates: it is the same request, not another.
    expect(verifier().verify(METHOD, TX, twin).principal).toBe('alice');
  });

  it('a twin of an approval counts once (approvals are counted by name)', () => {
    const book = new ApprovalBook({ principals: registry, now: () => T0, newId: () => 'apr_twin' });
    const a = book.authorize({ requestDigest: DIGEST, rule: 'treasury', threshold: 2, approvers: ['alice', 'bob', 'carol'], requester: 'backend', ttlSeconds: 600 });
    const sig = signApproval({ key: keys.alice, approver: 'alice', approvalId: a.approvalId, requestDigest: DIGEST, requester: 'backend', rule: 'treasury', decision: 'approve' }).signature;
    const { r, s } = rs(Buffer.from(sig, 'base64url'));
    book.approve(a.approvalId, 'alice', sig);
    expect(book.approve(a.approvalId, 'alice', toBase64Url(der(r, P256_N - s))).approvedBy).toEqual(['alice']);
    expect(book.status(a.approvalId)).toBe('pending');
  });

  it('non-DER forms of a valid signature are refused: trailing byte, long-form length, padded INTEGER, raw r‖s, s + n', () => {
    const auth = signed('alice');
    const sigDer = Buffer.from(auth.signature, 'base64url');
    const { r, s } = rs(sigDer);
    const R = derInt(r);
    const S = derInt(s);
    const body = Buffer.concat([Buffer.from([2, R.length]), R, Buffer.from([2, S.length]), S]);
    const padded = Buffer.concat([Buffer.from([2, R.length + 1, 0]), R, Buffer.from([2, S.length]), S]);
    const raw = Buffer.concat([Buffer.from(r.toString(16).padStart(64, '0'), 'hex'), Buffer.from(s.toString(16).padStart(64, '0'), 'hex')]);
    const variants = [
      Buffer.concat([sigDer, Buffer.from([0])]),
      Buffer.concat([Buffer.from([0x30, 0x81, body.length]), body]),
      Buffer.concat([Buffer.from([0x30, padded.length]), padded]),
      raw,
      der(r, s + P256_N),
    ];
    for (const bad of variants) expect(errorCode(() => verifier().verify(METHOD, TX, { ...auth, signature: toBase64Url(bad) })), bad.toString('hex')).toBe('AUTH_BAD_SIGNATURE');
  });
});

describe('Ed25519 signatures: non-canonical S and wrong lengths', () => {
  it('S + L (same signature, non-canonical scalar) and 63/65-byte signatures are refused', () => {
    const L = (1n << 252n) + 27742317777372353535851937790883648493n;
    const auth = signed('backend');
    const sig = Buffer.from(auth.signature, 'base64url');
    let S = 0n;
    for (let i = 63; i >= 32; i--) S = (S << 8n) | BigInt(sig[i]!);
    const variants = [Buffer.concat([sig.subarray(0, 32), le(S + L)]), sig.subarray(0, 63), Buffer.concat([sig, Buffer.from([0])])];
    for (const bad of variants) expect(errorCode(() => verifier().verify(METHOD, TX, { ...auth, signature: toBase64Url(bad) }))).toBe('AUTH_BAD_SIGNATURE');
  });
});

describe('domain separation between request signatures and approvals', () => {
  it('alice’s approval of a digest is not a request signature by alice, nor the reverse (raw and WebAuthn)', () => {
    for (const webauthn of [false, {}] as const) {
      const auth = signed('alice', { requestId: 'apr_same_id_1234', webauthn });
      // An approval whose id is the request id, for the same digest: every member the two share.
      const appr = signApproval({ key: keys.alice, approver: 'alice', approvalId: 'apr_same_id_1234', requestDigest: DIGEST, requester: 'alice', rule: 'treasury', decision: 'approve', webauthn });
      expect(errorCode(() => verifier().verify(METHOD, TX, { ...auth, signature: appr.signature, ...(appr.webauthn ? { webauthn: appr.webauthn } : {}) }))).toBe('AUTH_BAD_SIGNATURE');
      const book = new ApprovalBook({ principals: registry, now: () => T0, newId: () => 'apr_same_id_1234' });
      book.authorize({ requestDigest: DIGEST, rule: 'treasury', threshold: 1, approvers: ['alice', 'bob'], requester: 'backend', ttlSeconds: 600 });
      expect(errorCode(() => book.approve('apr_same_id_1234', 'alice', auth.signature, auth.webauthn))).toBe('APPROVAL_BAD_SIGNATURE');
    }
  });
});

describe('WebAuthn assertions, each property alone (re-signed, so only that property differs)', () => {
  const alice = keys.alice as PrincipalKey;
  function assertion(message: Uint8Array, o: { type?: string; flags?: number; authLen?: number; challenge?: string } = {}) {
    const challenge = o.challenge ?? toBase64Url(createHash('sha256').update(message).digest());
    const clientData = Buffer.from(JSON.stringify({ type: o.type ?? 'webauthn.get', challenge, origin: 'https://custody.example' }));
    const authData = Buffer.concat([createHash('sha256').update('custody.example').digest(), Buffer.from([o.flags ?? 0x01, 0, 0, 0, 1])]).subarray(0, o.authLen ?? 37);
    const sig = sign('sha256', Buffer.concat([authData, createHash('sha256').update(clientData).digest()]), { key: alice.privateKey, dsaEncoding: 'der' });
    return { signature: toBase64Url(sig), webauthn: { authenticatorData: toBase64Url(authData), clientDataJSON: toBase64Url(clientData) } };
  }
  const base = { v: 1, principal: 'alice', requestId: 'webauthn-review-1', expiresAt: T0 + 60 };
  const msg = requestSignatureMessage({ requestDigest: DIGEST, principal: 'alice', requestId: base.requestId, expiresAt: base.expiresAt });

  it('a well-formed assertion with user presence authenticates (the baseline)', () => {
    expect(verifier().verify(METHOD, TX, { ...base, ...assertion(msg) }).principal).toBe('alice');
  });

  it('refused: type webauthn.create, user presence unset (UV alone), authenticatorData shorter than 37 bytes, a padded challenge', () => {
    const padded = toBase64Url(createHash('sha256').update(msg).digest()) + '=';
    for (const a of [assertion(msg, { type: 'webauthn.create' }), assertion(msg, { flags: 0x04 }), assertion(msg, { authLen: 36 }), assertion(msg, { challenge: padded })]) {
      expect(errorCode(() => verifier().verify(METHOD, TX, { ...base, ...a }))).toBe('AUTH_BAD_SIGNATURE');
    }
  });
});
