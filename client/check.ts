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

/** A transaction type as a number: JSON-RPC quantity, ethers number, or viem's name. */
const TYPE_NAMES: Record<string, number> = { legacy: 0, eip2930: 1, eip1559: 2, eip4844: 3, eip7702: 4 };
function txType(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string' && Object.hasOwn(TYPE_NAMES, v)) return TYPE_NAMES[v];
  return Number(BigInt(v as string | number | bigint));
}

/** A list field in canonical form (absent is empty): compared as JSON. */
function accessListOf(v: unknown): string {
  const list = Array.isArray(v) ? v : [];
  return JSON.stringify(list.map((e: { address?: unknown; storageKeys?: unknown }) => [bytes(e?.address), (Array.isArray(e?.storageKeys) ? e.storageKeys : []).map((k: unknown) => quantity(k)?.toString(16))]));
}
function hashesOf(v: unknown): string {
  return JSON.stringify((Array.isArray(v) ? v : []).map(bytes));
}
/** EIP-7702 authorizations: viem's ({r, s, yParity}) or ethers' ({signature: {r, s, yParity}}) form. */
function authorizationsOf(v: unknown): string {
  return JSON.stringify(
    (Array.isArray(v) ? v : []).map((a: Record<string, unknown>) => {
      const sig = (a?.signature ?? a) as Record<string, unknown>;
      return [bytes(a?.address ?? a?.contractAddress), quantity(a?.chainId)?.toString(), quantity(a?.nonce)?.toString(), quantity(sig.r)?.toString(), quantity(sig.s)?.toString(), quantity(sig.yParity)?.toString()];
    }),
  );
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
  // The type when one was asked for; the lists always (absent is empty): an answer must not add an
  // access list, blobs or — worst — an EIP-7702 authorization delegating the account to a contract.
  const wantType = txType(request.type);
  if (wantType !== undefined && txType(signed.type) !== wantType) throw answerMismatch(method, `type is ${String(signed.type)}, asked for ${wantType}`);
  if (accessListOf(request.accessList) !== accessListOf(signed.accessList)) throw answerMismatch(method, 'accessList differs from the request');
  if (hashesOf(request.blobVersionedHashes) !== hashesOf(signed.blobVersionedHashes)) throw answerMismatch(method, 'blobVersionedHashes differ from the request');
  if (authorizationsOf(request.authorizationList) !== authorizationsOf(signed.authorizationList)) throw answerMismatch(method, 'authorizationList differs from the request');
}

/** A signature must recover to the key's address. */
export function checkSigner(method: string, recovered: string, address: string): void {
  if (recovered.toLowerCase() !== address.toLowerCase()) throw answerMismatch(method, `signed by ${recovered}, not ${address}`);
}

/**
 * The answer must be 0x-hex (of `size` bytes when given). ethers' Transaction.from and
 * Signature.from, and viem's recover functions, also take objects: without this an object
 * answer would verify and be handed to the caller as if it were the hex string.
 */
export function hexAnswer(method: string, v: unknown, size?: number): string {
  if (typeof v !== 'string' || !/^0x(?:[0-9a-fA-F]{2})*$/.test(v) || (size !== undefined && v.length !== 2 + 2 * size)) {
    throw answerMismatch(method, size === undefined ? 'not a 0x-hex string' : `not a ${size}-byte 0x-hex string`);
  }
  return v;
}
