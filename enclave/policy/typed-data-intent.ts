/**
 * The intent of `eth_signTypedData_v4`, built from `parseTypedDataV4` — the normalised value
 * `signTypedDataV4` hashes and signs (addresses lowercase, integers bigint).
 *
 * Messages that hand out token rights are decoded into grants: EIP-2612 `Permit`, DAI's
 * `Permit(holder,spender,nonce,expiry,allowed)`, Permit2 (`PermitSingle`, `PermitBatch`,
 * `PermitTransferFrom`, `PermitBatchTransferFrom` and their `Witness` forms) and Seaport
 * `OrderComponents` (every offer item is a right for Seaport to move the offerer's tokens), and
 * EIP-3009 `TransferWithAuthorization`/`ReceiveWithAuthorization` (a signed transfer to `to`).
 * A message whose primary type looks like a permit but does not have the expected shape
 * becomes an `unrecognised-permit` grant with no known spender and an unlimited amount, so it
 * matches no allow list (fail closed).
 */
import type { TypedDataV4 } from '../signers/eth-typed-data.js';
import type { Hex } from '../signers/validate.js';
import type { Grant, TypedDataIntent } from './intent.js';

export const MAX_UINT256 = (1n << 256n) - 1n;
export const MAX_UINT160 = (1n << 160n) - 1n;

const PERMIT2_ALLOWANCE = new Set(['PermitSingle', 'PermitBatch']);
const PERMIT2_TRANSFER = new Set([
  'PermitTransferFrom',
  'PermitBatchTransferFrom',
  'PermitWitnessTransferFrom',
  'PermitBatchWitnessTransferFrom',
]);

const isAddr = (v: unknown): v is Hex => typeof v === 'string' && /^0x[0-9a-f]{40}$/.test(v);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function unrecognised(message: Record<string, unknown>, token: Hex | null): Grant {
  return { kind: 'unrecognised-permit', token, spender: isAddr(message.spender) ? message.spender : null, amount: MAX_UINT256, unlimited: true };
}

function permit2Items(items: unknown, max: bigint, kind: Grant['kind'], spender: Hex): Grant[] | undefined {
  const list = Array.isArray(items) ? items : [items];
  if (list.length === 0) return undefined;
  const out: Grant[] = [];
  for (const it of list) {
    if (!isObj(it) || !isAddr(it.token) || typeof it.amount !== 'bigint') return undefined;
    out.push({ kind, token: it.token, spender, amount: it.amount, unlimited: it.amount >= max });
  }
  return out;
}

function decodeGrants(primaryType: string, message: Record<string, unknown>, verifyingContract: Hex | null): Grant[] {
  const m = message;
  if (primaryType === 'Permit') {
    if (isAddr(m.owner) && isAddr(m.spender) && typeof m.value === 'bigint') {
      return [{ kind: 'eip2612-permit', token: verifyingContract, spender: m.spender, amount: m.value, unlimited: m.value === MAX_UINT256 }];
    }
    if (isAddr(m.holder) && isAddr(m.spender) && typeof m.allowed === 'boolean') {
      return [{ kind: 'dai-permit', token: verifyingContract, spender: m.spender, amount: m.allowed ? MAX_UINT256 : 0n, unlimited: m.allowed }];
    }
    return [unrecognised(m, verifyingContract)];
  }
  if (PERMIT2_ALLOWANCE.has(primaryType)) {
    const g = isAddr(m.spender) ? permit2Items(m.details, MAX_UINT160, 'permit2-allowance', m.spender) : undefined;
    return g ?? [unrecognised(m, null)];
  }
  if (PERMIT2_TRANSFER.has(primaryType)) {
    const g = isAddr(m.spender) ? permit2Items(m.permitted, MAX_UINT256, 'permit2-transfer', m.spender) : undefined;
    return g ?? [unrecognised(m, null)];
  }
  if (primaryType === 'OrderComponents') {
    if (!Array.isArray(m.offer) || verifyingContract === null) return [unrecognised(m, null)];
    const out: Grant[] = [];
    for (const it of m.offer) {
      if (!isObj(it) || !isAddr(it.token) || typeof it.startAmount !== 'bigint' || typeof it.endAmount !== 'bigint') return [unrecognised(m, null)];
      const amount = it.startAmount > it.endAmount ? it.startAmount : it.endAmount;
      out.push({ kind: 'seaport-offer', token: it.token, spender: verifyingContract, amount, unlimited: amount === MAX_UINT256 });
    }
    return out;
  }
  // EIP-3009 (USDC, EURC, …): the signature itself moves `value` from `from` to `to` — a token
  // transfer, so a grant whose "spender" is the recipient (review finding: it was decoded as no
  // grant, and a typed-data rule without permitSpenders signed transfers of any amount to anyone;
  // enclave/policy/typed-data-grants.test.ts). Other "…WithAuthorization" shapes are unrecognised.
  if (primaryType === 'TransferWithAuthorization' || primaryType === 'ReceiveWithAuthorization') {
    if (isAddr(m.from) && isAddr(m.to) && typeof m.value === 'bigint') {
      return [{ kind: 'eip3009-transfer', token: verifyingContract, spender: m.to, amount: m.value, unlimited: m.value === MAX_UINT256 }];
    }
    return [unrecognised(m, verifyingContract)];
  }
  if (/permit|bulkorder|withauthorization/i.test(primaryType)) return [unrecognised(m, verifyingContract)];
  return [];
}

export function typedDataIntent(td: TypedDataV4): TypedDataIntent {
  const d = td.domain;
  const domain: TypedDataIntent['domain'] = {};
  if (typeof d.name === 'string') domain.name = d.name;
  if (typeof d.version === 'string') domain.version = d.version;
  // A chainId beyond 2^53 names no real chain; such a domain is matched by no chainIds list.
  if (typeof d.chainId === 'bigint') domain.chainId = d.chainId <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(d.chainId) : -1;
  if (isAddr(d.verifyingContract)) domain.verifyingContract = d.verifyingContract;
  if (typeof d.salt === 'string') domain.salt = d.salt as Hex;
  return {
    domain,
    primaryType: td.primaryType,
    grants: decodeGrants(td.primaryType, td.message, domain.verifyingContract ?? null),
    message: td.message,
  };
}
