/**
 * Work limits of the signers (docs/signers.md, "Limits"). They bound what one
 * request can cost a signing worker, whatever the (untrusted) parent sends;
 * the job deadline (enclave/worker-pool.ts) bounds the rest.
 *
 * - BIP32 paths: real wallets use 3–6 levels (BIP44/49/84/86: 5, BIP48: 6,
 *   Electrum: 2); Ledger's firmware caps paths at 10. 16 leaves room for
 *   custom schemes; each level costs one EC multiplication.
 * - PSBTs: @scure/btc-signer recomputes the transaction-wide sighash parts
 *   for every input, so signing cost grows with inputs × (inputs + outputs).
 *   256 inputs and 1024 outputs cover consolidations and payout batches.
 * - Derivations: each distinct path prefix is derived once per request
 *   (cached); at most `maxDerivationSteps` child derivations per request.
 */
export const SIGNER_LIMITS = {
  /** Levels below `m` in any BIP32 path. */
  maxPathDepth: 16,
  /** Bytes of a PSBT (decoded). */
  maxPsbtBytes: 512 * 1024,
  maxPsbtInputs: 256,
  maxPsbtOutputs: 1024,
  /** bip32Derivation / tapBip32Derivation entries naming our fingerprint, over all inputs. */
  maxPsbtOwnDerivations: 512,
  /** BIP32 child derivations computed for one request (after caching shared prefixes). */
  maxDerivationSteps: 2048,
} as const;

export type SignerLimit = keyof typeof SIGNER_LIMITS;

/** "psbt: 300 inputs is over the limit of 256 (maxPsbtInputs)" — names the field and the limit. */
export function overLimit(what: string, limit: SignerLimit, value: number = SIGNER_LIMITS[limit]): string {
  return `${what} is over the limit of ${value} (${limit})`;
}
