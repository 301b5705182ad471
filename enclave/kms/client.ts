/**
 * The enclave's KMS client: the real @aws-sdk/client-kms, whose HTTPS
 * connections go through a pluggable dialer (see connection.ts). No part of
 * the SDK is replaced: only where its bytes travel.
 */
import { KMSClient } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { kmsHttpsAgent, type Dial } from './connection.js';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export interface KmsClientOptions {
  region: string;
  dial: Dial;
  /** Defaults to https://kms.<region>.amazonaws.com. */
  endpoint?: string;
  /** Name TLS verifies; defaults to the endpoint's host. */
  servername?: string;
  /** Extra trust anchors (dev CA PEM) for the emulator, added to Node's bundled roots (connection.ts). */
  ca?: string | string[];
  /** Credentials handed over by the parent (instance role), refreshed by the provider. */
  credentials: () => Promise<AwsCredentials>;
  requestTimeoutMs?: number;
}

export function createKmsClient(opts: KmsClientOptions): KMSClient {
  const endpoint = opts.endpoint ?? `https://kms.${opts.region}.amazonaws.com`;
  const servername = opts.servername ?? new URL(endpoint).hostname;
  const httpsAgent = kmsHttpsAgent({ dial: opts.dial, servername, ...(opts.ca === undefined ? {} : { ca: opts.ca }) });
  // Review (keyring, session 26): the SDK memoizes a credentials function: an identity without
  // `expiration` for the client's whole life, one with it until 5 minutes before it expires. The
  // parent hands new credentials over with `credentials.set` (keyring-slot.ts returns the latest),
  // but the client kept using the first ones it saw: after one unlock refused for bad or revoked
  // credentials, no credentials handed over later were ever used, and every unlock of that
  // enclave life failed. A provider marked `memoized` is called as it is, on every request.
  const credentials = Object.assign(async () => opts.credentials(), { memoized: true });
  return new KMSClient({
    region: opts.region,
    endpoint,
    credentials,
    maxAttempts: 3,
    requestHandler: new NodeHttpHandler({ httpsAgent, requestTimeout: opts.requestTimeoutMs ?? 10_000, connectionTimeout: 5_000 }),
  });
}
