/**
 * The signing methods of the JSON-RPC surface, read into the enclave call they
 * ask for: which operation, which key, and the request the worker signs. One
 * translation, run by both sides:
 *
 *   parent   to find the key in the keystore and forward the call;
 *   enclave  for a request a principal signed (docs/principals.md): the
 *            signature covers the JSON-RPC method and params, so the enclave
 *            re-reads the call from exactly those params and signs what it read
 *            itself — never a translation the host made. A host that edits the
 *            params breaks the signature; a host that forwards another call
 *            than the params say is not listened to.
 *
 * The key is named by id or by address (`KeyRef`). The parent resolves it; the
 * enclave checks the key it was handed against it: the id against the blob's
 * AAD, the address against the address derived from the unwrapped key.
 *
 *   method                     op                          key       request
 *   eth_signTransaction        eth_signTransaction         tx.from   { tx }          (chainId: see txForChain)
 *   eth_sign                   eth_sign                    params[0] { data }
 *   personal_sign              personal_sign               params[1] { message }
 *   eth_signTypedData_v4       eth_signTypedData_v4        params[0] { typedData }
 *   signer_deriveKey           signer_deriveKey            keyId     { path }
 *   signer_signDigest          signer_signDigest           keyId     { digest, path? }
 *   signer_signSchnorr         signer_signSchnorr          keyId     { message, path? }
 *   signer_signPsbt            signer_signPsbt             keyId     { psbt }
 *   signer_signAuthorization   signer_signAuthorization    keyId|account { authorization, path? }
 */
import type { JsonLike } from '../cbor-json.js';
import type { KeyKind, SignOp } from '../protocol/enclave-api.js';
import { invalidParam } from './errors.js';
import { describe, isPlainObject, named, positional, readAddress, readBase64, readHexBytes, readKeyId, readPath, readQuantity } from './params.js';

/** Largest message / typed-data document / PSBT accepted (the HTTP body cap bounds it anyway). */
export const MAX_DATA_BYTES = 512 * 1024;

export type KeyRef = { readonly keyId: string; readonly field: string } | { readonly address: `0x${string}`; readonly field: string };

export interface SignCall {
  readonly op: SignOp;
  readonly key: KeyRef;
  /** Which kind of key the method needs (undefined: either). */
  readonly needs?: KeyKind;
  /** The request the enclave signs, for a key of `kind` (derivation paths depend on it). */
  request(kind: KeyKind): Record<string, JsonLike>;
}

export const SIGN_METHODS = [
  'eth_signTransaction',
  'eth_sign',
  'personal_sign',
  'eth_signTypedData_v4',
  'signer_deriveKey',
  'signer_signDigest',
  'signer_signSchnorr',
  'signer_signPsbt',
  'signer_signAuthorization',
] as const;
export type SignMethod = (typeof SIGN_METHODS)[number];

export function isSignMethod(m: string): m is SignMethod {
  return (SIGN_METHODS as readonly string[]).includes(m);
}

/** A chain id as a JSON-RPC quantity: 0x-prefixed hex, no leading zeros. */
export function chainIdQuantity(n: number): string {
  return `0x${n.toString(16)}`;
}

/**
 * The transaction's chain id checked against the configured one (`--chain-id`):
 * the transaction to sign (with `chainId` filled when it had none), or -32602
 * naming `chainId`. The enclave passes no configured id (the host's is not
 * evidence), so a signed transaction must name its chain itself.
 */
export function txForChain(tx: Record<string, unknown>, chainId: number | undefined): Record<string, unknown> {
  const given = tx.chainId === undefined || tx.chainId === null ? undefined : readQuantity(tx.chainId, 'chainId');
  if (chainId === undefined) {
    if (given === undefined) {
      throw invalidParam('chainId', 'required (never defaulted): a transaction is signed for one chain', 'set chainId to the id of the network the transaction is for (or start the signer with --chain-id N)');
    }
    return tx;
  }
  if (given === undefined) return { ...tx, chainId: chainIdQuantity(chainId) };
  const v = BigInt(given);
  if (v !== BigInt(chainId)) {
    throw invalidParam('chainId', `${v} is not this signer's chain (${chainId})`, `this signer is configured with --chain-id ${chainId}: sign for that chain, omit chainId, or use a signer configured for chain ${v}`);
  }
  return tx;
}

/** bip32-seed keys sign with a child: a path is required; secp256k1 keys take none. */
function pathFor(kind: KeyKind, v: unknown): string | undefined {
  if (kind === 'secp256k1') {
    if (v !== undefined) throw invalidParam('path', 'only bip32-seed keys take a derivation path');
    return undefined;
  }
  if (v === undefined) throw invalidParam('path', 'required for bip32-seed keys (the child key to sign with)');
  return readPath(v);
}

const byId = (v: unknown, field = 'keyId'): KeyRef => ({ keyId: readKeyId(v, field), field });
const byAddress = (v: unknown, field: string): KeyRef => ({ address: readAddress(v, field), field });
const fixed = (r: Record<string, JsonLike>) => () => r;

