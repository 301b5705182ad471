/**
 * Test fixture: real KMS plumbing for a real enclave. The KMS emulator (TLS from
 * the dev CA, SigV4 with the test's credentials), the parent's KMS byte pipe in
 * front of it, an operator client, and one CMK whose key policy lets only the
 * simulated image (by PCR0) Decrypt/GenerateDataKey with attestation. Shared by
 * the tests that run `startEnclave` against it (hostile-host and integration).
 */
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { toHex } from '../common/bytes.js';
import type { DevCa } from '../dev/ca/index.js';
import { startKmsEmulator, type KmsEmulator } from '../dev/kms-emulator/index.js';
import { simulatedImagePcrs } from '../enclave/nsm/simulated.js';
import { startKmsPipe, type KmsPipe } from '../parent/kms-pipe.js';

export interface TestCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  principalArn: string;
}

export interface RealKms {
  kms: KmsEmulator;
  pipe: KmsPipe;
  /** The test's key administrator (CreateKey, Describe, Put/GetKeyPolicy, Enable/DisableKey). */
  operator: KMSClient;
  /** ARN of the CMK conditioned on the image's PCR0. */
  cmk: string;
  /** The `kms` part of an EnclaveConfig that pins `cmk` and dials the pipe. */
  enclaveKms: { region: string; pipe: string; endpoint: string; caPem: string; allowedKeyArns: string[] };
  close(): Promise<void>;
}

/** The KMS emulator behind the parent's byte pipe, and a client that talks to it directly (the operator, or a hostile host). */
export async function startKmsBehindPipe(opts: { dir: string; ca: DevCa; credentials: TestCredentials; maxAttempts?: number }): Promise<{ kms: KmsEmulator; pipe: KmsPipe; client: KMSClient }> {
  const { dir, ca, credentials: creds } = opts;
  const tls = ca.issueTlsServerCert(['localhost', '127.0.0.1']);
  const kms = await startKmsEmulator({ dataDir: join(dir, 'kms'), credentials: [creds], attestationRoot: ca.trustRoot, tls: { cert: tls.chainPem, key: tls.keyPem, ca: tls.caPem } });
  const pipe = await startKmsPipe({ listen: `unix:${join(dir, 'kms-pipe.sock')}`, target: { address: '127.0.0.1', port: kms.port }, allowlist: [{ address: '127.0.0.1', port: kms.port }] });
  const client = new KMSClient({
    region: 'us-east-1',
    endpoint: kms.url,
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
    ...(opts.maxAttempts !== undefined ? { maxAttempts: opts.maxAttempts } : {}),
    requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: kms.caPem! }) }),
  });
  return { kms, pipe, client };
}

/**
 * A key policy like a production one (docs/kms-policy.md): `adminActions` for the test's
 * principal, and Decrypt/GenerateDataKey only with an attestation document of `image` (PCR0).
 */
export function imageKeyPolicy(creds: TestCredentials, image: string, adminActions: readonly string[]): string {
  const pcr0 = toHex(simulatedImagePcrs(image).get(0)!);
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Sid: 'admin', Effect: 'Allow', Principal: { AWS: creds.principalArn }, Action: adminActions, Resource: '*' },
      { Sid: 'enclave', Effect: 'Allow', Principal: { AWS: creds.principalArn }, Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: '*', Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': pcr0 } } },
    ],
  });
}

/** A keyring record as the keystore stores it (enclave/kms/keyring.ts), with `over` replacing members. */
export const keyringRecord = (keyringId: string, kmsKeyId: string, dataKeyCiphertext: Uint8Array, over: Record<string, unknown> = {}) => ({
  format: 'enclave-signer/keyring',
  version: 1,
  keyringId,
  kmsKeyId,
  dataKeyCiphertext,
  createdAt: new Date(0).toISOString(),
  ...over,
});

export async function startRealKms(opts: { dir: string; ca: DevCa; image: string; credentials: TestCredentials; description: string }): Promise<RealKms> {
  const { kms, pipe, client: operator } = await startKmsBehindPipe(opts);
  const policy = imageKeyPolicy(opts.credentials, opts.image, ['kms:CreateKey', 'kms:DescribeKey', 'kms:PutKeyPolicy', 'kms:GetKeyPolicy', 'kms:EnableKey', 'kms:DisableKey']);
  const cmk = (await operator.send(new CreateKeyCommand({ Policy: policy, Description: opts.description }))).KeyMetadata!.Arn!;
  return {
    kms,
    pipe,
    operator,
    cmk,
    enclaveKms: { region: 'us-east-1', pipe: pipe.uri, endpoint: `https://localhost:${kms.port}`, caPem: kms.caPem!, allowedKeyArns: [cmk] },
    async close() {
      operator.destroy();
      await pipe.close();
      await kms.close();
    },
  };
}
