/**
 * The signed-request wire format (issue 9 §4), shared by the client that signs
 * and the enclave that verifies. Exact bytes, so any language can produce them:
 *
 *   canonical(v) = RFC 8785 / JCS canonical JSON of v, UTF-8 (./canonical.ts: sorted keys,
 *                  no whitespace, numbers as ECMAScript Number#toString, -0 as 0)
 *
 *   requestDigest = SHA-256( canonical({
 *       "domain":   "enclave-signer/request/v1",
 *       "audience": <policy hash: 64 lowercase hex, signer_status policy.hash>,
 *       "method":   <JSON-RPC method name>,
 *       "params":   <JSON-RPC params exactly as sent; null when absent> }) )
 *     → written as 64 lowercase hex. This is "the request" that approvals
 *       (§5) refer to: it names the operation and nothing about who or when,
 *       so resubmitting the identical request after approval has the same digest.
 *
 *   request signature message = canonical({
 *       "domain":        "enclave-signer/request-signature/v1",
 *       "expiresAt":     <integer, Unix seconds>,
 *       "principal":     <principal name>,
 *       "requestDigest": <hex as above>,
 *       "requestId":     <8..128 chars of [A-Za-z0-9_-]> })
 *
 *   approval message = canonical({
 *       "domain":        "enclave-signer/approval/v2",
 *       "approvalId":    <id the enclave gave the pending approval>,
 *       "approver":      <principal name>,
 *       "decision":      "approve" | "reject",
 *       "requestDigest": <hex>,
 *       "requester":     <the principal who asked, as the approval view shows it>,
 *       "rule":          <the policy rule that asked for approvals> })
 *     The v1 message (domain "enclave-signer/approval/v1", without requester and rule) is
 *     still accepted from approvers whose tools predate v2; it does not cover who asked, so a
 *     host can show its own request as another principal's (docs/principals.md).
 *
 * Every message carries its own domain tag, so a signature made for one
 * purpose is never valid for another (an approval can never be replayed as
 * a request signature, nor a rejection as an approval). The audience binds a
 * request to the policy it was written for: an enclave running another
 * policy computes another digest and refuses the signature.
 *
 * Signatures (base64url, no padding):
 *   ed25519     Ed25519 over the message bytes (64 bytes);
 *   ecdsa-p256  ECDSA P-256 with SHA-256 over the message bytes, DER-encoded;
 *   WebAuthn    (ecdsa-p256 principals only) a `webauthn` member carries
 *               authenticatorData and clientDataJSON; clientDataJSON.challenge is
 *               base64url(SHA-256(message)), type "webauthn.get", the user-present
 *               flag must be set, and the DER signature covers
 *               authenticatorData || SHA-256(clientDataJSON) as WebAuthn defines.
 *
 * On the wire the envelope is a top-level `signer_auth` member of the
 * JSON-RPC request object (docs/json-rpc.md, docs/principals.md).
 */
import { hash } from 'node:crypto';
import { canonicalRequestBytes, canonicalRequestJson } from './canonical.js';
import { AuthError } from './errors.js';

export const REQUEST_DOMAIN = 'enclave-signer/request/v1';
export const REQUEST_SIGNATURE_DOMAIN = 'enclave-signer/request-signature/v1';
export const APPROVAL_DOMAIN = 'enclave-signer/approval/v2';
/** The approval message before it covered the requester and the rule (accepted, not signed by this release). */
export const APPROVAL_DOMAIN_V1 = 'enclave-signer/approval/v1';
export const SIGNER_AUTH_MEMBER = 'signer_auth';
export const SIGNER_AUTH_VERSION = 1;

export const REQUEST_ID_RE = /^[A-Za-z0-9_-]{8,128}$/;
export const PRINCIPAL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;
const B64URL_RE = /^[A-Za-z0-9_-]*$/;

export type ApprovalDecision = 'approve' | 'reject';

export interface WebAuthnAssertion {
  /** base64url authenticatorData (≥ 37 bytes: rpIdHash, flags, signCount). */
  authenticatorData: string;
  /** base64url of the clientDataJSON bytes exactly as the authenticator produced them. */
  clientDataJSON: string;
}

/** The `signer_auth` member of a signed JSON-RPC request. */
export interface SignerAuth {
  v: 1;
  principal: string;
  requestId: string;
  expiresAt: number;
  signature: string;
  webauthn?: WebAuthnAssertion;
}

const ENVELOPE_HINT = 'see docs/principals.md for the envelope';

/** AUTH_MALFORMED about a `signer_auth` (either form: the session form passes its own hint). */
function malformed(message: string, hint = ENVELOPE_HINT): AuthError {
  return new AuthError('AUTH_MALFORMED', `malformed signer_auth: ${message}`, { hint });
}
export { malformed as malformedAuth };

/** SHA-256 of the UTF-8 bytes of `text`, hex (one-shot: the hash encodes the string itself, no hash object). */
function sha256HexOfText(text: string): string {
  return hash('sha256', text, 'hex');
}

function canonical(v: unknown, _what: string): Uint8Array {
  return canonicalRequestBytes(v);
}

export function checkAudience(audience: string): string {
  if (!HEX64_RE.test(audience)) throw malformed('the audience (policy hash) must be 64 lowercase hex characters');
  return audience;
}

