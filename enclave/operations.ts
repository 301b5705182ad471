/**
 * One signing operation on one unwrapped key: the pure core that runs on a
 * worker thread. Derives the key's public facts from the secret (the only
 * key data the policy and the parent may believe), dispatches a validated op
 * to the signers; derives BIP32 children for seed keys and wipes them
 * afterwards. No I/O.
 */
import { randomBytes } from 'node:crypto';
import { toHex, wipe } from '../common/bytes.js';
import type { JsonLike } from '../common/cbor-json.js';
import type { KeyKind, SignerFacts, SignOp } from '../common/protocol/enclave-api.js';
import type { KeyFacts } from './key-cache.js';
import type { Intent } from './policy/intent.js';
import { type ParsedOp, parseSignRequest } from './policy/parse-request.js';
import { psbtIntentOf } from './policy/psbt-intent.js';
import { formatDerivationPath } from './signers/bip32.js';
import { invalidParams } from './signers/errors.js';
import { preparePsbt, signPreparedPsbt } from './signers/psbt.js';
import { addressFromPrivateKey, deriveBip32PrivateKey, deriveBip32PublicKey, publicKeyOf } from './signers/index.js';

/**
 * Entropy for BIP340 aux randomness. Inside a Nitro enclave the kernel's RNG
 * is fed by the NSM hardware RNG (nsm-hwrng), so the OS CSPRNG is NSM entropy.
 */
const entropy = (n: number) => new Uint8Array(randomBytes(n));

function field(request: Record<string, JsonLike>, name: string): JsonLike {
  const v = request[name];
  if (v === undefined) throw invalidParams(name, 'is required');
  return v;
}

/** Identity of the key as bound by the blob's AAD (authenticated by the unwrap). */
export interface AuthenticatedMeta {
  keyId: string;
  kind: KeyKind;
  keyringId: string;
}

/**
 * A job between "the key authenticated" and "the policy decided": the public
 * facts derived from the secret, and the signing step, which runs only if the
 * enclave says so. The prepared job owns a copy of the key material; `wipe()`
 * (after signing or on abort) zeroes it.
 */
export interface PreparedOperation {
  readonly facts: SignerFacts;
  /**
   * The typed intent (enclave/policy/intent.ts), built from the same parsed value `sign()`
   * signs: the enclave's policy decides on exactly this.
   */
  readonly intent: Intent;
  sign(): unknown;
  wipe(): void;
}

/**
 * The public facts of a key, derived from its secret (for a secp256k1 key its
 * public key and address; for a seed its BIP32 master). What a signing worker
 * caches beside the secret (key-cache.ts), since it costs more than a signature.
 */
export function keyFacts(meta: AuthenticatedMeta, secret: Uint8Array): KeyFacts {
  const base = { keyId: meta.keyId, kind: meta.kind, keyringId: meta.keyringId };
  if (meta.kind === 'secp256k1') return { ...base, publicKey: toHex(publicKeyOf(secret)), address: addressFromPrivateKey(secret) };
  const master = deriveBip32PublicKey(secret, 'm');
  return { ...base, publicKey: master.publicKey.replace(/^0x/, ''), xpub: master.xpub, fingerprint: master.masterFingerprint };
}

/** What a secp256k1 key cannot do, refused before its request is parsed. */
function checkSecpRequest(op: SignOp, request: Record<string, JsonLike>): asserts op is ParsedOp {
  if (request.path !== undefined) throw invalidParams('path', 'only bip32-seed keys take a derivation path');
  if (op === 'signer_signPsbt' || op === 'signer_deriveKey') throw invalidParams('keyId', `${op} needs a bip32-seed key`);
}

/**
 * The intent of a request on a secp256k1 key, which needs no secret: the same checks, parser and
 * errors as prepareOperation. The pool decides a job ahead on it (worker-pool.ts, "Decided
 * ahead"); the worker then parses the same request again with the same code and signs that.
 */
export function secpIntent(op: SignOp, keyId: string, request: Record<string, JsonLike>): Intent {
  checkSecpRequest(op, request);
  return parseSignRequest(op, request, keyId, entropy).intent;
}

/**
 * Unwrapped secret → facts + intent + signing step. `secret` is not retained (the
 * caller wipes it). The request is parsed here, once, and the signing step signs
 * the parsed value the intent describes. `known` are the key's facts from `keyFacts` for this very
 * secret and meta, when the caller has them (the worker's key cache); else
 * they are derived here. Request errors that need no key (path syntax and
 * depth, a path on a secp256k1 key) are raised here, before any decision.
 */
export function prepareOperation(op: SignOp, meta: AuthenticatedMeta, secret: Uint8Array, request: Record<string, JsonLike>, known?: KeyFacts): PreparedOperation {
  if (meta.kind === 'secp256k1') {
    checkSecpRequest(op, request);
    const key = secret.slice();
    try {
      const facts: SignerFacts = { ...(known ?? keyFacts(meta, key)) };
      const parsed = parseSignRequest(op, request, meta.keyId, entropy);
      return { facts, intent: parsed.intent, sign: () => parsed.sign(key), wipe: () => wipe(key) };
    } catch (e) {
      wipe(key);
      throw e;
    }
  }
  // bip32-seed: the facts are the master's (what the key record describes), plus the child that signs
  const seed = secret.slice();
  try {
    const facts: SignerFacts = { ...(known ?? keyFacts(meta, seed)) };
    if (op === 'signer_signPsbt') {
      // Decoded and bounded now, so a PSBT over the limits is refused before any decision.
      const psbt = preparePsbt(field(request, 'psbt'), {}, Number.parseInt(facts.fingerprint!, 16));
      // Change is verified against keys derived from this seed (never the host's word).
      const derivePublicKey = (path: readonly number[]) => new Uint8Array(Buffer.from(deriveBip32PublicKey(seed, formatDerivationPath(path)).publicKey.replace(/^0x/, ''), 'hex'));
      const intent: Intent = { keyId: meta.keyId, op, psbt: psbtIntentOf(psbt.tx, { masterFingerprint: facts.fingerprint!, derivePublicKey }) };
      return { facts, intent, sign: () => signPreparedPsbt(seed, psbt, { entropy }), wipe: () => wipe(seed) };
    }
    if (op === 'signer_deriveKey') {
      const info = deriveBip32PublicKey(seed, field(request, 'path'));
      wipe(seed);
      facts.child = { path: info.path, publicKey: info.publicKey, address: info.ethereumAddress };
      return { facts, intent: { keyId: meta.keyId, op, path: info.path }, sign: () => info, wipe: () => {} };
    }
    const child = deriveBip32PrivateKey(seed, field(request, 'path'));
    wipe(seed);
    const childKey = child.privateKey;
    facts.child = { path: child.path, publicKey: child.publicKey, address: child.ethereumAddress };
    try {
      const parsed = parseSignRequest(op, request, meta.keyId, entropy);
      return { facts, intent: parsed.intent, sign: () => parsed.sign(childKey), wipe: () => wipe(childKey) };
    } catch (e) {
      wipe(childKey);
      throw e;
    }
  } catch (e) {
    wipe(seed);
    throw e;
  }
}

/** One op on one unwrapped key, no decision in between (tests and tools); `secret` is not retained. */
export function runOperation(op: SignOp, kind: KeyKind, secret: Uint8Array, request: Record<string, JsonLike>, meta: Omit<AuthenticatedMeta, 'kind'> = { keyId: 'local', keyringId: 'local' }): unknown {
  const p = prepareOperation(op, { ...meta, kind }, secret, request);
  try {
    return p.sign();
  } finally {
    p.wipe();
  }
}
