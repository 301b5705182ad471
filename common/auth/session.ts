/**
 * Principal sessions: the wire format shared by the client that opens and uses a session and
 * the enclave that verifies it (docs/principals.md "Sessions").
 *
 * Why: verifying an Ed25519 signature costs the enclave ~0.11 ms per request, and signing it costs
 * the caller about as much; a signing appliance answering thousands of requests a second pays that
 * on every one. A session pays it once. The principal signs ONE request, `signer_openSession`,
 * carrying a fresh X25519 public key; the enclave answers with its own fresh X25519 public key and
 * a session id; both derive a 32-byte key, and every later request carries an HMAC-SHA256 under
 * it (~3 µs) instead of a signature. Everything else about an authenticated request is unchanged:
 * the MAC covers the same request digest (audience, method, params), an expiry the enclave checks
 * on its own clock, and a sequence number the enclave accepts once.
 *
 * Why the host cannot use a session: the key comes from an X25519 exchange whose two private
 * keys live only in the client and in the enclave. The client's public key is inside the params
 * the principal signed, so the host cannot swap it. The host can swap the enclave's public key in
 * the answer; then the client derives a key shared with the host, and the MACs it sends fail in
 * the enclave: the host gains a denial of service it already has (it carries every request), never
 * a request the enclave accepts. The key never crosses the bridge or the parent in any form.
 *
 * Exact bytes (base64url is RFC 4648 §5 without padding, strict as in ./request.ts):
 *
 *   signer_openSession params = { "clientPublicKey": base64url(32-byte X25519 public key),
 *                                 "ttlSeconds": integer (optional; default and ceiling: the
 *                                               principal's sessions.maxSeconds in the policy) }
 *     sent with a signature `signer_auth` (./request.ts), never with a session MAC.
 *   answer = { "session": base64url(16 random bytes), "enclavePublicKey": base64url(32 bytes),
 *              "expiresAt": Unix seconds (enclave clock), "principal": name }
 *
 *   shared = X25519(own private key, peer public key)            (an all-zero result is refused)
 *   key    = HKDF-SHA256( ikm  = shared,
 *                         salt = the 32 bytes of the signer_openSession request digest,
 *                         info = "enclave-signer/session/v1" ‖ 0x00 ‖ principal (UTF-8) ‖ 0x00
 *                                ‖ session id (16) ‖ clientPublicKey (32) ‖ enclavePublicKey (32),
 *                         L = 32 )
 *
 *   mac message = canonical({ "domain": "enclave-signer/request-mac/v1", "expiresAt": integer,
 *                             "principal": name, "requestDigest": hex, "seq": integer,
 *                             "session": id })                  (canonical JSON, ./canonical.ts)
 *   mac         = HMAC-SHA256(key, mac message)                  (32 bytes)
 *
 *   signer_auth = { "v": 1, "principal", "session", "seq": 1 … 2^53−1, "expiresAt", "mac" }
 *
 * `seq` is the caller's counter within the session; the enclave accepts each value once, and
 * values more than SESSION_REPLAY_WINDOW below the highest it accepted not at all (RFC 6479's
 * sliding window), so requests may arrive out of order without a per-request cache entry.
 */
