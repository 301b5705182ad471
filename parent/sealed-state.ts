/**
 * The parent's part in the enclave's durable limits (docs/principals.md "Sealed state"): it
 * stores the sealed record the enclave hands out — ciphertext it cannot read or forge — and hands
 * the latest one back at boot. A record that comes with a signature is stored BEFORE the
 * signature is released: if the write fails, the client gets an error and no signature.
 */
import type { JsonLike } from '../common/cbor-json.js';
import { ParentError } from './errors.js';
import type { Keystore } from './keystore.js';

type Call = (method: 'state.restore', params: Record<string, unknown>) => Promise<JsonLike>;

function sequenceOf(record: unknown): number {
  const n = (record as { sequence?: unknown } | null)?.sequence;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', 'the enclave handed out a sealed state record without a sequence');
  return n;
}

/** Stores a sealed record; throws (and the caller withholds its answer) when it cannot. */
export async function storeSealedState(keystore: Keystore, keyringId: string, record: unknown): Promise<void> {
  if (!keystore.putSealedState) throw new ParentError('PARENT_STATE_UNWRITABLE', 'this keystore cannot store the enclave\'s sealed state; nothing was released');
  try {
    await keystore.putSealedState(keyringId, sequenceOf(record), record);
  } catch (e) {
    throw new ParentError('PARENT_STATE_UNWRITABLE', 'the enclave\'s sealed state could not be stored, so the answer is withheld', { cause: e, hint: 'check the keystore (disk, permissions) and retry' });
  }
}

/** After the keyring is unlocked: hand back the latest record, store the one the enclave answers. */
export async function restoreSealedState(call: Call, keystore: Keystore, keyringId: string, log: (l: string) => void): Promise<void> {
  const record = (await keystore.getSealedState?.(keyringId)) ?? null;
  const res = (await call('state.restore', { record: record as JsonLike })) as { record?: unknown; unclean?: unknown; restored?: unknown } | null;
  if (res === null || typeof res !== 'object' || res.record === undefined) throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', 'state.restore answered no record');
  if (keystore.putSealedState) await storeSealedState(keystore, keyringId, res.record);
  else log('read-only keystore: the enclave\'s sealed state is not stored; answers that change window counters or approvals are withheld');
  if (res.unclean === true) log('the enclave reports an unclean restart: window counters and approvals are as of its last sealed record');
}
