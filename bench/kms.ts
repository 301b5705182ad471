/**
 * KMS-with-attestation costs, measured through the real path: the enclave's
 * KMS client (real @aws-sdk/client-kms, TLS in-process) dialing the parent's
 * byte pipe to the local KMS emulator, attestation by the simulated NSM.
 *
 *   cold unwrap = NSM attestation + KMS Decrypt round trip (SigV4, policy
 *                 evaluation with attestation verification in the emulator)
 *                 + CMS open (RSA-OAEP + AES-CBC)
 *   boot extra  = RSA-2048 recipient key generation (once per enclave life)
 *   warm sign   = unwrap the key blob (AES-GCM) + ECDSA, keyring cached
 *
 * Usage: npm run bench:kms   (writes bench/results/kms.json)
 */
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { toHex, wipe } from '../common/bytes.js';
import { connect } from '../common/transport/index.js';
import { createDevCa } from '../dev/ca/index.js';
import { startKmsEmulator } from '../dev/kms-emulator/index.js';
import { attestedKms } from '../enclave/kms/attested.js';
import { createKmsClient } from '../enclave/kms/client.js';
import { pinnedKeys } from '../enclave/config.js';
import { createKeyring, unlockKeyring } from '../enclave/kms/keyring.js';
import { createRecipient } from '../enclave/kms/recipient.js';
import { createSimulatedNsm, simulatedImagePcrs } from '../enclave/nsm/simulated.js';
import { signDigest } from '../enclave/signers/index.js';
import { startKmsPipe } from '../parent/kms-pipe.js';
import { repoRoot } from '../dev/stack.js';

const CREDS = { accessKeyId: 'AKIABENCH00000000001', secretAccessKey: 'bench-secret-not-real', principalArn: 'arn:aws:iam::111122223333:role/bench' };

function stats(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => +s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(3);
  return { n: s.length, meanMs: +(s.reduce((a, b) => a + b, 0) / s.length).toFixed(3), p50Ms: q(0.5), p90Ms: q(0.9), p99Ms: q(0.99), minMs: q(0) };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'es-bench-kms-'));
  const ca = createDevCa();
  const tls = ca.issueTlsServerCert(['localhost', '127.0.0.1']);
  const kms = await startKmsEmulator({ dataDir: join(dir, 'kms'), credentials: [CREDS], attestationRoot: ca.trustRoot, tls: { cert: tls.chainPem, key: tls.keyPem, ca: tls.caPem } });
  const pipe = await startKmsPipe({ listen: `unix:${join(dir, 'pipe.sock')}`, target: { address: '127.0.0.1', port: kms.port }, allowlist: [{ address: '127.0.0.1', port: kms.port }] });
  const operator = new KMSClient({
    region: 'us-east-1',
    endpoint: kms.url,
    credentials: CREDS,
    requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: kms.caPem! }) }),
  });
  const pcr0 = toHex(simulatedImagePcrs('bench').get(0)!);
  const policy = {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Principal: { AWS: CREDS.principalArn }, Action: 'kms:*', Resource: '*', Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': pcr0 } } },
      { Effect: 'Allow', Principal: { AWS: CREDS.principalArn }, Action: ['kms:CreateKey', 'kms:DescribeKey', 'kms:PutKeyPolicy'], Resource: '*' },
    ],
  };
  const cmk = (await operator.send(new CreateKeyCommand({ Policy: JSON.stringify(policy) }))).KeyMetadata!.Arn!;

  const nsm = createSimulatedNsm({ ca, imageId: 'bench' });
  const t0 = performance.now();
  const recipient = createRecipient();
  const rsaKeygenMs = performance.now() - t0;
  const client = createKmsClient({ region: 'us-east-1', endpoint: `https://localhost:${kms.port}`, ca: kms.caPem!, dial: () => connect(pipe.uri), credentials: async () => CREDS });
  const akms = attestedKms(client, nsm, recipient);
  const pinned = pinnedKeys([cmk]);
  const created = await createKeyring(akms, cmk, pinned);
  const record = created.record;

  // Cold unwraps: each is what an enclave boot does (attest + Decrypt + CMS), TLS connection kept alive as in a running enclave.
  const N = Number(process.env.BENCH_N ?? 40);
  const attestOnly: number[] = [];
  for (let i = 0; i < N; i++) {
    const a = performance.now();
    await nsm.attest({ publicKey: recipient.spkiDer, nonce: new Uint8Array(32) });
    attestOnly.push(performance.now() - a);
  }
  const cold: number[] = [];
  for (let i = 0; i < N; i++) {
    const a = performance.now();
    const k = await unlockKeyring(akms, record, pinned);
    cold.push(performance.now() - a);
    k.destroy();
  }

  // Warm signing: keyring cached; each signature unwraps its key blob then signs.
  const secret = new Uint8Array(32).fill(7);
  const blob = created.wrap('bench-key', 'secp256k1', secret);
  const digest = new Uint8Array(32).fill(1);
  const M = Number(process.env.BENCH_M ?? 2000);
  for (let i = 0; i < 200; i++) signDigest(secret, digest);
  let a = performance.now();
  for (let i = 0; i < M; i++) signDigest(secret, digest);
  const rawUs = ((performance.now() - a) * 1000) / M;
  a = performance.now();
  for (let i = 0; i < M; i++) {
    const s = created.unwrap('bench-key', 'secp256k1', blob);
    signDigest(s, digest);
    wipe(s);
  }
  const warmUs = ((performance.now() - a) * 1000) / M;

  const result = {
    benchmark: 'kms-attested-unwrap',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    path: 'enclave KMS client (real @aws-sdk/client-kms, TLS in enclave) → parent byte pipe (unix) → KMS emulator (SigV4, policy with attestation verification, CMS CiphertextForRecipient)',
    recipientRsa2048KeygenMs: +rsaKeygenMs.toFixed(1),
    simulatedNsmAttestMs: stats(attestOnly),
    coldUnwrapMs: stats(cold),
    warmSign: { rawEcdsaUs: +rawUs.toFixed(1), unwrapPlusEcdsaUs: +warmUs.toFixed(1), addedUs: +(warmUs - rawUs).toFixed(1), iterations: M },
  };
  created.destroy();
  recipient.destroy();
  client.destroy();
  operator.destroy();
  await pipe.close();
  await kms.close();
  rmSync(dir, { recursive: true, force: true });
  const out = join(repoRoot(), 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'kms.json'), JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify(result, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1); // servers started above would otherwise keep the process alive
});