import { createHmac, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { canonicalRequestBytes } from './canonical.js';
import { AuthError } from './errors.js';
import { envelopeExpiry, envelopePrincipal, fromBase64Url, isPlainObject, malformedAuth, onlyMembers, PRINCIPAL_NAME_RE, SIGNER_AUTH_VERSION, toBase64Url } from './request.js';

export const SESSION_KEY_DOMAIN = 'enclave-signer/session/v1';
export const REQUEST_MAC_DOMAIN = 'enclave-signer/request-mac/v1';
export const OPEN_SESSION_METHOD = 'signer_openSession';
export const SESSION_ID_BYTES = 16;
export const X25519_KEY_BYTES = 32;
export const SESSION_KEY_BYTES = 32;
/** How far below the highest accepted sequence number a late request may still arrive. */
export const SESSION_REPLAY_WINDOW = 1024;
/** The longest session any policy may allow (a day): a session key is a bearer secret for its lifetime. */
export const MAX_SESSION_SECONDS = 86_400;

const SESSION_ID_RE = /^[A-Za-z0-9_-]{22}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;
/*
 * Canonical base64url of exactly 16 and 32 bytes, by shape: the last character's unused low bits
 * (4 of a 16-byte value's 22nd character, 2 of a 32-byte value's 43rd) must be zero, which leaves
 * A Q g w, and every fourth character from A. A string of this shape decodes to exactly that many
 * bytes and re-encodes to itself, so every request in a session skips the decode-and-compare of
 * fromBase64Url; anything else still goes through it and gets its error.
 */
const CANONICAL_SESSION_ID_RE = /^[A-Za-z0-9_-]{21}[AQgw]$/;
const CANONICAL_MAC_RE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

/** The `signer_auth` member of a request authenticated by a session. */
export interface SessionAuth {
  v: 1;
  principal: string;
  session: string;
  seq: number;
  expiresAt: number;
  mac: string;
}

export interface OpenSessionParams {
  clientPublicKey: string;
  ttlSeconds?: number;
}

export interface OpenSessionAnswer {
  session: string;
  enclavePublicKey: string;
  expiresAt: number;
  principal: string;
}

const SESSION_HINT = 'see docs/principals.md "Sessions" for the envelope';
const malformed = (message: string) => malformedAuth(message, SESSION_HINT);

/** True when a `signer_auth` value is the session form (it carries `session`): the verifier branches on it. */
export function isSessionAuth(v: unknown): boolean {
  return isPlainObject(v) && Object.hasOwn(v, 'session');
}

/** Checks the shape of a session `signer_auth` (no cryptography: that is the enclave's session table). */
export function parseSessionAuth(v: unknown): SessionAuth {
  if (!isPlainObject(v)) throw malformed('expected an object');
  onlyMembers(v, ['v', 'principal', 'session', 'seq', 'expiresAt', 'mac'], 'a session signer_auth', SESSION_HINT);
  if (v.v !== SIGNER_AUTH_VERSION) throw malformed(`"v" must be ${SIGNER_AUTH_VERSION}`);
  const principal = envelopePrincipal(v.principal, SESSION_HINT);
  if (typeof v.session !== 'string' || !SESSION_ID_RE.test(v.session)) throw malformed('"session" must be a session id (22 base64url characters, from signer_openSession)');
  if (!CANONICAL_SESSION_ID_RE.test(v.session)) fromBase64Url(v.session, '"session"', SESSION_ID_BYTES);
  if (typeof v.seq !== 'number' || !Number.isSafeInteger(v.seq) || v.seq < 1) throw malformed('"seq" must be a positive integer (the caller\'s counter within the session)');
  const expiresAt = envelopeExpiry(v.expiresAt, SESSION_HINT);
  if (typeof v.mac !== 'string') throw malformed('"mac" must be a base64url string');
  if (!CANONICAL_MAC_RE.test(v.mac) && fromBase64Url(v.mac, '"mac"', 32).length !== 32) throw malformed('"mac" must be 32 bytes (HMAC-SHA256)');
  return { v: 1, principal, session: v.session, seq: v.seq, expiresAt, mac: v.mac };
}

function invalidOpen(field: string, message: string): AuthError {
  return new AuthError('AUTH_MALFORMED', `signer_openSession: ${field} ${message}`, { hint: 'params are { clientPublicKey: base64url X25519 public key, ttlSeconds?: integer } (docs/principals.md "Sessions")' });
}

/** Reads signer_openSession params: the client's X25519 public key (32 bytes) and an optional lifetime. */
export function parseOpenSessionParams(v: unknown): { clientPublicKey: Uint8Array; ttlSeconds: number | undefined } {
  if (!isPlainObject(v)) throw invalidOpen('params', 'must be an object');
  for (const k of Object.keys(v)) if (k !== 'clientPublicKey' && k !== 'ttlSeconds') throw invalidOpen('params', `has an unknown member ${JSON.stringify(k.slice(0, 32))}`);
  if (typeof v.clientPublicKey !== 'string') throw invalidOpen('clientPublicKey', 'is required (base64url, 32 bytes)');
  const clientPublicKey = fromBase64Url(v.clientPublicKey, 'clientPublicKey', X25519_KEY_BYTES);
  if (clientPublicKey.length !== X25519_KEY_BYTES) throw invalidOpen('clientPublicKey', `must be ${X25519_KEY_BYTES} bytes`);
  let ttlSeconds: number | undefined;
  if (v.ttlSeconds !== undefined) {
    if (typeof v.ttlSeconds !== 'number' || !Number.isSafeInteger(v.ttlSeconds) || v.ttlSeconds < 1 || v.ttlSeconds > MAX_SESSION_SECONDS) {
      throw invalidOpen('ttlSeconds', `must be an integer from 1 to ${MAX_SESSION_SECONDS}`);
    }
    ttlSeconds = v.ttlSeconds;
  }
  return { clientPublicKey, ttlSeconds };
}

/** Reads the enclave's answer to signer_openSession (client side: it came through the host). */
export function parseOpenSessionAnswer(v: unknown, principal: string): { session: string; enclavePublicKey: Uint8Array; expiresAt: number } {
  const bad = (m: string) => new AuthError('AUTH_MALFORMED', `the signer_openSession answer ${m}`);
  if (!isPlainObject(v)) throw bad('is not an object');
  if (typeof v.session !== 'string' || !SESSION_ID_RE.test(v.session)) throw bad('has no session id');
  if (typeof v.enclavePublicKey !== 'string') throw bad('has no enclavePublicKey');
  const enclavePublicKey = fromBase64Url(v.enclavePublicKey, 'enclavePublicKey', X25519_KEY_BYTES);
  if (enclavePublicKey.length !== X25519_KEY_BYTES) throw bad(`has an enclavePublicKey that is not ${X25519_KEY_BYTES} bytes`);
  if (typeof v.expiresAt !== 'number' || !Number.isSafeInteger(v.expiresAt)) throw bad('has no expiresAt');
  if (v.principal !== principal) throw bad(`names principal ${JSON.stringify(String(v.principal).slice(0, 64))}, not ${principal}`);
  return { session: v.session, enclavePublicKey, expiresAt: v.expiresAt };
}

/**
 * A fresh X25519 key pair. The private key is an OpenSSL key object (node's native X25519: ~20×
 * faster than a JS implementation on the enclave's main thread, and no extra code in the image);
 * OpenSSL clears it when the object is collected. Drop the reference once the key is derived.
 */
export function newX25519KeyPair(): { privateKey: KeyObject; publicKey: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey, publicKey: new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url')) };
}

function x25519PublicKey(raw: Uint8Array): KeyObject {
  if (raw.length !== X25519_KEY_BYTES) throw new AuthError('AUTH_MALFORMED', `an X25519 public key is ${X25519_KEY_BYTES} bytes`);
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: toBase64Url(raw) }, format: 'jwk' });
}

