/**
 * What proxy mode (`--downstream URL`) adds to the signing socket: an
 * explicit allowlist of read methods forwarded to the node as they are, and
 * `eth_sendTransaction` (send-transaction.ts). Nothing else is forwarded —
 * not a signing method (eth_sign*, personal_sign, eth_signTypedData*,
 * signer_*: those are answered here, by the enclave, or are -32601), not
 * eth_accounts (the keystore answers it), not an unknown name (-32601, as
 * without a downstream). eth_chainId and net_version are answered from the
 * configured chain id, which startup has checked against the node
 * (`checkDownstreamChain`).
 */
import { chainIdQuantity } from '../common/rpc/sign-call.js';
import type { Downstream } from './downstream.js';
import { createNonceTracker } from './downstream-nonces.js';
import { ParentError, invalidParam } from './errors.js';
import type { Method } from './methods.js';
import { describe } from '../common/rpc/params.js';
import { sendTransactionMethod } from './send-transaction.js';

/** Read methods forwarded to the node (docs/json-rpc.md, "Proxy mode"). */
export const FORWARDED_METHODS = [
  'eth_blockNumber',
  'eth_call',
  'eth_estimateGas',
  'eth_feeHistory',
  'eth_gasPrice',
  'eth_getBalance',
  'eth_getBlockByHash',
  'eth_getBlockByNumber',
  'eth_getBlockReceipts',
  'eth_getBlockTransactionCountByHash',
  'eth_getBlockTransactionCountByNumber',
  'eth_getCode',
  'eth_getLogs',
  'eth_getProof',
  'eth_getStorageAt',
  'eth_getTransactionByBlockHashAndIndex',
  'eth_getTransactionByBlockNumberAndIndex',
  'eth_getTransactionByHash',
  'eth_getTransactionCount',
  'eth_getTransactionReceipt',
  'eth_maxPriorityFeePerGas',
  'eth_blobBaseFee',
  'eth_syncing',
  'web3_clientVersion',
  // Already-signed bytes: broadcasting them needs no key (clients that sign with eth_signTransaction send them this way).
  'eth_sendRawTransaction',
] as const;

/** Most params any forwarded method takes (eth_call with state overrides and block overrides: 4). */
const MAX_FORWARDED_PARAMS = 4;

function forward(node: Downstream, name: string): Method {
  return async (params, ctx) => {
    const list = params === undefined ? [] : params;
    if (!Array.isArray(list)) throw invalidParam('params', `expected an array, got ${describe(params)}`);
    if (list.length > MAX_FORWARDED_PARAMS) throw invalidParam('params', `${name} takes at most ${MAX_FORWARDED_PARAMS} params, got ${list.length}`);
    return node.call(name, list, ctx.cancellation.signal);
  };
}

/** The methods proxy mode adds; `signTransaction` is the socket's own eth_signTransaction. */
export function downstreamMethods(node: Downstream, signTransaction: Method): [string, Method][] {
  const out: [string, Method][] = FORWARDED_METHODS.map((name) => [name, forward(node, name)]);
  out.push(['eth_sendTransaction', sendTransactionMethod({ node, nonces: createNonceTracker(), signTransaction })]);
  return out;
}

/**
 * The chain id to serve with a downstream node: the node's own, which a
 * configured `--chain-id` must equal. A contradiction (or a node that cannot
 * say) refuses the start — a signer that fills transactions from chain A and
 * signs them for chain B would produce transactions that never mine, or that
 * replay where they should not.
 */
export async function checkDownstreamChain(node: Downstream, configured: number | undefined): Promise<number> {
  let answer: unknown;
  try {
    answer = await node.call('eth_chainId', []);
  } catch (e) {
    throw new ParentError('PARENT_CONFIG', `--downstream ${node.describe}: cannot read the node's chain id: ${(e as Error).message}`, {
      hint: 'start the node first (the proxy checks its chain id at startup), or fix --downstream',
      cause: e,
    });
  }
  if (typeof answer !== 'string' || !/^0x(?:0|[1-9a-fA-F][0-9a-fA-F]{0,13})$/.test(answer) || !Number.isSafeInteger(Number(answer)) || Number(answer) < 1) {
    throw new ParentError('PARENT_CONFIG', `--downstream ${node.describe}: eth_chainId answered ${JSON.stringify(String(answer).slice(0, 40))}, not a chain id`);
  }
  const nodeChain = Number(answer);
  if (configured !== undefined && configured !== nodeChain) {
    throw new ParentError('PARENT_CONFIG', `--chain-id ${configured} contradicts the downstream node ${node.describe}, whose chain id is ${nodeChain} (${chainIdQuantity(nodeChain)})`, {
      hint: `use --chain-id ${nodeChain}, or point --downstream at a node of chain ${configured}`,
    });
  }
  return nodeChain;
}
