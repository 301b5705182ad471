/**
 * One call to the enclave on a bridge connection, as the gate (gate.ts) makes
 * it: JSON-shaped params to CBOR, the bridge's failures to the errors clients
 * see, the answer back to JSON. And the attestation challenge: a fresh
 * 32-byte nonce, and a document that must verify against the gate's
 * configuration and carry that nonce.
 */
import { randomBytes } from 'node:crypto';
import { MAX_DOCUMENT_BYTES } from '../attestation/verify.js';
import { BridgeError, BridgeRemoteError, type BridgePeer } from '../common/bridge/index.js';
import type { Cancellation } from '../common/cancellation.js';
import { cborToJson, jsonToCbor, type JsonLike } from '../common/cbor-json.js';
import { asBytes, asRecord, type EnclaveMethod } from '../common/protocol/enclave-api.js';
import { ParentError, invalidParam } from './errors.js';
import type { EnclaveAttestation, EnclaveVerifier } from './verify-enclave.js';

/** How long the enclave has to answer an attestation challenge. */
const ATTEST_TIMEOUT_MS = 10_000;

/** Bridge failures as the parent reports them to clients. The enclave's own errors pass through. */
export function mapBridgeError(e: unknown, method: string): unknown {
  if (e instanceof BridgeRemoteError) {
    // The enclave could not read our frame: the request is at fault (the parent's own checks should have caught it).
    if (e.code === 'BRIDGE_BAD_FRAME' || e.code === 'BRIDGE_FRAME_TOO_LARGE') return invalidParam('params', `the enclave refused the request: ${e.message}`);
    return e;
  }
  if (e instanceof BridgeError) {
    switch (e.code) {
      case 'BRIDGE_DISCONNECTED':
        return new ParentError('PARENT_ENCLAVE_UNAVAILABLE', `enclave unavailable: the connection was lost before "${method}" was answered`, {
          cause: e,
          hint: 'the parent reconnects and re-attests; retry the request',
        });
      case 'BRIDGE_TIMEOUT':
        return new ParentError('PARENT_ENCLAVE_UNAVAILABLE', `enclave unavailable: ${e.message}`, { cause: e });
      case 'BRIDGE_FRAME_TOO_LARGE':
      case 'BRIDGE_ENCODE':
        return invalidParam('params', `cannot be sent to the enclave: ${e.message}`);
      case 'BRIDGE_BAD_FRAME':
        // Our request went out; the enclave's answer could not be read (only that request fails).
        return new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', `the enclave's answer to "${method}" could not be read: ${e.message}`, { cause: e });
      default:
        return e;
    }
  }
  return e;
}

/** Sends `method` with `params` on `peer` and returns the answer as JSON; every failure is a client-facing error. */
export async function callEnclave(peer: BridgePeer, method: EnclaveMethod, params: Record<string, unknown>, deadlineMs: number, cancellation?: Cancellation): Promise<JsonLike> {
  let body;
  try {
    body = jsonToCbor(params);
  } catch (e) {
    throw invalidParam('params', (e as Error).message);
  }
  let res;
  try {
    res = await peer.request(method, body, cancellation ? { deadlineMs, cancellation } : { deadlineMs });
  } catch (e) {
    throw mapBridgeError(e, method);
  }
  try {
    return cborToJson(res);
  } catch (e) {
    throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', `the enclave's answer to "${method}" is not JSON-shaped: ${(e as Error).message}`, { cause: e });
  }
}

/** Challenges the enclave on `peer` and verifies its document. Throws on any failure. */
export async function attestEnclave(peer: BridgePeer, verifier: EnclaveVerifier): Promise<EnclaveAttestation> {
  const nonce = new Uint8Array(randomBytes(32));
  const res = await callEnclave(peer, 'attest', { nonce }, ATTEST_TIMEOUT_MS);
  let document: Uint8Array;
  try {
    document = asBytes(asRecord(res, 'attest result').document, 'attest result.document', 1, MAX_DOCUMENT_BYTES);
  } catch (e) {
    throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', (e as Error).message, { cause: e });
  }
  return verifier(document, nonce);
}