/**
 * The session key, from one side's X25519 private key and the other side's public key. The
 * shared secret is wiped here; the caller owns (and wipes) the returned key.
 */
export function deriveSessionKey(i: {
  privateKey: KeyObject;
  peerPublicKey: Uint8Array;
  openRequestDigest: string;
  principal: string;
  session: string;
  clientPublicKey: Uint8Array;
  enclavePublicKey: Uint8Array;
}): Uint8Array {
  if (!HEX64_RE.test(i.openRequestDigest)) throw new AuthError('AUTH_MALFORMED', 'the open request digest must be 64 lowercase hex characters');
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: i.privateKey, publicKey: x25519PublicKey(i.peerPublicKey) });
  } catch (e) {
    // OpenSSL refuses a low-order public key (all-zero shared secret): a key that would pin the session key.
    throw new AuthError('AUTH_MALFORMED', 'the X25519 public key is invalid (low order)', { cause: e });
  }
  try {
    if (shared.every((b) => b === 0)) throw new AuthError('AUTH_MALFORMED', 'the X25519 exchange gave an all-zero secret');
    const info = Buffer.concat([
      Buffer.from(`${SESSION_KEY_DOMAIN}\u0000${i.principal}\u0000`, 'utf8'),
      fromBase64Url(i.session, 'session', SESSION_ID_BYTES),
      i.clientPublicKey,
      i.enclavePublicKey,
    ]);
    return new Uint8Array(hkdfSync('sha256', shared, Buffer.from(i.openRequestDigest, 'hex'), info, SESSION_KEY_BYTES));
  } finally {
    shared.fill(0);
  }
}

