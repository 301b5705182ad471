/**
 * The client side of request signing: what `enclave-signer call`/`approve`
 * (and later the ethers/viem adapters) use to sign requests and approvals
 * with a principal's private key. Runs on the caller's machine, never in the
 * enclave; the bytes it signs are defined in ./request.ts.
 */
import { createHash, createPrivateKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { AuthError } from './errors.js';
import {
  approvalMessage,
  requestDigest,
  requestSignatureMessage,
  toBase64Url,
  SIGNER_AUTH_VERSION,
  type ApprovalDecision,
  type SignerAuth,
  type WebAuthnAssertion,
} from './request.js';
import { deriveSessionKey, newX25519KeyPair, OPEN_SESSION_METHOD, parseOpenSessionAnswer } from './session.js';

export type PrincipalAlg = 'ed25519' | 'ecdsa-p256';

/** Default lifetime of a signed request: long enough for a slow link, short enough to keep replays bounded. */
export const DEFAULT_REQUEST_TTL_SECONDS = 60;

export interface PrincipalKey {
  alg: PrincipalAlg;
  privateKey: KeyObject;
}

export function principalAlgOf(key: KeyObject): PrincipalAlg | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ecdsa-p256';
  return undefined;
}

/** Reads a PKCS#8 (or SEC1 for P-256) PEM private key; only Ed25519 and P-256 are principal keys. */
export function loadPrincipalKey(pem: string | Uint8Array): PrincipalKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: typeof pem === 'string' ? pem : Buffer.from(pem), format: 'pem' });
  } catch (e) {
    throw new AuthError('AUTH_MALFORMED', 'not a PEM private key', { cause: e, hint: 'create one with: enclave-signer principal keygen --alg ed25519 --out key.pem' });
  }
  const alg = principalAlgOf(privateKey);
  if (!alg) throw new AuthError('AUTH_MALFORMED', 'a principal key must be Ed25519 or ECDSA P-256');
  return { alg, privateKey };
}

/** Signs message bytes as the verifier expects for the key's algorithm (Ed25519 raw; P-256 SHA-256 + DER). */
export function signMessage(key: PrincipalKey, message: Uint8Array): Uint8Array {
  return new Uint8Array(key.alg === 'ed25519' ? sign(null, message, key.privateKey) : sign('sha256', message, { key: key.privateKey, dsaEncoding: 'der' }));
}

export interface WebAuthnOptions {
  rpId?: string;
  origin?: string;
}

/**
 * What a WebAuthn authenticator returns for `navigator.credentials.get` with
 * challenge = SHA-256(message): here produced with a P-256 key in software, so
 * tests and headless tools speak the same shape as a security key would.
 */
export function webauthnSign(key: PrincipalKey, message: Uint8Array, opts: WebAuthnOptions = {}): { signature: string; webauthn: WebAuthnAssertion } {
  if (key.alg !== 'ecdsa-p256') throw new AuthError('AUTH_MALFORMED', 'WebAuthn assertions use ECDSA P-256 keys');
  const challenge = toBase64Url(createHash('sha256').update(message).digest());
  const clientData = Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge, origin: opts.origin ?? 'https://enclave-signer.invalid', crossOrigin: false }), 'utf8');
  const rpIdHash = createHash('sha256').update(opts.rpId ?? 'enclave-signer.invalid').digest();
  // flags: UP (0x01) | UV (0x04); signCount 0 (software authenticators do not count).
  const authData = Buffer.concat([rpIdHash, Buffer.from([0x05, 0, 0, 0, 0])]);
  const signed = Buffer.concat([authData, createHash('sha256').update(clientData).digest()]);
  const sig = sign('sha256', signed, { key: key.privateKey, dsaEncoding: 'der' });
  return { signature: toBase64Url(sig), webauthn: { authenticatorData: toBase64Url(authData), clientDataJSON: toBase64Url(clientData) } };
}

export function newRequestId(): string {
  return toBase64Url(randomBytes(16));
}

