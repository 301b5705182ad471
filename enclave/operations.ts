/**
 * One signing operation on one unwrapped key: the pure core that runs on a
 * worker thread. Dispatches a validated op to the signers; derives BIP32
 * children for seed keys and wipes them afterwards. No I/O.
 */
import { randomBytes } from 'node:crypto';
import { wipe } from '../common/bytes.js';
import type { JsonLike } from '../common/cbor-json.js';
import type { KeyKind, SignOp } from '../common/protocol/enclave-api.js';
import { invalidParams } from './signers/errors.js';
import {
  deriveBip32PrivateKey,
  deriveBip32PublicKey,
  signAuthorization,
  signDigest,
  signEthSign,
  signEthTransaction,
  signPersonalMessage,
  signPsbt,
  signSchnorr,
  signTypedDataV4,
} from './signers/index.js';

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

function signWith(op: SignOp, key: Uint8Array, request: Record<string, JsonLike>): unknown {
  switch (op) {
    case 'eth_signTransaction':
      return signEthTransaction(key, field(request, 'tx'));
    case 'eth_sign':
      return signEthSign(key, field(request, 'data'));
    case 'personal_sign':
      return signPersonalMessage(key, field(request, 'message'));
    case 'eth_signTypedData_v4':
      return signTypedDataV4(key, field(request, 'typedData'));
    case 'signer_signDigest':
      return signDigest(key, field(request, 'digest') as string);
    case 'signer_signSchnorr':
      return signSchnorr(key, field(request, 'message') as string, entropy);
    case 'signer_signAuthorization':
      return signAuthorization(key, field(request, 'authorization'));
    default:
      throw invalidParams('keyId', `${op} needs a bip32-seed key`);
  }
}

export function runOperation(op: SignOp, kind: KeyKind, secret: Uint8Array, request: Record<string, JsonLike>): unknown {
  if (kind === 'secp256k1') {
    if (request.path !== undefined) throw invalidParams('path', 'only bip32-seed keys take a derivation path');
    return signWith(op, secret, request);
  }
  // bip32-seed
  if (op === 'signer_deriveKey') return deriveBip32PublicKey(secret, field(request, 'path'));
  if (op === 'signer_signPsbt') return signPsbt(secret, field(request, 'psbt'), { entropy });
  const child = deriveBip32PrivateKey(secret, field(request, 'path'));
  try {
    return signWith(op, child.privateKey, request);
  } finally {
    wipe(child.privateKey);
  }
}
