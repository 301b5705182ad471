/**
 * One signing operation on one unwrapped key: the pure core that runs on a
 * worker thread. Derives the key's public facts from the secret (the only
 * key data the policy and the parent may believe), dispatches a validated op
 * to the signers; derives BIP32 children for seed keys and wipes them
 * afterwards. No I/O.
 *
 * A prepared job keeps one copy of key material until it is signed or
 * aborted (the secp256k1 key, the seed of a PSBT job, a derived child key),
 * made by the caller's KeyCopies: a signing worker's puts it in a slot of its
 * secret arena (job-signer.ts, secret-arena.ts), which the pool zeroes once
 * the worker has exited; by default (runOperation, tests, tools) the heap.
 */
import { randomBytes } from 'node:crypto';
import { toHex, wipe } from '../common/bytes.js';
import { SignerError } from '../common/errors.js';
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
 * enclave says so. The prepared job owns a copy of the key material (from its
 * KeyCopies); `wipe()` (after signing or on abort) releases it, which zeroes it.
 * `wipe()` may be called again (it does nothing more); `sign()` after it throws.
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
 * Where a prepared job keeps its copy of key material between prepare and sign/abort, and how it
 * gives it back. One `keep` and one `release` per job that keeps a copy.
 */
export interface KeyCopies {
  /** A copy of `bytes` (at most 64 bytes), which it leaves as they are: the caller wipes its own. */
  keep(bytes: Uint8Array): Uint8Array;
  /** Zeroes a copy `keep` returned and gives its memory back; the copy is not used afterwards. */
  release(copy: Uint8Array): void;
}

/** Copies on the heap, zeroed on release: no arena (runOperation, tests, tools). */
export const HEAP_COPIES: KeyCopies = { keep: (bytes) => bytes.slice(), release: (copy) => wipe(copy) };

/** A prepared job that signs with `key`, a copy from `copies`, released (once) by `wipe()`. */
function preparedOn(facts: SignerFacts, intent: Intent, key: Uint8Array, copies: KeyCopies, signWith: (key: Uint8Array) => unknown): PreparedOperation {
  let kept = true;
  return {
    facts,
    intent,
    sign: () => {
      // Released, its memory (an arena slot) may hold another job's key by now: never sign with it.
      if (!kept) throw new SignerError('INTERNAL', 'the prepared job was wiped');
      return signWith(key);
    },
    wipe: () => {
      if (!kept) return;
      kept = false;
      copies.release(key);
    },
  };
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
 * caller wipes it): what the signing step needs is copied by `copies` (by default
 * the heap), and `wipe()` releases that copy. The request is parsed here, once, and the
 * signing step signs the parsed value the intent describes. `known` are the key's facts
 * from `keyFacts` for this very secret and meta, when the caller has them (the worker's
 * key cache); else they are derived here. Request errors that need no key (path syntax
 * and depth, a path on a secp256k1 key) are raised here, before any decision.
 */
export function prepareOperation(
  op: SignOp,
  meta: AuthenticatedMeta,
  secret: Uint8Array,
  request: Record<string, JsonLike>,
  known?: KeyFacts,
  copies: KeyCopies = HEAP_COPIES,
): PreparedOperation {
  if (meta.kind === 'secp256k1') {
    checkSecpRequest(op, request);
    const key = copies.keep(secret);
    try {
      const facts: SignerFacts = { ...(known ?? keyFacts(meta, key)) };
      const parsed = parseSignRequest(op, request, meta.keyId, entropy);
      return preparedOn(facts, parsed.intent, key, copies, parsed.sign);
    } catch (e) {
      copies.release(key);
      throw e;
    }
  }
  // bip32-seed: the facts are the master's (what the key record describes), plus the child that
  // signs. Everything but the PSBT's signing step reads the seed during this call only, from
  // `secret` (the caller's until we return): the one copy kept is the seed of a PSBT job, or the child key.
  const facts: SignerFacts = { ...(known ?? keyFacts(meta, secret)) };
  if (op === 'signer_signPsbt') {
    // Decoded and bounded now, so a PSBT over the limits is refused before any decision.
    const psbt = preparePsbt(field(request, 'psbt'), {}, Number.parseInt(facts.fingerprint!, 16));
    const seed = copies.keep(secret);
    try {
      // Change is verified against keys derived from this seed (never the host's word).
      const derivePublicKey = (path: readonly number[]) => new Uint8Array(Buffer.from(deriveBip32PublicKey(seed, formatDerivationPath(path)).publicKey.replace(/^0x/, ''), 'hex'));
      const intent: Intent = { keyId: meta.keyId, op, psbt: psbtIntentOf(psbt.tx, { masterFingerprint: facts.fingerprint!, derivePublicKey }) };
      return preparedOn(facts, intent, seed, copies, (s) => signPreparedPsbt(s, psbt, { entropy }));
    } catch (e) {
      copies.release(seed);
      throw e;
    }
  }
  if (op === 'signer_deriveKey') {
    const info = deriveBip32PublicKey(secret, field(request, 'path'));
    facts.child = { path: info.path, publicKey: info.publicKey, address: info.ethereumAddress };
    return { facts, intent: { keyId: meta.keyId, op, path: info.path }, sign: () => info, wipe: () => {} };
  }
  const child = deriveBip32PrivateKey(secret, field(request, 'path'));
  // The library's array goes at once: the copy kept is `copies`' (an arena slot in a worker).
  const childKey = copies.keep(child.privateKey);
  wipe(child.privateKey);
  facts.child = { path: child.path, publicKey: child.publicKey, address: child.ethereumAddress };
  try {
    const parsed = parseSignRequest(op, request, meta.keyId, entropy);
    return preparedOn(facts, parsed.intent, childKey, copies, parsed.sign);
  } catch (e) {
    copies.release(childKey);
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
