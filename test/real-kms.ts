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

export async function startRealKms(opts: { dir: string; ca: DevCa; image: string; credentials: TestCredentials; description: string }): Promise<RealKms> {
  const { dir, ca, image, credentials: creds } = opts;
  const tls = ca.issueTlsServerCert(['localhost', '127.0.0.1']);
  const kms = await startKmsEmulator({ dataDir: join(dir, 'kms'), credentials: [creds], attestationRoot: ca.trustRoot, tls: { cert: tls.chainPem, key: tls.keyPem, ca: tls.caPem } });
  const pipe = await startKmsPipe({ listen: `unix:${join(dir, 'kms-pipe.sock')}`, target: { address: '127.0.0.1', port: kms.port }, allowlist: [{ address: '127.0.0.1', port: kms.port }] });
  const operator = new KMSClient({
    region: 'us-east-1',
    endpoint: kms.url,
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
    requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: kms.caPem! }) }),
  });
  const pcr0 = toHex(simulatedImagePcrs(image).get(0)!);
  const policy = {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'operator', Effect: 'Allow', Principal: { AWS: creds.principalArn }, Action: ['kms:CreateKey', 'kms:DescribeKey', 'kms:PutKeyPolicy', 'kms:GetKeyPolicy', 'kms:EnableKey', 'kms:DisableKey'], Resource: '*' },
      { Sid: 'enclave', Effect: 'Allow', Principal: { AWS: creds.principalArn }, Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: '*', Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': pcr0 } } },
    ],
  };
  const cmk = (await operator.send(new CreateKeyCommand({ Policy: JSON.stringify(policy), Description: opts.description }))).KeyMetadata!.Arn!;
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
