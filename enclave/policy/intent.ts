/**
 * Typed intents: what a request asks the enclave to sign, decoded from the very value the
 * signer signs (the signers' own parse functions produce it; see build-intent.ts). The policy
 * decides on an intent and nothing else, so one request can never be read two ways.
 *
 * Conventions: Ethereum addresses lowercase 0x hex; amounts bigint; Bitcoin output scripts
 * lowercase hex (addresses are for display: rules compare scripts).
 */
import type { Hex } from '../signers/validate.js';
import { SIGN_OPS, type SignOp } from '../../common/protocol/enclave-api.js';

/** Every operation a rule can name: the enclave's sign ops (one list, common/protocol) plus key creation. */
export type PolicyOp = SignOp | 'signer_createKey';

export const POLICY_OPS: readonly PolicyOp[] = [...SIGN_OPS, 'signer_createKey'];

/** Ops that sign bytes whose meaning the enclave cannot see: refused unless a rule names them. */
export const RAW_OPS: readonly PolicyOp[] = ['signer_signDigest', 'signer_signSchnorr', 'eth_sign'];

/** A decoded call. ERC-20 calls are decoded only when the calldata is exactly the ABI encoding. */
export type DecodedCall =
  | { kind: 'none' }
  | { kind: 'erc20-transfer'; to: Hex; amount: bigint }
  | { kind: 'erc20-approve'; spender: Hex; amount: bigint }
  | { kind: 'erc20-transferFrom'; from: Hex; to: Hex; amount: bigint }
  /** Issuer calls of a mintable/burnable token (OpenZeppelin's ERC20Mintable/ERC20Burnable ABI): mint(to, amount), burn(amount) from the caller's own balance. */
  | { kind: 'erc20-mint'; to: Hex; amount: bigint }
  | { kind: 'erc20-burn'; amount: bigint }
  /** Anything else: the 4-byte selector and the 32-byte argument words (a trailing partial word kept apart). */
  | { kind: 'other'; selector: Hex; args: Hex[]; rest: Hex }
  /** 1–3 bytes of calldata: no selector at all. */
  | { kind: 'short'; data: Hex };

export interface TransactionIntent {
  type: 'legacy' | 'eip2930' | 'eip1559' | 'eip4844' | 'eip7702';
  chainId: number;
  /** null = contract creation. */
  to: Hex | null;
  contractCreation: boolean;
  value: bigint;
  nonce: number;
  data: Hex;
  call: DecodedCall;
  fees: {
    gas: bigint;
    /** gasPrice (legacy, 2930) or maxFeePerGas. */
    maxFeePerGas: bigint;
    maxPriorityFeePerGas: bigint | null;
    maxFeePerBlobGas: bigint | null;
    blobCount: number;
    /** The most this transaction can pay in fees: gas × maxFeePerGas (+ blob gas at its cap). */
    maxFeeWei: bigint;
  };
  /** EIP-7702 delegate contracts of the authorization list (lowercase; empty for other types). */
  delegates: Hex[];
}

/** A permission the typed data grants: who may move which token, how much. */
export interface Grant {
  kind:
    | 'eip2612-permit'
    | 'dai-permit'
    | 'permit2-allowance'
    | 'permit2-transfer'
    | 'seaport-offer'
    /** EIP-3009 Transfer/ReceiveWithAuthorization: a signed transfer of `amount` to `spender` (the recipient). */
    | 'eip3009-transfer'
    | 'unrecognised-permit';
  /** Token contract (null when the message does not say, e.g. a malformed permit). */
  token: Hex | null;
  /** Who may move it (null when it cannot be decoded: matches no allow list). */
  spender: Hex | null;
  amount: bigint;
  /** amount is the type's maximum (2^256−1, or 2^160−1 for Permit2 allowances). */
  unlimited: boolean;
}

