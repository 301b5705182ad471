/**
 * Signing worker thread. Holds a copy of the keyring key (sent once by the
 * main thread); each job carries a wrapped key blob, which is unwrapped,
 * used and wiped here. Errors go back as { code, message } only — never a
 * stack, never bytes of the request.
 */
import { parentPort } from 'node:worker_threads';
import { wipe } from '../common/bytes.js';
import { isSignerError } from '../common/errors.js';
import type { JsonLike } from '../common/cbor-json.js';
import type { KeyKind, SignOp } from '../common/protocol/enclave-api.js';
import { unwrapKey } from './kms/wrapped-key.js';
import { runOperation } from './operations.js';

export type WorkerIn =
  | { t: 'keyring'; keyringId: string; key: Uint8Array }
  | { t: 'lock' }
  | { t: 'job'; id: number; op: SignOp; keyId: string; kind: KeyKind; keyringId: string; blob: Uint8Array; request: Record<string, JsonLike> };

export type WorkerOut =
  | { t: 'done'; id: number; result: unknown }
  | { t: 'fail'; id: number; error: { code: string; message: string; field?: string } };

let keyring: { id: string; key: Uint8Array } | undefined;

function handle(msg: WorkerIn): WorkerOut | undefined {
  if (msg.t === 'keyring') {
    if (keyring) wipe(keyring.key);
    keyring = { id: msg.keyringId, key: msg.key };
    return undefined;
  }
  if (msg.t === 'lock') {
    if (keyring) wipe(keyring.key);
    keyring = undefined;
    return undefined;
  }
  if (!keyring) return { t: 'fail', id: msg.id, error: { code: 'KEYRING_LOCKED', message: 'no keyring is unlocked in this enclave' } };
  if (msg.keyringId !== keyring.id) {
    return { t: 'fail', id: msg.id, error: { code: 'KEYRING_MISMATCH', message: `key ${msg.keyId} belongs to keyring ${msg.keyringId}, not the unlocked ${keyring.id}` } };
  }
  let secret: Uint8Array | undefined;
  try {
    secret = unwrapKey(keyring.key, { keyringId: keyring.id, keyId: msg.keyId, kind: msg.kind }, msg.blob);
    return { t: 'done', id: msg.id, result: runOperation(msg.op, msg.kind, secret, msg.request) };
  } catch (e) {
    if (isSignerError(e)) {
      const j = e.toJSON() as { code: string; message: string; field?: string };
      return { t: 'fail', id: msg.id, error: j.field === undefined ? { code: j.code, message: j.message } : { code: j.code, message: j.message, field: j.field } };
    }
    return { t: 'fail', id: msg.id, error: { code: 'INTERNAL', message: 'signing failed with an internal error' } };
  } finally {
    wipe(secret);
  }
}

parentPort?.on('message', (msg: WorkerIn) => {
  const out = handle(msg);
  if (out) parentPort!.postMessage(out);
});
