/**
 * Signing worker thread. Holds a copy of the keyring key (sent by the main
 * thread, again to every replacement worker). A job runs in two steps:
 *
 *   1. `job`: unwrap the blob (AES-GCM authenticates key id, kind and
 *      keyring), derive the key's public facts from the secret, parse the
 *      request once into its typed intent, and send both back (`facts`).
 *      Nothing is signed yet; the secret and the parsed value stay here.
 *   2. `go` (the enclave's policy allowed it and the decision was recorded):
 *      sign and answer `done`; or `abort`: wipe and forget.
 *
 * So the policy only ever sees facts derived inside the enclave, and a
 * decision is recorded only for a key that authenticated. A key that
 * authenticated stays in this worker's key cache (key-cache.ts) for a bounded
 * time, keyed by keyring, key id, kind and the exact blob bytes, so it signs
 * again without the unwrap and the derivation of its facts. Errors go back as
 * { code, message } only — never a stack, never bytes of the request.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { wipe } from '../common/bytes.js';
import { isSignerError, SignerError } from '../common/errors.js';
import type { JsonLike } from '../common/cbor-json.js';
import type { KeyKind, SignerFacts, SignOp } from '../common/protocol/enclave-api.js';
import { createKeyCache, DEFAULT_KEY_CACHE, type KeyCacheOptions } from './key-cache.js';
import { unwrapKey } from './kms/wrapped-key.js';
import type { Intent } from './policy/intent.js';
import { keyFacts, prepareOperation, type PreparedOperation } from './operations.js';

/** A signing job: the op, the key's wrapped record (id, kind and keyring bound by the blob's AAD) and the request. */
export interface SignJob {
  op: SignOp;
  keyId: string;
  kind: KeyKind;
  keyringId: string;
  blob: Uint8Array;
  request: Record<string, JsonLike>;
}

export type WorkerIn =
  | { t: 'keyring'; keyringId: string; key: Uint8Array }
  | { t: 'lock' }
  /** The pool shuts down: wipe everything and exit. */
  | { t: 'close' }
  | (SignJob & {
      t: 'job';
      id: number;
      /** Absolute deadline (Date.now() ms): past it the job fails instead of signing. */
      deadline: number;
    })
  | { t: 'go'; id: number }
  | { t: 'abort'; id: number };

export type WorkerOut =
  /** The key's facts and the request's typed intent, parsed once here (the value `go` signs). */
  | { t: 'facts'; id: number; facts: SignerFacts; intent: Intent }
  | { t: 'done'; id: number; result: unknown }
  | { t: 'fail'; id: number; error: { code: string; message: string; field?: string } };

/** What the pool passes as workerData. */
export interface WorkerConfig {
  keyCache?: Pick<KeyCacheOptions, 'maxEntries' | 'ttlMs'>;
}

let keyring: { id: string; key: Uint8Array } | undefined;
const cache = createKeyCache({ ...DEFAULT_KEY_CACHE, ...((workerData as WorkerConfig | null)?.keyCache ?? {}) });
/** Jobs whose key authenticated and that wait for the enclave's decision. */
const pending = new Map<number, { prepared: PreparedOperation; deadline: number }>();

function failure(id: number, e: unknown): WorkerOut {
  if (isSignerError(e)) {
    const j = e.toJSON() as { code: string; message: string; field?: string };
    return { t: 'fail', id, error: j.field === undefined ? { code: j.code, message: j.message } : { code: j.code, message: j.message, field: j.field } };
  }
  return { t: 'fail', id, error: { code: 'INTERNAL', message: 'signing failed with an internal error' } };
}

function expired(): SignerError {
  return new SignerError('JOB_DEADLINE_EXCEEDED', 'the request ran out of time before it was signed; nothing was signed');
}

function forget(id: number): void {
  const p = pending.get(id);
  pending.delete(id);
  p?.prepared.wipe();
}

function handle(msg: WorkerIn): WorkerOut | undefined {
  switch (msg.t) {
    case 'keyring':
      if (keyring) wipe(keyring.key);
      cache.clear();
      keyring = { id: msg.keyringId, key: msg.key };
      return undefined;
    case 'lock':
      if (keyring) wipe(keyring.key);
      keyring = undefined;
      cache.clear();
      for (const id of [...pending.keys()]) forget(id);
      return undefined;
    case 'abort':
      forget(msg.id);
      return undefined;
    case 'close':
      if (keyring) wipe(keyring.key);
      keyring = undefined;
      for (const id of [...pending.keys()]) forget(id);
      cache.close();
      process.exit(0);
      return undefined;
    case 'go': {
      const p = pending.get(msg.id);
      if (!p) return { t: 'fail', id: msg.id, error: { code: 'INTERNAL', message: 'no prepared job with this id' } };
      try {
        if (Date.now() >= p.deadline) throw expired();
        return { t: 'done', id: msg.id, result: p.prepared.sign() };
      } catch (e) {
        return failure(msg.id, e);
      } finally {
        forget(msg.id);
      }
    }
    case 'job': {
      if (!keyring) return { t: 'fail', id: msg.id, error: { code: 'KEYRING_LOCKED', message: 'no keyring is unlocked in this enclave' } };
      if (msg.keyringId !== keyring.id) {
        return { t: 'fail', id: msg.id, error: { code: 'KEYRING_MISMATCH', message: `key ${msg.keyId} belongs to keyring ${msg.keyringId}, not the unlocked ${keyring.id}` } };
      }
      let secret: Uint8Array | undefined;
      let uncached: Uint8Array | undefined;
      try {
        if (Date.now() >= msg.deadline) throw expired();
        const meta = { keyringId: keyring.id, keyId: msg.keyId, kind: msg.kind };
        // The keyring id was checked above; the slot binds it again with the id, kind and exact blob bytes.
        const slot = cache.slot(keyring.id, msg.keyId, msg.kind, msg.blob);
        let hit = cache.get(slot);
        if (!hit) {
          secret = unwrapKey(keyring.key, meta, msg.blob);
          hit = cache.put(slot, secret, keyFacts(meta, secret));
          if (!cache.enabled) uncached = hit.secret;
        }
        const prepared = prepareOperation(msg.op, meta, hit.secret, msg.request, hit.facts);
        pending.set(msg.id, { prepared, deadline: msg.deadline });
        return { t: 'facts', id: msg.id, facts: prepared.facts, intent: prepared.intent };
      } catch (e) {
        return failure(msg.id, e);
      } finally {
        // prepareOperation keeps its own copy of what it needs; the cache keeps its own
        wipe(secret, uncached);
      }
    }
  }
}

parentPort?.on('message', (msg: WorkerIn) => {
  const out = handle(msg);
  if (out) parentPort!.postMessage(out);
});
