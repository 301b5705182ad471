/**
 * Parses a sign request ONCE into its typed intent and a signing step over the very same parsed
 * value (issue 9 §1: one request can never be read two ways). The worker calls this after the
 * key authenticated; the main thread evaluates the intent; `go` runs `sign` on the value parsed
 * here — nothing is re-read from the request.
 *
 * PSBTs are handled by the worker (operations.ts): their intent needs the unwrapped seed to
 * verify change, and they are signed from the decoded transaction `preparePsbt` produced.
 */
import type { JsonLike } from '../../common/cbor-json.js';
import type { SignOp } from '../../common/protocol/enclave-api.js';
import { signDigest } from '../signers/ecdsa.js';
import { parseAuthorizationRequest, signParsedAuthorization } from '../signers/eth-authorization.js';
import { readPersonalMessage, signMessageBytes } from '../signers/eth-message.js';
import { parseEthTransaction, signParsedEthTransaction } from '../signers/eth-transaction.js';
import { parseTypedDataV4, signParsedTypedDataV4 } from '../signers/eth-typed-data.js';
import type { EntropySource } from '../signers/entropy.js';
import { signSchnorr } from '../signers/schnorr.js';
import { hexOf, readBytes, readBytes32 } from '../signers/validate.js';
import type { Intent } from './intent.js';
import { field, optionalPath } from './build-intent.js';
import { transactionIntent } from './transaction-intent.js';
import { typedDataIntent } from './typed-data-intent.js';

/** Ops this module parses: every sign op but the PSBT and key derivation (which sign nothing). */
export type ParsedOp = Exclude<SignOp, 'signer_signPsbt' | 'signer_deriveKey'>;

export interface ParsedRequest {
  intent: Intent;
  /** Signs the parsed value with `key` (the secp256k1 key or the derived child). */
  sign(key: Uint8Array): unknown;
}

export function parseSignRequest(op: ParsedOp, request: Record<string, JsonLike>, keyId: string, entropy: EntropySource): ParsedRequest {
  switch (op) {
    case 'eth_signTransaction': {
      const tx = parseEthTransaction(field(request, 'tx'));
      return { intent: { keyId, op, tx: transactionIntent(tx) }, sign: (k) => signParsedEthTransaction(k, tx) };
    }
    case 'eth_signTypedData_v4': {
      const td = parseTypedDataV4(field(request, 'typedData'));
      return { intent: { keyId, op, typedData: typedDataIntent(td) }, sign: (k) => signParsedTypedDataV4(k, td) };
    }
    case 'personal_sign': {
      const bytes = readPersonalMessage(field(request, 'message'));
      let text: string | null;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      } catch {
        text = null;
      }
      return { intent: { keyId, op, message: { length: bytes.length, hex: hexOf(bytes), text } }, sign: (k) => signMessageBytes(k, bytes) };
    }
    case 'eth_sign': {
      const bytes = readBytes(field(request, 'data'), 'data');
      return { intent: { keyId, op, data: hexOf(bytes) }, sign: (k) => signMessageBytes(k, bytes) };
    }
    case 'signer_signDigest': {
      const digest = readBytes32(field(request, 'digest'), 'digest');
      return { intent: { keyId, op, digest: hexOf(digest), path: optionalPath(request) }, sign: (k) => signDigest(k, digest) };
    }
    case 'signer_signSchnorr': {
      const message = readBytes32(field(request, 'message'), 'message');
      return { intent: { keyId, op, message: hexOf(message), path: optionalPath(request) }, sign: (k) => signSchnorr(k, message, entropy) };
    }
    case 'signer_signAuthorization': {
      const a = parseAuthorizationRequest(field(request, 'authorization'));
      return { intent: { keyId, op, authorization: a }, sign: (k) => signParsedAuthorization(k, a) };
    }
  }
}