/**
 * The mac message: canonical JSON of the six members. Every request in a session computes it on
 * both sides, so the members the envelope parsers accept (a principal name, a session id, a hex
 * digest, safe integers: all ASCII that JSON writes as is) are written straight into the
 * canonical layout — keys in sorted order, no whitespace — and anything else goes through the
 * general canonicalizer. canonical.test.ts checks that both give the same bytes.
 */
export function requestMacMessage(m: { requestDigest: string; principal: string; session: string; seq: number; expiresAt: number }): Uint8Array {
  const text = directMacText(m);
  return text === undefined ? generalMacMessage(m) : Buffer.from(text, 'latin1');
}

/** The mac message through the general canonicalizer (members outside the direct layout's shapes). */
function generalMacMessage(m: { requestDigest: string; principal: string; session: string; seq: number; expiresAt: number }): Uint8Array {
  return canonicalRequestBytes({ domain: REQUEST_MAC_DOMAIN, expiresAt: m.expiresAt, principal: m.principal, requestDigest: m.requestDigest, seq: m.seq, session: m.session });
}

/** The mac message written out directly (ASCII), or undefined when a member needs the general canonicalizer. */
function directMacText(m: { requestDigest: string; principal: string; session: string; seq: number; expiresAt: number }): string | undefined {
  if (PRINCIPAL_NAME_RE.test(m.principal) && SESSION_ID_RE.test(m.session) && HEX64_RE.test(m.requestDigest) && Number.isSafeInteger(m.seq) && Number.isSafeInteger(m.expiresAt)) {
    return `{"domain":"${REQUEST_MAC_DOMAIN}","expiresAt":${m.expiresAt},"principal":"${m.principal}","requestDigest":"${m.requestDigest}","seq":${m.seq},"session":"${m.session}"}`;
  }
  return undefined;
}

/** HMAC-SHA256 of the mac message (32 bytes). */
export function requestMac(key: Uint8Array, m: { requestDigest: string; principal: string; session: string; seq: number; expiresAt: number }): Uint8Array {
  // The ASCII text goes to the HMAC as it is (latin1 = its bytes), without a Buffer of it first.
  const text = directMacText(m);
  const h = createHmac('sha256', key);
  return (text === undefined ? h.update(generalMacMessage(m)) : h.update(text, 'latin1')).digest();
}

/** The `signer_auth` member of one request in a session. */
export function sessionAuth(key: Uint8Array, m: { requestDigest: string; principal: string; session: string; seq: number; expiresAt: number }): SessionAuth {
  return { v: SIGNER_AUTH_VERSION, principal: m.principal, session: m.session, seq: m.seq, expiresAt: m.expiresAt, mac: toBase64Url(requestMac(key, m)) };
}
