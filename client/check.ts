/**
 * The signer's answer checked against the request. The parent host is not
 * trusted (docs/threat-model.md): whoever controls it can answer a signing
 * request with anything — a signature by another key, or a transaction the
 * enclave signed for someone else's request. The adapters recover the signer
 * of every signature and compare every transaction field they asked for, and
 * refuse an answer that does not match before the caller can broadcast it.
 */
import { EnclaveSignerRpcError } from './errors.js';

const QUANTITY = ['value', 'nonce', 'gas', 'gasPrice', 'maxFeePerGas', 'maxPriorityFeePerGas', 'maxFeePerBlobGas', 'chainId'] as const;

/** The signer's answer is not what was asked for: never use it. */
export function answerMismatch(method: string, what: string): EnclaveSignerRpcError {
  return new EnclaveSignerRpcError(method, -32603, `the signer's answer does not match the request: ${what}`, {
    code: 'CLIENT_ANSWER_MISMATCH',
    hint: 'do not broadcast it; the signing host may be compromised',
  });
}

function quantity(v: unknown): bigint | undefined {
  if (v === undefined || v === null) return undefined;
  return BigInt(v as string | number | bigint);
}

function bytes(v: unknown): string {
  return typeof v === 'string' && v !== '0x' ? v.toLowerCase() : '';
}

/**
 * Compares the fields of the request (JSON-RPC form) with those decoded from
 * the signed transaction (same names; quantities as bigint/number/hex).
 * `recovered` is the sender recovered from the signature.
 */
export function checkSignedTransaction(request: Record<string, unknown>, signed: Record<string, unknown>, recovered: string, address: string): void {
  const method = 'eth_signTransaction';
  if (recovered.toLowerCase() !== address.toLowerCase()) throw answerMismatch(method, `signed by ${recovered}, not ${address}`);
  for (const k of QUANTITY) {
    // An absent value is 0 (what the enclave signs); other absent fields were filled by the signer.
    const want = k === 'value' ? (quantity(request[k]) ?? 0n) : quantity(request[k]);
    // Decoders omit zero fields (viem: a zero value): absent means 0.
    if (want !== undefined && (quantity(signed[k]) ?? 0n) !== want) throw answerMismatch(method, `${k} is ${String(signed[k])}, asked for ${want}`);
  }
  const to = (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : null);
  // Always compared: no `to` is a contract creation, no data is empty data.
  if (to(request.to) !== to(signed.to)) throw answerMismatch(method, `to is ${String(signed.to ?? 'none')}, asked for ${String(request.to ?? 'none (contract creation)')}`);
  if (bytes(request.data ?? request.input) !== bytes(signed.data)) throw answerMismatch(method, 'data differs from the request');
}

/** A signature must recover to the key's address. */
export function checkSigner(method: string, recovered: string, address: string): void {
  if (recovered.toLowerCase() !== address.toLowerCase()) throw answerMismatch(method, `signed by ${recovered}, not ${address}`);
}
