/**
 * EIP-7702 authorizations (`signer_signAuthorization`): the account signs
 * keccak256(0x05 ‖ rlp([chain_id, address, nonce])), letting `address`'s code run as the
 * account's. chainId 0 would make the delegation valid on every chain; that is refused unless
 * the caller opts in explicitly.
 */
import { hashAuthorization } from 'viem/utils';
import { encodeSignature, signDigestRaw } from './ecdsa.js';
import { addressFromPrivateKey, readAddress } from './eth-address.js';
import { guarded, invalidParams } from './errors.js';
import { hexOf, readObject, readPrivateKey, readSafeQuantity, type Hex } from './validate.js';

export interface AuthorizationRequest {
  /** Chain the delegation is valid on; 0 = every chain (needs `allowAllChains`). */
  chainId: number;
  /** Contract whose code the account delegates to. */
  address: Hex;
  /** The signing account's nonce at the time the authorization is applied. */
  nonce: number;
}

export interface SignedAuthorization {
  /** Same shape as viem's SignedAuthorization (numbers, 0x hex). */
  chainId: number;
  address: Hex;
  nonce: number;
  r: Hex;
  s: Hex;
  yParity: 0 | 1;
  /** The digest that was signed. */
  hash: Hex;
  /** Checksummed address of the delegating account. */
  signer: Hex;
}

export interface AuthorizationOptions {
  /** Permit chainId 0 (valid on all chains). Default false. */
  allowAllChains?: boolean;
}

/** Accepts `address` or viem's alias `contractAddress`; chainId and nonce as hex quantities or numbers. */
export function parseAuthorizationRequest(request: unknown, opts: AuthorizationOptions = {}): AuthorizationRequest {
  const o = readObject(request, 'authorization', ['chainId', 'address', 'contractAddress', 'nonce']);
  if (o.chainId === undefined || o.chainId === null) throw invalidParams('chainId', 'required (never defaulted)');
  if (o.nonce === undefined || o.nonce === null) throw invalidParams('nonce', 'required');
  if (o.address !== undefined && o.contractAddress !== undefined) {
    throw invalidParams('contractAddress', 'give either address or contractAddress, not both');
  }
  const address =
    o.contractAddress !== undefined ? readAddress(o.contractAddress, 'contractAddress') : readAddress(o.address, 'address');
  const chainId = readSafeQuantity(o.chainId, 'chainId');
  if (chainId === 0 && opts.allowAllChains !== true) {
    throw invalidParams('chainId', 'chainId 0 authorizes the delegation on every chain; refused', {
      hint: 'sign for a specific chain, or enable allowAllChains in policy',
    });
  }
  // EIP-7702 nonces are uint64; the JS-number bound (2^53-1) is far below any real nonce.
  const nonce = readSafeQuantity(o.nonce, 'nonce');
  return { chainId, address, nonce };
}

/** keccak256(0x05 ‖ rlp([chainId, address, nonce])). */
export function authorizationHash(a: AuthorizationRequest): Uint8Array {
  const h = guarded('authorization encoding', () =>
    hashAuthorization({ chainId: a.chainId, address: a.address, nonce: a.nonce, to: 'bytes' }),
  );
  return h;
}

export function signAuthorization(
  privateKey: Uint8Array,
  request: unknown,
  opts: AuthorizationOptions = {},
): SignedAuthorization {
  return signParsedAuthorization(privateKey, parseAuthorizationRequest(request, opts));
}

/** Signs an authorization parseAuthorizationRequest already produced (the enclave decides on this same value). */
export function signParsedAuthorization(privateKey: Uint8Array, auth: AuthorizationRequest): SignedAuthorization {
  const key = readPrivateKey(privateKey);
  const digest = authorizationHash(auth);
  const sig = encodeSignature(signDigestRaw(key, digest));
  return {
    chainId: auth.chainId,
    address: auth.address,
    nonce: auth.nonce,
    r: sig.r,
    s: sig.s,
    yParity: sig.yParity,
    hash: hexOf(digest),
    signer: addressFromPrivateKey(key),
  };
}
