/**
 * The intent of `eth_signTransaction`, built from `parseEthTransaction` — the same parsed
 * value `signEthTransaction` encodes and signs.
 */
import type { EthTransaction } from '../signers/eth-transaction.js';
import { decodeCall } from './calldata.js';
import type { TransactionIntent } from './intent.js';

/** EIP-4844: each blob uses 2^17 blob gas. */
const GAS_PER_BLOB = 131072n;

export function transactionIntent(tx: EthTransaction): TransactionIntent {
  const maxFeePerGas = tx.type === 'legacy' || tx.type === 'eip2930' ? tx.gasPrice : tx.maxFeePerGas;
  const maxPriorityFeePerGas = tx.type === 'legacy' || tx.type === 'eip2930' ? null : tx.maxPriorityFeePerGas;
  const blobCount = tx.type === 'eip4844' ? tx.blobVersionedHashes.length : 0;
  const maxFeePerBlobGas = tx.type === 'eip4844' ? tx.maxFeePerBlobGas : null;
  const maxFeeWei = tx.gas * maxFeePerGas + (maxFeePerBlobGas ?? 0n) * GAS_PER_BLOB * BigInt(blobCount);
  return {
    type: tx.type,
    chainId: tx.chainId,
    to: tx.to,
    contractCreation: tx.to === null,
    value: tx.value,
    nonce: tx.nonce,
    data: tx.data,
    call: tx.to === null ? { kind: 'none' } : decodeCall(tx.data),
    fees: { gas: tx.gas, maxFeePerGas, maxPriorityFeePerGas, maxFeePerBlobGas, blobCount, maxFeeWei },
    delegates: tx.type === 'eip7702' ? tx.authorizationList.map((a) => a.address) : [],
  };
}
