/**
 * signer_createKey's `requestId` (docs/json-rpc.md, an extension): creating a
 * key is idempotent under a client request id. A client whose answer was lost
 * (timeout, dropped connection, failover to another instance) asks again with
 * the same requestId and gets the same key — never a second one.
 *
 * The parent dedups before asking the enclave (the enclave's key.create needs
 * nothing): a stored requestId answers from the keystore; concurrent requests
 * with one requestId on this parent share one creation; a racing twin on
 * another instance loses at the keystore (the mapping is written in the key's
 * own transaction, so the second key is never stored) and answers the
 * winner's key. The key the enclave made for the loser is discarded unseen
 * (its audit record is still stored: the chain shows it was made).
 */
import { invalidParam } from './errors.js';
import type { StoredKey } from './keystore.js';
import { publicKeyInfo, type Method, type MethodContext } from './methods.js';

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

export function readRequestId(v: unknown): string {
  if (typeof v !== 'string' || !REQUEST_ID.test(v)) throw invalidParam('requestId', 'expected 1..128 characters of A-Z a-z 0-9 _ . : - (e.g. a UUID)');
  return v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

/** Wraps signer_createKey: without requestId it is the method unchanged. */
export function idempotentCreateKey(createKey: Method): Method {
  const inFlight = new Map<string, Promise<unknown>>();
  return async (params, ctx) => {
    if (!isPlainObject(params) || !Object.hasOwn(params, 'requestId')) return createKey(params, ctx);
    const { requestId: raw, ...rest } = params;
    const requestId = readRequestId(raw);
    const check = (k: StoredKey, asked: Record<string, unknown>) => {
      // The same requestId with other parameters is a client bug: said so, not silently answered.
      const kind = asked.kind ?? 'secp256k1';
      if (k.kind !== kind || (asked.label !== undefined && asked.label !== k.label)) {
        throw invalidParam('requestId', `already used for a ${k.kind} key${k.label === null ? '' : ` labelled ${JSON.stringify(k.label)}`} (keyId ${k.keyId}); a retry must repeat the same kind and label`);
      }
      return publicKeyInfo(k);
    };
    const stored = await ctx.keystore.getKeyByRequestId(requestId);
    if (stored) return check(stored, rest);
    const running = inFlight.get(requestId);
    if (running) {
      await running.catch(() => undefined);
      const k = await ctx.keystore.getKeyByRequestId(requestId);
      if (k) return check(k, rest);
    }
    // The params go on as the client sent them, requestId included: a signed request is forwarded
    // to the enclave verbatim, and its signature covers the requestId too (docs/principals.md).
    const p = createKey(params, withRequestId(ctx, requestId));
    inFlight.set(requestId, p);
    try {
      return await p;
    } catch (e) {
      // Another instance stored a key under this requestId first: answer that one.
      if ((e as { code?: unknown }).code === 'KEYSTORE_REQUEST_ID_TAKEN') {
        const k = await ctx.keystore.getKeyByRequestId(requestId);
        if (k) return check(k, rest);
      }
      throw e;
    } finally {
      if (inFlight.get(requestId) === p) inFlight.delete(requestId);
    }
  };
}

/** The method's context with a keystore whose putKey stores the mapping in the key's transaction. */
function withRequestId(ctx: MethodContext, requestId: string): MethodContext {
  const ks = ctx.keystore;
  const keystore = Object.create(ks) as typeof ks;
  keystore.putKey = (k, label, audit) => ks.putKey(k, label, audit, requestId);
  return { ...ctx, keystore };
}
