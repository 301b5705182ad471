/**
 * Proxy mode's `eth_sendTransaction` (issue 12 §2), as Web3Signer and clef
 * do it: fill what the transaction leaves out from the downstream node, sign
 * through the very path `eth_signTransaction` takes (so the enclave and its
 * policy decide, exactly as for a client that fills the transaction itself),
 * broadcast with `eth_sendRawTransaction`, and answer the hash.
 *
 * Filled when absent (a field the client gives is kept as given):
 *   nonce   the node's `pending` count, raised to what this proxy sent last + 1 (downstream-nonces.ts)
 *   gas     eth_estimateGas + 20 % (GAS_MARGIN), at most the latest block's gas limit
 *   fees    EIP-1559: maxPriorityFeePerGas = eth_maxPriorityFeePerGas,
 *           maxFeePerGas = 2 × latest baseFeePerGas + priority (survives six full blocks of base-fee rise);
 *           a node without a base fee (pre-London) → legacy gasPrice = eth_gasPrice.
 *           A transaction that names gasPrice, or type 0x0/0x1, stays legacy.
 *
 * Signed once, never again: when the node refuses the signed transaction or
 * does not answer, the client gets that error with the transaction's hash
 * (so it can look it up), and the proxy does not re-sign or re-send it.
 */
import { keccak_256 } from '@noble/hashes/sha3.js';
import { DownstreamError, type Downstream } from './downstream.js';
import type { NonceTracker } from './downstream-nonces.js';
import { invalidParam } from './errors.js';
import type { Method, MethodContext } from './methods.js';
import { describe, isPlainObject, positional, readAddress } from '../common/rpc/params.js';

/** Gas estimate × 12 / 10: estimates are exact for the state they ran on; a little state change between estimate and inclusion must not make the transaction run out of gas. */
export const GAS_MARGIN = { num: 12n, den: 10n } as const;

const QUANTITY = /^0x(?:0|[1-9a-fA-F][0-9a-fA-F]{0,63})$/;

function given(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function quantity(v: unknown, what: string, node: Downstream): bigint {
  if (typeof v !== 'string' || !QUANTITY.test(v)) {
    throw new DownstreamError('DOWNSTREAM_BAD_RESPONSE', `downstream node ${node.describe} sent an invalid answer: ${what} is not a hex quantity`);
  }
  return BigInt(v);
}

const hex = (n: bigint) => `0x${n.toString(16)}`;

/** The call object eth_estimateGas needs: what the transaction does, without its fee/nonce fields. */
function estimateRequest(tx: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['from', 'to', 'value', 'data', 'input', 'accessList', 'authorizationList'] as const) if (given(tx[k])) out[k] = tx[k];
  return out;
}

function isLegacy(tx: Record<string, unknown>): boolean {
  if (given(tx.gasPrice)) return true;
  const t = tx.type;
  return t === '0x0' || t === '0x00' || t === 0 || t === 'legacy' || t === '0x1' || t === '0x01' || t === 1 || t === 'eip2930';
}

async function fillFees(tx: Record<string, unknown>, node: Downstream, signal: AbortSignal): Promise<void> {
  if (given(tx.maxFeePerGas) && given(tx.maxPriorityFeePerGas)) return;
  if (isLegacy(tx)) {
    if (!given(tx.gasPrice)) tx.gasPrice = hex(quantity(await node.call('eth_gasPrice', [], signal), 'eth_gasPrice', node));
    return;
  }
  const block = await node.call('eth_getBlockByNumber', ['latest', false], signal);
  const baseFee = isPlainObject(block) ? block.baseFeePerGas : undefined;
  if (!given(baseFee)) {
    // Pre-London chain: no EIP-1559 fees to fill.
    if (given(tx.maxFeePerGas) || given(tx.maxPriorityFeePerGas) || given(tx.type)) {
      throw invalidParam('maxFeePerGas', `the downstream node's chain has no base fee (pre-London): send a legacy transaction`, 'omit the EIP-1559 fields and type, or give gasPrice');
    }
    tx.gasPrice = hex(quantity(await node.call('eth_gasPrice', [], signal), 'eth_gasPrice', node));
    return;
  }
  const base = quantity(baseFee, 'baseFeePerGas', node);
  const priority = given(tx.maxPriorityFeePerGas) ? undefined : quantity(await node.call('eth_maxPriorityFeePerGas', [], signal), 'eth_maxPriorityFeePerGas', node);
  if (priority !== undefined) tx.maxPriorityFeePerGas = hex(priority);
  if (!given(tx.maxFeePerGas)) tx.maxFeePerGas = hex(2n * base + BigInt(tx.maxPriorityFeePerGas as string));
  if (!given(tx.type)) tx.type = '0x2';
}