export interface SignRequestInput {
  key: PrincipalKey;
  principal: string;
  /** The enclave's policy hash (signer_status policy.hash). */
  audience: string;
  method: string;
  params?: unknown;
  requestId?: string;
  /** Unix seconds; default now + ttlSeconds. */
  expiresAt?: number;
  ttlSeconds?: number;
  /** Unix seconds; default the local clock. */
  now?: number;
  webauthn?: WebAuthnOptions | false;
}

/** Signs one JSON-RPC request; returns the `signer_auth` member and the request digest it covers. */
export function signRequest(input: SignRequestInput): { auth: SignerAuth; requestDigest: string } {
  const digest = requestDigest(input.audience, input.method, input.params);
  const now = input.now ?? Math.floor(Date.now() / 1000);
  const expiresAt = input.expiresAt ?? now + (input.ttlSeconds ?? DEFAULT_REQUEST_TTL_SECONDS);
  const requestId = input.requestId ?? newRequestId();
  const message = requestSignatureMessage({ requestDigest: digest, principal: input.principal, requestId, expiresAt });
  const auth: SignerAuth = { v: SIGNER_AUTH_VERSION, principal: input.principal, requestId, expiresAt, signature: '' };
  if (input.webauthn) {
    const w = webauthnSign(input.key, message, input.webauthn);
    auth.signature = w.signature;
    auth.webauthn = w.webauthn;
  } else {
    auth.signature = toBase64Url(signMessage(input.key, message));
  }
  return { auth, requestDigest: digest };
}

/**
 * Signs an approval (or rejection) of a pending approval's request digest, naming the requester
 * and rule the approver was shown: the enclave refuses the signature if either is not the
 * approval's own (a host showing its own request as another principal's).
 */
export function signApproval(input: { key: PrincipalKey; approver: string; approvalId: string; requestDigest: string; requester: string; rule: string; decision: ApprovalDecision; webauthn?: WebAuthnOptions | false }): {
  signature: string;
  webauthn?: WebAuthnAssertion;
} {
  const message = approvalMessage({ approvalId: input.approvalId, approver: input.approver, decision: input.decision, requestDigest: input.requestDigest, requester: input.requester, rule: input.rule });
  if (input.webauthn) return webauthnSign(input.key, message, input.webauthn);
  return { signature: toBase64Url(signMessage(input.key, message)) };
}

/**
 * The caller's half of opening a session (./session.ts): a fresh X25519 key pair, the
 * signer_openSession params and their signed `signer_auth`, and `finish`, which reads the
 * enclave's answer and derives the session key (the caller owns and wipes it). A re-signed
 * opening (AUTH_BEFORE_RESTART) keeps the same params, so `finish` still applies.
 */
export function beginSession(input: { key: PrincipalKey; principal: string; audience: string; ttlSeconds?: number }): {
  params: { clientPublicKey: string; ttlSeconds?: number };
  auth: SignerAuth;
  finish(answer: unknown): { session: string; key: Uint8Array; expiresAt: number };
} {
  const eph = newX25519KeyPair();
  const params = { clientPublicKey: toBase64Url(eph.publicKey), ...(input.ttlSeconds !== undefined ? { ttlSeconds: input.ttlSeconds } : {}) };
  const signed = signRequest({ key: input.key, principal: input.principal, audience: input.audience, method: OPEN_SESSION_METHOD, params });
  return {
    params,
    auth: signed.auth,
    finish(answer) {
      const a = parseOpenSessionAnswer(answer, input.principal);
      const key = deriveSessionKey({
        privateKey: eph.privateKey,
        peerPublicKey: a.enclavePublicKey,
        openRequestDigest: signed.requestDigest,
        principal: input.principal,
        session: a.session,
        clientPublicKey: eph.publicKey,
        enclavePublicKey: a.enclavePublicKey,
      });
      return { session: a.session, key, expiresAt: a.expiresAt };
    },
  };
}