/**
 * The request digest (hex): what an approval approves and a request signature covers.
 * SHA-256 of canonicalRequestJson({ domain, audience, method, params }), written out here with
 * the four members in their sorted order (audience, domain, method, params): the audience is
 * checked to be 64 hex characters and the domain is ASCII, so both are written as they are, and
 * only the method and params go through the canonicalizer. Every authenticated request computes
 * this on both sides; canonical.test.ts checks it against the general form.
 */
export function requestDigest(audience: string, method: string, params: unknown): string {
  checkAudience(audience);
  if (typeof method !== 'string' || method.length === 0) throw malformed('method must be a non-empty string');
  const p = canonicalRequestJson(params === undefined ? null : params);
  return sha256HexOfText(`{"audience":"${audience}","domain":"${REQUEST_DOMAIN}","method":${canonicalRequestJson(method)},"params":${p}}`);
}

export function requestSignatureMessage(m: { requestDigest: string; principal: string; requestId: string; expiresAt: number }): Uint8Array {
  return canonical(
    { domain: REQUEST_SIGNATURE_DOMAIN, expiresAt: m.expiresAt, principal: m.principal, requestDigest: m.requestDigest, requestId: m.requestId },
    'the request signature message',
  );
}

/** The approval message an approver signs (v2: it names who asked and under which rule). */
export function approvalMessage(m: { approvalId: string; approver: string; decision: ApprovalDecision; requestDigest: string; requester: string; rule: string }): Uint8Array {
  return canonical(
    { domain: APPROVAL_DOMAIN, approvalId: m.approvalId, approver: m.approver, decision: m.decision, requestDigest: m.requestDigest, requester: m.requester, rule: m.rule },
    'the approval message',
  );
}

/** The v1 approval message (no requester, no rule): what approvers' tools from before v2 sign. */
export function approvalMessageV1(m: { approvalId: string; approver: string; decision: ApprovalDecision; requestDigest: string }): Uint8Array {
  return canonical(
    { domain: APPROVAL_DOMAIN_V1, approvalId: m.approvalId, approver: m.approver, decision: m.decision, requestDigest: m.requestDigest },
    'the approval message',
  );
}

export function toBase64Url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/** Strict base64url (no padding, no other alphabet): a lenient decoder would let two strings mean one signature. */
export function fromBase64Url(s: string, what: string, maxBytes: number): Uint8Array {
  if (typeof s !== 'string' || !B64URL_RE.test(s) || s.length % 4 === 1) throw malformed(`${what} must be base64url without padding`);
  if (s.length > Math.ceil((maxBytes * 4) / 3)) throw malformed(`${what} is longer than ${maxBytes} bytes`);
  const b = new Uint8Array(Buffer.from(s, 'base64url'));
  if (toBase64Url(b) !== s) throw malformed(`${what} is not canonical base64url`);
  return b;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function onlyMembers(o: Record<string, unknown>, allowed: readonly string[], what: string, hint = ENVELOPE_HINT): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw malformed(`unknown member ${JSON.stringify(k.slice(0, 32))} in ${what}`, hint);
}

/** `principal` and `expiresAt`, which both envelope forms carry and check alike. */
export function envelopePrincipal(v: unknown, hint = ENVELOPE_HINT): string {
  if (typeof v !== 'string' || !PRINCIPAL_NAME_RE.test(v)) throw malformed('"principal" must be a principal name (letters, digits, _ . -; at most 64)', hint);
  return v;
}

export function envelopeExpiry(v: unknown, hint = ENVELOPE_HINT): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw malformed('"expiresAt" must be a positive integer (Unix seconds)', hint);
  return v;
}

/** Checks the shape of a `signer_auth` value (no cryptography: that is the enclave verifier's job). */
export function parseSignerAuth(v: unknown): SignerAuth {
  if (!isPlainObject(v)) throw malformed('expected an object');
  onlyMembers(v, ['v', 'principal', 'requestId', 'expiresAt', 'signature', 'webauthn'], 'signer_auth');
  if (v.v !== SIGNER_AUTH_VERSION) throw malformed(`"v" must be ${SIGNER_AUTH_VERSION}`);
  const principal = envelopePrincipal(v.principal);
  if (typeof v.requestId !== 'string' || !REQUEST_ID_RE.test(v.requestId)) throw malformed('"requestId" must be 8 to 128 characters of A-Z a-z 0-9 _ -');
  const expiresAt = envelopeExpiry(v.expiresAt);
  if (typeof v.signature !== 'string') throw malformed('"signature" must be a base64url string');
  fromBase64Url(v.signature, '"signature"', 160);
  const out: SignerAuth = { v: 1, principal, requestId: v.requestId, expiresAt, signature: v.signature };
  if (v.webauthn !== undefined) out.webauthn = parseWebAuthn(v.webauthn);
  return out;
}

export function parseWebAuthn(v: unknown): WebAuthnAssertion {
  if (!isPlainObject(v)) throw malformed('"webauthn" must be an object');
  onlyMembers(v, ['authenticatorData', 'clientDataJSON'], 'webauthn');
  if (typeof v.authenticatorData !== 'string' || typeof v.clientDataJSON !== 'string') throw malformed('"webauthn" needs authenticatorData and clientDataJSON (base64url strings)');
  fromBase64Url(v.authenticatorData, 'webauthn.authenticatorData', 1024);
  fromBase64Url(v.clientDataJSON, 'webauthn.clientDataJSON', 4096);
  return { authenticatorData: v.authenticatorData, clientDataJSON: v.clientDataJSON };
}