async function fillGas(tx: Record<string, unknown>, node: Downstream, signal: AbortSignal): Promise<void> {
  if (given(tx.gas)) return;
  const est = quantity(await node.call('eth_estimateGas', [estimateRequest(tx)], signal), 'eth_estimateGas', node);
  let gas = (est * GAS_MARGIN.num) / GAS_MARGIN.den;
  const block = await node.call('eth_getBlockByNumber', ['latest', false], signal);
  if (isPlainObject(block) && typeof block.gasLimit === 'string' && QUANTITY.test(block.gasLimit)) {
    const limit = BigInt(block.gasLimit);
    if (gas > limit) gas = est > limit ? est : limit;
  }
  tx.gas = hex(gas);
}

export interface SendTransactionDeps {
  node: Downstream;
  nonces: NonceTracker;
  /** The signing socket's own eth_signTransaction (parent/methods.ts): the enclave signs under its policy. */
  signTransaction: Method;
}

/** The hash of a signed transaction's bytes (what the node answers for it). */
export function transactionHash(raw: string): string {
  return `0x${Buffer.from(keccak_256(Buffer.from(raw.slice(2), 'hex'))).toString('hex')}`;
}

function afterSigning(e: unknown, hash: string, node: Downstream): unknown {
  if (!(e instanceof DownstreamError)) return e;
  const what = e.code === 'DOWNSTREAM_ERROR' ? 'refused' : 'may not have received';
  const message = `the downstream node ${what} the signed transaction ${hash} (it was signed once and is not signed again): ${e.message}`;
  const hint = e.code === 'DOWNSTREAM_ERROR' ? 'fix what the node says and send again' : `look the hash up with eth_getTransactionByHash before sending again (${node.describe})`;
  return new DownstreamError(e.code, message, { hint, cause: e, ...(e.nodeError ? { nodeError: { ...e.nodeError, message: `${e.nodeError.message} (signed transaction ${hash}, not re-signed)` } } : {}) });
}

export function sendTransactionMethod(deps: SendTransactionDeps): Method {
  const { node, nonces } = deps;
  return async (params: unknown, ctx: MethodContext) => {
    const [given0] = positional(params, 1, 1, '[transaction]');
    if (!isPlainObject(given0)) throw invalidParam('params[0]', `expected a transaction object, got ${describe(given0)}`);
    if (!given(given0.from)) throw invalidParam('from', 'required: the address of the key that signs');
    const from = readAddress(given0.from, 'from');
    const key = await ctx.keystore.getKeyByAddress(from);
    if (!key || key.kind !== 'secp256k1') throw invalidParam('from', 'no secp256k1 key with this address in the keystore', 'eth_accounts lists the addresses');
    const tx: Record<string, unknown> = { ...given0 };
    const signal = ctx.cancellation.signal;
    await fillFees(tx, node, signal);
    await fillGas(tx, node, signal);

    return nonces.withKey(from, async (floor) => {
      signal.throwIfAborted();
      const ownNonce = !given(tx.nonce);
      let nonce: bigint | undefined;
      if (ownNonce) {
        const pending = quantity(await node.call('eth_getTransactionCount', [from, 'pending'], signal), 'eth_getTransactionCount', node);
        nonce = pending > floor ? pending : floor;
        tx.nonce = hex(nonce);
      }
      const raw = (await deps.signTransaction([tx], ctx)) as string;
      const hash = transactionHash(raw);
      let answer: unknown;
      try {
        // Not the client's signal: once signed, the broadcast goes through even if the client left.
        answer = await node.call('eth_sendRawTransaction', [raw]);
      } catch (e) {
        if (ownNonce) nonces.forget(from);
        throw afterSigning(e, hash, node);
      }
      if (nonce !== undefined) nonces.sent(from, nonce);
      if (typeof answer === 'string' && answer.toLowerCase() !== hash) {
        throw new DownstreamError('DOWNSTREAM_BAD_RESPONSE', `downstream node ${node.describe} answered hash ${answer.slice(0, 80)} for the signed transaction ${hash}`);
      }
      return hash;
    });
  };
}
