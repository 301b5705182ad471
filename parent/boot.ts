/**
 * The boot sequence, run on every attested connection:
 *
 *   1. hand the enclave AWS credentials (`credentials.set`), if a provider is configured;
 *   2. the keystore has an active keyring → `keyring.unlock` (attested KMS Decrypt in the enclave);
 *      none, but the enclave holds one    → store its public record (`keyring.current`): the answer
 *                                           to an earlier `keyring.create` was lost (connection
 *                                           dropped, store failed) — asking again would fail forever
 *                                           with KEYRING_ALREADY_UNLOCKED;
 *      none, but a CMK is configured     → `keyring.create`, then store the new record;
 *      neither                           → no keyring (not ready; say how to fix it).
 *
 * Any failure leaves the parent not ready with the reason (fail closed): a KMS
 * that refuses the enclave (wrong PCRs in the key policy, disabled key) is a
 * reason to stop, never to fall back.
 */
import { asKeyringRecord, asRecord, type EnclaveMethod, type KeyringRecordWire } from '../common/protocol/enclave-api.js';
import type { JsonLike } from '../common/cbor-json.js';
import type { CredentialsProvider, AwsCredentialsWire } from './credentials.js';
import { ParentError } from './errors.js';
import type { Keystore } from './keystore.js';

export type EnclaveCall = (method: EnclaveMethod, params: Record<string, unknown>) => Promise<JsonLike>;

export type BootOutcome =
  | { kind: 'unlocked'; keyringId: string; created: boolean }
  | { kind: 'absent'; reason: string };

export interface BootDeps {
  call: EnclaveCall;
  keystore: Keystore;
  kmsKeyId: string | undefined;
  log: (line: string) => void;
}

/** Sends credentials when the provider has some; returns them (for the refresh timer). */
export async function handOverCredentials(call: EnclaveCall, provider: CredentialsProvider): Promise<AwsCredentialsWire | undefined> {
  const creds = await provider.get();
  if (creds === undefined) return undefined;
  const res = await call('credentials.set', { ...creds });
  if (asRecord(res, 'credentials.set result').ok !== true) {
    throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', 'credentials.set did not answer { ok: true }');
  }
  return creds;
}

export async function unlockOrCreateKeyring(d: BootDeps): Promise<BootOutcome> {
  const record = d.keystore.activeKeyring();
  if (record) {
    const res = asRecord(await d.call('keyring.unlock', { record }), 'keyring.unlock result');
    if (res.keyringId !== record.keyringId) {
      throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', `keyring.unlock answered keyring ${JSON.stringify(String(res.keyringId).slice(0, 64))}, expected ${record.keyringId}`);
    }
    return { kind: 'unlocked', keyringId: record.keyringId, created: false };
  }
  const held = await currentKeyring(d.call);
  if (held) {
    store(d, held);
    d.log(`keyring ${held.keyringId} (under ${held.kmsKeyId}) was already unlocked in the enclave and is now stored: the answer to an earlier keyring.create was lost`);
    return { kind: 'unlocked', keyringId: held.keyringId, created: true };
  }
  if (d.kmsKeyId === undefined) {
    return { kind: 'absent', reason: 'the keystore has no keyring and no KMS key is configured to create one (--kms-key-id)' };
  }
  const res = asRecord(await d.call('keyring.create', { kmsKeyId: d.kmsKeyId }), 'keyring.create result');
  let created;
  try {
    created = asKeyringRecord(res.record, 'keyring.create result.record');
  } catch (e) {
    throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', (e as Error).message, { cause: e });
  }
  store(d, created);
  d.log(`keyring ${created.keyringId} created under ${created.kmsKeyId} and stored`);
  return { kind: 'unlocked', keyringId: created.keyringId, created: true };
}

/**
 * Stored before we report ready: a keyring the keystore does not hold would
 * make every key created under it unrecoverable after the enclave restarts.
 */
function store(d: BootDeps, record: KeyringRecordWire): void {
  try {
    d.keystore.putKeyring(record);
  } catch (e) {
    throw new ParentError('PARENT_KEYRING_LOCKED', `the new keyring ${record.keyringId} could not be stored: ${(e as Error).message}`, {
      cause: e,
      hint: 'fix the keystore (disk full? read-only?); the parent retries storing it, and no key is created under this keyring until then',
    });
  }
}

/** The keyring the enclave already holds, if any (null from an enclave without `keyring.current`). */
async function currentKeyring(call: EnclaveCall): Promise<KeyringRecordWire | null> {
  let res;
  try {
    res = asRecord(await call('keyring.current', {}), 'keyring.current result');
  } catch (e) {
    if ((e as { code?: unknown }).code === 'METHOD_NOT_FOUND') return null;
    throw e;
  }
  if (res.record === null) return null;
  try {
    return asKeyringRecord(res.record, 'keyring.current result.record');
  } catch (e) {
    throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', (e as Error).message, { cause: e });
  }
}
