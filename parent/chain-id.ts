/**
 * The configured chain id (`--chain-id N`): what `eth_chainId` and
 * `net_version` answer, and what every `eth_signTransaction` is checked
 * against. Without one the signer serves neither method (-32601) and a
 * transaction must name its chain itself, as before.
 *
 * A transaction without `chainId` is signed for N — what geth's
 * `eth_signTransaction` and clef do (both fill the configured chain id and
 * refuse a different one); ethers' JsonRpcSigner never sends a chainId, so an
 * unmodified ethers client needs this. A transaction naming another chain is
 * refused: it would be valid (and replayable) on that chain only.
 *
 * The enclave still signs exactly the chainId it is handed; this check is a
 * guard against client mistakes, not a security boundary (the parent is
 * untrusted — a chain restriction that must hold belongs in the enclave policy).
 */
import { positional } from '../common/rpc/params.js';
import { chainIdQuantity } from '../common/rpc/sign-call.js';

/** EIP-2294's bound on chain ids, (2^64 − 1) / 2 − 36, is above 2^53: we stop at the safe integers so every client's number type holds it. */
export const MAX_CHAIN_ID = Number.MAX_SAFE_INTEGER;

/** `eth_chainId` (hex quantity) and `net_version` (decimal string), as Ethereum nodes answer them; none without a chain id. */
export function chainIdMethods(chainId: number | undefined): [string, (params: unknown) => Promise<string>][] {
  if (chainId === undefined) return [];
  const hex = chainIdQuantity(chainId);
  const dec = String(chainId);
  return [
    [
      'eth_chainId',
      async (params) => {
        positional(params, 0, 0, '(eth_chainId takes no params)');
        return hex;
      },
    ],
    [
      'net_version',
      async (params) => {
        positional(params, 0, 0, '(net_version takes no params)');
        return dec;
      },
    ],
  ];
}