/** Reads one signing method's params; throws InvalidParamError naming the field. */
export function readSignCall(method: SignMethod, params: unknown, opts: { chainId?: number } = {}): SignCall {
  switch (method) {
    case 'eth_signTransaction': {
      const [tx] = positional(params, 1, 1, '[transaction]');
      if (!isPlainObject(tx)) throw invalidParam('params[0]', `expected a transaction object, got ${describe(tx)}`);
      if (tx.from === undefined || tx.from === null) throw invalidParam('from', 'required: the address of the key that signs');
      const key = byAddress(tx.from, 'from');
      return { op: method, key, needs: 'secp256k1', request: fixed({ tx: txForChain(tx, opts.chainId) as Record<string, JsonLike> }) };
    }
    case 'eth_sign': {
      const [address, data] = positional(params, 2, 2, '[address, data]');
      const key = byAddress(address, 'params[0]');
      return { op: method, key, needs: 'secp256k1', request: fixed({ data: readHexBytes(data, 'params[1]', { max: MAX_DATA_BYTES }) }) };
    }
    case 'personal_sign': {
      const [data, address] = positional(params, 2, 2, '[data, address]');
      if (typeof data !== 'string') throw invalidParam('params[0]', `expected the message as 0x hex or text, got ${describe(data)}`);
      if (Buffer.byteLength(data) > MAX_DATA_BYTES) throw invalidParam('params[0]', `message larger than ${MAX_DATA_BYTES} bytes`);
      if (typeof address === 'string' && !/^0x[0-9a-fA-F]{40}$/.test(address) && /^0x[0-9a-fA-F]{40}$/.test(data)) {
        throw invalidParam('params[1]', 'expected the signing address', 'personal_sign takes [data, address] (eth_sign takes [address, data])');
      }
      return { op: method, key: byAddress(address, 'params[1]'), needs: 'secp256k1', request: fixed({ message: data }) };
    }
    case 'eth_signTypedData_v4': {
      const [address, raw] = positional(params, 2, 2, '[address, typedData]');
      const key = byAddress(address, 'params[0]');
      let typedData: unknown = raw;
      if (typeof raw === 'string') {
        if (raw.length > MAX_DATA_BYTES) throw invalidParam('params[1]', `typed data larger than ${MAX_DATA_BYTES} characters`);
        try {
          typedData = JSON.parse(raw);
        } catch {
          throw invalidParam('params[1]', 'typed data is not valid JSON');
        }
      }
      if (!isPlainObject(typedData)) throw invalidParam('params[1]', `expected the EIP-712 typed data (object or JSON string), got ${describe(typedData)}`);
      return { op: method, key, needs: 'secp256k1', request: fixed({ typedData: typedData as Record<string, JsonLike> }) };
    }
    case 'signer_deriveKey': {
      const p = named(params, ['keyId', 'path']);
      const key = byId(p.keyId);
      if (p.path === undefined) throw invalidParam('path', 'required');
      return { op: method, key, needs: 'bip32-seed', request: fixed({ path: readPath(p.path) }) };
    }
    case 'signer_signDigest':
    case 'signer_signSchnorr': {
      const field = method === 'signer_signDigest' ? 'digest' : 'message';
      const p = named(params, ['keyId', field, 'path']);
      const key = byId(p.keyId);
      const value = readHexBytes(p[field], field, { length: 32 });
      return {
        op: method,
        key,
        request: (kind) => {
          const path = pathFor(kind, p.path);
          return path === undefined ? { [field]: value } : { [field]: value, path };
        },
      };
    }
    case 'signer_signPsbt': {
      const p = named(params, ['keyId', 'psbt']);
      const key = byId(p.keyId);
      return { op: method, key, needs: 'bip32-seed', request: fixed({ psbt: readBase64(p.psbt, 'psbt', MAX_DATA_BYTES) }) };
    }
    case 'signer_signAuthorization': {
      const p = named(params, ['keyId', 'account', 'chainId', 'address', 'contractAddress', 'nonce', 'path']);
      if ((p.keyId === undefined) === (p.account === undefined)) throw invalidParam('keyId', 'give exactly one of keyId or account (the signing address)');
      const key = p.keyId !== undefined ? byId(p.keyId) : byAddress(p.account, 'account');
      if (p.chainId === undefined) throw invalidParam('chainId', 'required (never defaulted)');
      if (p.nonce === undefined) throw invalidParam('nonce', 'required');
      if ((p.address === undefined) === (p.contractAddress === undefined)) throw invalidParam('address', 'give exactly one of address or contractAddress (the delegate contract)');
      const authorization: Record<string, JsonLike> = {
        chainId: readQuantity(p.chainId, 'chainId'),
        address: p.address !== undefined ? readAddress(p.address, 'address') : readAddress(p.contractAddress, 'contractAddress'),
        nonce: readQuantity(p.nonce, 'nonce'),
      };
      return {
        op: method,
        key,
        request: (kind): Record<string, JsonLike> => {
          const path = pathFor(kind, p.path);
          return path === undefined ? { authorization } : { authorization, path };
        },
      };
    }
  }
}

/** The kind check both sides make before signing: a method that needs one kind of key names it. */
export function checkKind(call: SignCall, kind: KeyKind, method: string): void {
  if (call.needs !== undefined && call.needs !== kind) throw invalidParam(call.key.field, `${method} needs a ${call.needs} key, this one is ${kind}`);
}
