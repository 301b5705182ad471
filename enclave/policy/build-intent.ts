/**
 * Turns a sign request into its typed intent using the signers' own parse functions, so the
 * policy decides on exactly the value the worker signs. A request a signer would refuse is
 * refused here with the signer's error (nothing to decide on).
 *
 * Only authenticated facts go in: the key id bound by the blob's AAD and public data derived
 * inside the enclave from the unwrapped key (master fingerprint, derivation function). Nothing
 * the host says about a key (address, label, xpub) is used.
 */
import type { JsonLike } from '../../common/cbor-json.js';
import { parseDerivationPath, formatDerivationPath } from '../signers/bip32.js';
import { invalidParams } from '../signers/errors.js';
import { parseAuthorizationRequest } from '../signers/eth-authorization.js';
import { readPersonalMessage } from '../signers/eth-message.js';
import { parseEthTransaction } from '../signers/eth-transaction.js';
import { parseTypedDataV4 } from '../signers/eth-typed-data.js';
import { hexOf, readBytes, readBytes32 } from '../signers/validate.js';
import { POLICY_OPS, type Intent, type PolicyOp } from './intent.js';
import { psbtIntent, type PsbtKeyFacts } from './psbt-intent.js';
import { transactionIntent } from './transaction-intent.js';
import { typedDataIntent } from './typed-data-intent.js';

export interface KeyFacts extends PsbtKeyFacts {
  /** Key id bound by the wrapped blob's AAD (absent for signer_createKey). */
  keyId?: string;
}

/** A required member of a sign request (shared with parse-request.ts, which reads the same requests). */
export function field(request: Record<string, JsonLike>, name: string): JsonLike {
  const v = request[name];
  if (v === undefined) throw invalidParams(name, 'is required');
  return v;
}

/** The request's derivation path, normalised, or null. */
export function optionalPath(request: Record<string, JsonLike>): string | null {
  return request.path === undefined ? null : formatDerivationPath(parseDerivationPath(request.path));
}

export function buildIntent(op: PolicyOp, request: Record<string, JsonLike>, facts: KeyFacts = {}): Intent {
  if (!POLICY_OPS.includes(op)) throw invalidParams('op', 'unknown operation');
  const base = facts.keyId === undefined ? {} : { keyId: facts.keyId };
  switch (op) {
    case 'eth_signTransaction':
      return { ...base, op, tx: transactionIntent(parseEthTransaction(field(request, 'tx'))) };
    case 'eth_signTypedData_v4':
      return { ...base, op, typedData: typedDataIntent(parseTypedDataV4(field(request, 'typedData'))) };
    case 'signer_signPsbt':
      return { ...base, op, psbt: psbtIntent(field(request, 'psbt'), facts) };
    case 'personal_sign': {
      const bytes = readPersonalMessage(field(request, 'message'));
      let text: string | null;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      } catch {
        text = null;
      }
      return { ...base, op, message: { length: bytes.length, hex: hexOf(bytes), text } };
    }
    case 'eth_sign':
      return { ...base, op, data: hexOf(readBytes(field(request, 'data'), 'data')) };
    case 'signer_signDigest':
      return { ...base, op, digest: hexOf(readBytes32(field(request, 'digest'), 'digest')), path: optionalPath(request) };
    case 'signer_signSchnorr':
      return { ...base, op, message: hexOf(readBytes32(field(request, 'message'), 'message')), path: optionalPath(request) };
    case 'signer_signAuthorization':
      return { ...base, op, authorization: parseAuthorizationRequest(field(request, 'authorization')) };
    case 'signer_deriveKey':
      return { ...base, op, path: formatDerivationPath(parseDerivationPath(field(request, 'path'))) };
    case 'signer_createKey': {
      const kind = field(request, 'kind');
      if (kind !== 'secp256k1' && kind !== 'bip32-seed') throw invalidParams('kind', 'expected secp256k1 or bip32-seed');
      return { op, kind };
    }
  }
}
