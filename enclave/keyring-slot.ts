/**
 * The enclave's one keyring per life, and the KMS access that creates or unlocks it
 * (docs/keyring.md, docs/kms-policy.md). The host hands over AWS credentials and asks for a
 * keyring to be created or unlocked; once one is adopted, no request of the host's makes the
 * enclave switch to another. Adoptions run one at a time, so two concurrent requests cannot both
 * adopt a keyring, and only under a CMK pinned in the measured configuration.
 *
 * Cold start: the RSA recipient key is generated off the main thread and the KMS/AWS SDK and
 * key-derivation modules load on first use, so the bridge answers attest/status at once.
 */
import type { KMSClient } from '@aws-sdk/client-kms';
import { SignerError } from '../common/errors.js';
import type { PinnedKeys } from './config.js';
import type { AttestedKms } from './kms/attested.js';
import type { AwsCredentials } from './kms/client.js';
import type { Dial } from './kms/connection.js';
import type { Keyring, KeyringRecord } from './kms/keyring.js';
import { createRecipientAsync, type KmsRecipient } from './kms/recipient.js';
import type { Nsm } from './nsm/nsm.js';

export interface KmsOptions {
  region: string;
  dial: Dial;
  endpoint?: string;
  ca?: string | string[];
}

export class KeyringSlot {
  readonly #nsm: Nsm;
  readonly #kms: KmsOptions;
  readonly #pinned: PinnedKeys;
  /** Called once, with the adopted keyring, before an adoption returns. */
  readonly #adopted: (k: Keyring, created: boolean) => void;
  #adoption: Promise<unknown> = Promise.resolve();
  readonly #recipientReady: Promise<KmsRecipient>;
  #recipient: KmsRecipient | undefined;
  #credentials: AwsCredentials | undefined;
  #client: KMSClient | undefined;
  #keyring: Keyring | undefined;
  #closed = false;

  constructor(nsm: Nsm, kms: KmsOptions, pinned: PinnedKeys, adopted: (k: Keyring, created: boolean) => void) {
    this.#nsm = nsm;
    this.#kms = kms;
    this.#pinned = pinned;
    this.#adopted = adopted;
    this.#recipientReady = createRecipientAsync();
    this.#recipientReady.catch(() => {}); // a failure surfaces on the first KMS call, not as an unhandled rejection
  }

  /** The adopted keyring, if any. */
  get keyring(): Keyring | undefined {
    return this.#keyring;
  }

  get credentialsExpire(): string | null {
    return this.#credentials?.expiration?.toISOString() ?? null;
  }

  setCredentials(c: AwsCredentials): void {
    this.#credentials = c;
  }

  /** A new keyring under `kmsKeyId` (a pinned CMK), adopted. */
  create(kmsKeyId: string, before: () => void): Promise<Keyring> {
    return this.#oneAtATime(async () => {
      if (this.#keyring) throw new SignerError('KEYRING_ALREADY_UNLOCKED', `keyring ${this.#keyring.id} is already unlocked in this enclave; an enclave never switches keyrings`);
      before();
      const { createKeyring } = await import('./lazy-kms.js');
      const k = await createKeyring(await this.#attestedKms(), kmsKeyId, this.#pinned);
      this.#install(k, true);
      return k;
    });
  }

  /**
   * The stored keyring unlocked through KMS and adopted; `undefined` when it is the one already
   * adopted (the parent reconnects). `refused` sees an unlock KMS or the record refused.
   */
  unlock(record: KeyringRecord, before: () => void, refused: (e: unknown) => Error): Promise<Keyring | undefined> {
    return this.#oneAtATime(async () => {
      if (this.#keyring) {
        // Re-sending the adopted keyring's id is harmless (the parent reconnects); anything else is a switch.
        if (this.#keyring.id === record.keyringId) return undefined;
        throw new SignerError('KEYRING_ALREADY_UNLOCKED', `keyring ${this.#keyring.id} is already unlocked in this enclave; it never switches to another keyring`, {
          hint: 'a different keyring needs a new enclave life (restart the enclave)',
        });
      }
      before();
      const { unlockKeyring } = await import('./lazy-kms.js');
      let k: Keyring;
      try {
        k = await unlockKeyring(await this.#attestedKms(), record, this.#pinned);
      } catch (e) {
        throw refused(e);
      }
      this.#install(k, false);
      return k;
    });
  }

  close(): void {
    this.#keyring?.destroy();
    this.#keyring = undefined;
    this.#closed = true;
    this.#recipient?.destroy();
    void this.#recipientReady.then((r) => r.destroy(), () => {});
    this.#client?.destroy();
  }

  #oneAtATime<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#adoption.then(fn, fn);
    this.#adoption = run.catch(() => {});
    return run;
  }

  #install(k: Keyring, created: boolean): void {
    // An adoption that finished after close() (KMS answered during shutdown): its data key would
    // outlive the wipe close() did (review note, session 26).
    if (this.#closed) {
      k.destroy();
      throw new SignerError('ENCLAVE_CLOSED', 'the enclave is shutting down');
    }
    if (this.#keyring) {
      k.destroy();
      throw new SignerError('KEYRING_ALREADY_UNLOCKED', `keyring ${this.#keyring.id} is already unlocked in this enclave`);
    }
    this.#keyring = k;
    this.#adopted(k, created);
  }

  async #attestedKms(): Promise<AttestedKms> {
    if (!this.#credentials) throw new SignerError('KMS_NO_CREDENTIALS', 'the parent has not handed over AWS credentials yet');
    // A literal path: the image bundle includes it (loaded lazily, see cold start above).
    const { createKmsClient, attestedKms } = await import('./lazy-kms.js');
    this.#recipient ??= await this.#recipientReady;
    if (this.#closed) throw new SignerError('ENCLAVE_CLOSED', 'the enclave is shutting down');
    const o = this.#kms;
    this.#client ??= createKmsClient({
      region: o.region,
      dial: o.dial,
      ...(o.endpoint ? { endpoint: o.endpoint } : {}),
      ...(o.ca ? { ca: o.ca } : {}),
      credentials: async () => {
        if (!this.#credentials) throw new SignerError('KMS_NO_CREDENTIALS', 'no AWS credentials');
        return this.#credentials;
      },
    });
    return attestedKms(this.#client, this.#nsm, this.#recipient);
  }
}