export interface TypedDataIntent {
  domain: { name?: string; version?: string; chainId?: number; verifyingContract?: Hex; salt?: Hex };
  primaryType: string;
  /** Decoded EIP-2612 / DAI / Permit2 / Seaport grants; empty for other messages. */
  grants: Grant[];
  message: Record<string, unknown>;
}

export interface PsbtOutputIntent {
  index: number;
  /** scriptPubKey, lowercase hex. */
  script: string;
  /** Address on the display network, or null for scripts without one (OP_RETURN, bare). */
  address: string | null;
  amount: bigint;
  /** Verified change: the output names our master fingerprint, the path derives to the listed key, and the script pays to it. */
  change: boolean;
  /** The output names our fingerprint but the claim could not be verified (treated as external). */
  claimsOurs: boolean;
  changePath?: string;
}

export interface PsbtIntent {
  masterFingerprint: string | null;
  outputs: PsbtOutputIntent[];
  /** Sum of inputs minus outputs; null when an input amount is missing (no fee cap can pass). */
  fee: bigint | null;
  /** Sum of the non-change outputs: what leaves the wallet. */
  externalAmount: bigint;
}

interface Base {
  /** The key id bound by the blob's AAD (absent only for signer_createKey). */
  keyId?: string;
}

export type Intent =
  | (Base & { op: 'eth_signTransaction'; tx: TransactionIntent })
  | (Base & { op: 'eth_signTypedData_v4'; typedData: TypedDataIntent })
  | (Base & { op: 'signer_signPsbt'; psbt: PsbtIntent })
  | (Base & { op: 'personal_sign'; message: { length: number; hex: Hex; text: string | null } })
  | (Base & { op: 'eth_sign'; data: Hex })
  | (Base & { op: 'signer_signDigest'; digest: Hex; path: string | null })
  | (Base & { op: 'signer_signSchnorr'; message: Hex; path: string | null })
  | (Base & { op: 'signer_signAuthorization'; authorization: { chainId: number; address: Hex; nonce: number } })
  | (Base & { op: 'signer_deriveKey'; path: string })
  | (Base & { op: 'signer_createKey'; kind: 'secp256k1' | 'bip32-seed' });

/** The chain an intent is bound to, when it has one. */
export function intentChainId(i: Intent): number | undefined {
  if (i.op === 'eth_signTransaction') return i.tx.chainId;
  if (i.op === 'eth_signTypedData_v4') return i.typedData.domain.chainId;
  if (i.op === 'signer_signAuthorization') return i.authorization.chainId;
  return undefined;
}

/** Native value the intent moves (wei); 0 for everything but transactions. */
export function intentValueWei(i: Intent): bigint {
  return i.op === 'eth_signTransaction' ? i.tx.value : 0n;
}

/** The delegates an intent installs (EIP-7702). */
export function intentDelegates(i: Intent): Hex[] {
  if (i.op === 'eth_signTransaction') return i.tx.delegates;
  if (i.op === 'signer_signAuthorization') return [i.authorization.address];
  return [];
}

/**
 * Every address the intent sends value or rights to: the transaction's `to`, the decoded
 * ERC-20 recipient/spender, 7702 delegates, permit spenders. Deny rules' `to` match any of them,
 * so a blocklist also stops tokens, approvals and delegations to a blocked address.
 */
export function intentCounterparties(i: Intent): Hex[] {
  const out: Hex[] = [];
  if (i.op === 'eth_signTransaction') {
    if (i.tx.to !== null) out.push(i.tx.to);
    const c = i.tx.call;
    if (c.kind === 'erc20-transfer') out.push(c.to);
    if (c.kind === 'erc20-approve') out.push(c.spender);
    if (c.kind === 'erc20-transferFrom') out.push(c.to);
    if (c.kind === 'erc20-mint') out.push(c.to);
    out.push(...i.tx.delegates);
  } else if (i.op === 'signer_signAuthorization') {
    out.push(i.authorization.address);
  } else if (i.op === 'eth_signTypedData_v4') {
    for (const g of i.typedData.grants) if (g.spender !== null) out.push(g.spender);
  }
  return out;
}
