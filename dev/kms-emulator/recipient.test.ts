/**
 * Attested requests end to end: the simulated NSM (dev CA chain) produces
 * the attestation document with our RSA key in `public_key`, the real SDK
 * sends it as Recipient, the emulator verifies it, evaluates the PCR
 * conditions of the key policy and answers with a CMS CiphertextForRecipient
 * that common/cms opens.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Agent } from 'node:https';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  CreateKeyCommand,
  DecryptCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateRandomCommand,
  KeyEncryptionMechanism,
  ReEncryptCommand,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { toHex } from '../../common/bytes.js';
import { decryptEnvelopedData, parseEnvelopedData, recipientKeyId } from '../../common/cms/index.js';
import { createSimulatedNsm, iamRolePcr, simulatedImagePcrs, type Nsm } from '../../enclave/nsm/index.js';
import { ADMIN_ROLE, PARENT_CREDENTIAL, PARENT_ROLE, TEST_ACCOUNT, startTestKms, type TestKms } from './harness.js';
import { rawKmsRequest } from './raw-request.js';

const IMAGE_PCRS = simulatedImagePcrs('enclave-signer-test-image');
const PCR0 = toHex(IMAGE_PCRS.get(0)!);
const PCR8 = toHex(IMAGE_PCRS.get(8)!);
const ZEROS = '0'.repeat(96);
const ENCLAVE_ROLE = `arn:aws:iam::${TEST_ACCOUNT}:role/enclave-instance`;

interface RsaPair {
  privateKey: KeyObject;
  spki: Uint8Array;
}
function rsa(bits = 2048): RsaPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return { privateKey, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) };
}

async function rejects(p: Promise<unknown>, name: string): Promise<Error> {
  try {
    await p;
  } catch (e) {
    expect((e as Error).name, (e as Error).message).toBe(name);
    return e as Error;
  }
  throw new Error(`expected ${name}, but the call succeeded`);
}

function enclavePolicy(conditions: Record<string, Record<string, string | string[]>>): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Sid: 'admin', Effect: 'Allow', Principal: { AWS: ADMIN_ROLE }, Action: 'kms:*', Resource: '*' },
      { Sid: 'parent-store', Effect: 'Allow', Principal: { AWS: PARENT_ROLE }, Action: ['kms:Encrypt', 'kms:DescribeKey', 'kms:PutKeyPolicy'], Resource: '*' },
      { Sid: 'enclave-unwrap', Effect: 'Allow', Principal: { AWS: PARENT_ROLE }, Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: '*', Condition: conditions },
    ],
  });
}

let t: TestKms;
let kms: KMSClient;
const nsms: Nsm[] = [];
let rsaKey: RsaPair;
let goodDoc: Uint8Array;
let keyId: string;

function nsm(opts: Partial<Parameters<typeof createSimulatedNsm>[0]> = {}): Nsm {
  const n = createSimulatedNsm({ ca: t.ca, pcrs: IMAGE_PCRS, iamRoleArn: ENCLAVE_ROLE, ...opts });
  nsms.push(n);
  return n;
}

const recipient = (doc: Uint8Array) => ({ AttestationDocument: doc, KeyEncryptionAlgorithm: KeyEncryptionMechanism.RSAES_OAEP_SHA_256 });

beforeAll(async () => {
  t = await startTestKms();
  kms = t.client();
  rsaKey = rsa();
  goodDoc = await nsm().attest({ publicKey: rsaKey.spki });
  // Uppercase in the policy: attestation values compare case-insensitively.
  const r = await kms.send(new CreateKeyCommand({ Policy: enclavePolicy({ StringEquals: { 'kms:RecipientAttestation:ImageSha384': PCR0.toUpperCase(), 'kms:RecipientAttestation:PCR8': PCR8 } }) }));
  keyId = r.KeyMetadata!.KeyId!;
});
afterAll(async () => {
  for (const n of nsms) n.close();
  await t?.close();
});

describe('Recipient with a matching attestation document', () => {
  test('GenerateDataKey → CiphertextForRecipient that opens to the data key, no Plaintext; attested Decrypt returns the same key', async () => {
    const g = await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', Recipient: recipient(goodDoc) }));
    expect(g.Plaintext).toBeUndefined();
    expect(g.CiphertextBlob!.length).toBeGreaterThan(32);
    const info = parseEnvelopedData(g.CiphertextForRecipient!);
    expect(info.recipient.subjectKeyIdentifier).toEqual(recipientKeyId(rsaKey.spki));
    const dataKey = decryptEnvelopedData(g.CiphertextForRecipient!, rsaKey.privateKey, rsaKey.spki);
    expect(dataKey).toHaveLength(32);

    // Once per enclave boot: unwrap the stored ciphertext with a fresh document.
    const fresh = rsa();
    const doc2 = await nsm().attest({ publicKey: fresh.spki });
    const d = await kms.send(new DecryptCommand({ CiphertextBlob: g.CiphertextBlob!, Recipient: recipient(doc2) }));
    expect(d.Plaintext).toBeUndefined();
    expect(decryptEnvelopedData(d.CiphertextForRecipient!, fresh.privateKey, fresh.spki)).toEqual(dataKey);
    // Addressed to that document's key only.
    expect(() => decryptEnvelopedData(d.CiphertextForRecipient!, rsaKey.privateKey, rsaKey.spki)).toThrow(expect.objectContaining({ code: 'CMS_WRONG_RECIPIENT' }));
  });

  test('the wire response carries CiphertextForRecipient and no Plaintext member at all', async () => {
    const e = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: new Uint8Array(32).fill(7) }));
    const agent = new Agent({ ca: t.caPem });
    try {
      const r = await rawKmsRequest(t.emulator.url, {
        agent,
        target: 'TrentService.Decrypt',
        credential: PARENT_CREDENTIAL,
        body: JSON.stringify({
          CiphertextBlob: Buffer.from(e.CiphertextBlob!).toString('base64'),
          Recipient: { AttestationDocument: Buffer.from(goodDoc).toString('base64'), KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' },
        }),
      });
      expect(r.status).toBe(200);
      const body = r.json as Record<string, string>;
      expect(Object.keys(body).sort()).toEqual(['CiphertextForRecipient', 'EncryptionAlgorithm', 'KeyId']);
      const pt = decryptEnvelopedData(new Uint8Array(Buffer.from(body.CiphertextForRecipient!, 'base64')), rsaKey.privateKey, rsaKey.spki);
      expect(pt).toEqual(new Uint8Array(32).fill(7));
    } finally {
      agent.destroy();
    }
  });

  test('GenerateRandom with Recipient', async () => {
    const r = await kms.send(new GenerateRandomCommand({ NumberOfBytes: 48, Recipient: recipient(goodDoc) }));
    expect(r.Plaintext).toBeUndefined();
    expect(decryptEnvelopedData(r.CiphertextForRecipient!, rsaKey.privateKey, rsaKey.spki)).toHaveLength(48);
  });
});

describe('Recipient conditions deny what they should', () => {
  let blob: Uint8Array;
  beforeAll(async () => {
    blob = (await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: new Uint8Array(32).fill(1) }))).CiphertextBlob!;
  });

  test('another image (wrong PCR0) → AccessDeniedException', async () => {
    const other = await nsm({ pcrs: simulatedImagePcrs('some-other-image') }).attest({ publicKey: rsaKey.spki });
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: recipient(other) })), 'AccessDeniedException');
    await rejects(kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', Recipient: recipient(other) })), 'AccessDeniedException');
  });

  test('right PCR0 but wrong PCR8 → AccessDeniedException (every condition must hold)', async () => {
    const pcrs = new Map(IMAGE_PCRS);
    pcrs.set(8, new Uint8Array(48).fill(0x88));
    const doc = await nsm({ pcrs }).attest({ publicKey: rsaKey.spki });
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: recipient(doc) })), 'AccessDeniedException');
  });

  test('no attestation document → AccessDeniedException, never Plaintext', async () => {
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: blob })), 'AccessDeniedException');
    await rejects(kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' })), 'AccessDeniedException');
  });

  test('debug-mode document (zero PCRs) is denied unless the policy names zeros', async () => {
    const debugDoc = await nsm({ debug: true, pcrs: new Map() }).attest({ publicKey: rsaKey.spki });
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: recipient(debugDoc) })), 'AccessDeniedException');

    const dev = await kms.send(new CreateKeyCommand({ Policy: enclavePolicy({ StringEquals: { 'kms:RecipientAttestation:ImageSha384': ZEROS } }) }));
    const devId = dev.KeyMetadata!.KeyId!;
    const g = await kms.send(new GenerateDataKeyCommand({ KeyId: devId, KeySpec: 'AES_256', Recipient: recipient(debugDoc) }));
    expect(decryptEnvelopedData(g.CiphertextForRecipient!, rsaKey.privateKey, rsaKey.spki)).toHaveLength(32);
    // …and that dev key does not open for the production image.
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: g.CiphertextBlob!, Recipient: recipient(goodDoc) })), 'AccessDeniedException');
  });

  test('an explicit Deny on debug zeros beats an unconditional Allow', async () => {
    const k = await kms.send(
      new CreateKeyCommand({
        Policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            { Sid: 'all', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${TEST_ACCOUNT}:root` }, Action: 'kms:*', Resource: '*' },
            { Sid: 'no-debug', Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*', Condition: { StringEquals: { 'kms:RecipientAttestation:PCR0': ZEROS } } },
          ],
        }),
      }),
    );
    const b = (await kms.send(new EncryptCommand({ KeyId: k.KeyMetadata!.KeyId!, Plaintext: new Uint8Array(4) }))).CiphertextBlob!;
    const debugDoc = await nsm({ debug: true, pcrs: new Map() }).attest({ publicKey: rsaKey.spki });
    const err = await rejects(kms.send(new DecryptCommand({ CiphertextBlob: b, Recipient: recipient(debugDoc) })), 'AccessDeniedException');
    expect(err.message).toMatch(/explicit deny/);
    expect((await kms.send(new DecryptCommand({ CiphertextBlob: b, Recipient: recipient(goodDoc) }))).CiphertextForRecipient).toBeDefined();
  });

  test('PCR<n> conditions: PCR3 binds the instance role', async () => {
    const k = await kms.send(new CreateKeyCommand({ Policy: enclavePolicy({ StringEqualsIgnoreCase: { 'kms:RecipientAttestation:PCR3': toHex(iamRolePcr(ENCLAVE_ROLE)) } }) }));
    const b = (await kms.send(new EncryptCommand({ KeyId: k.KeyMetadata!.KeyId!, Plaintext: new Uint8Array(4) }))).CiphertextBlob!;
    expect((await kms.send(new DecryptCommand({ CiphertextBlob: b, Recipient: recipient(goodDoc) }))).CiphertextForRecipient).toBeDefined();
    const otherRole = await nsm({ iamRoleArn: `arn:aws:iam::${TEST_ACCOUNT}:role/someone-else` }).attest({ publicKey: rsaKey.spki });
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: b, Recipient: recipient(otherRole) })), 'AccessDeniedException');
  });

  test('ReEncrypt is checked as ReEncryptFrom/ReEncryptTo, independent of Decrypt', async () => {
    const dest = await kms.send(new CreateKeyCommand({}));
    // The enclave key policy grants the parent no kms:ReEncrypt*.
    await rejects(kms.send(new ReEncryptCommand({ CiphertextBlob: blob, DestinationKeyId: dest.KeyMetadata!.KeyId! })), 'AccessDeniedException');
  });
});

describe('bad Recipient documents → ValidationException', () => {
  let blob: Uint8Array;
  beforeAll(async () => {
    blob = (await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: new Uint8Array(32) }))).CiphertextBlob!;
  });

  test('tampered document (signature no longer verifies)', async () => {
    const bad = goodDoc.slice();
    bad[bad.length - 5] = bad[bad.length - 5]! ^ 0xff;
    const err = await rejects(kms.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: recipient(bad) })), 'ValidationException');
    expect(err.message).toMatch(/attestation document/);
  });

  test('garbage instead of a document', async () => {
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: recipient(new Uint8Array([1, 2, 3])) })), 'ValidationException');
  });

  test('RSA-1024, EC and missing public keys', async () => {
    const weak = await nsm().attest({ publicKey: rsa(1024).spki });
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: recipient(weak) })), 'ValidationException');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    const ecDoc = await nsm().attest({ publicKey: new Uint8Array(ec) });
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: recipient(ecDoc) })), 'ValidationException');
    const none = await nsm().attest({});
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: recipient(none) })), 'ValidationException');
  });

  test('an unsupported KeyEncryptionAlgorithm', async () => {
    await rejects(
      kms.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: { AttestationDocument: goodDoc, KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_1' as KeyEncryptionMechanism } })),
      'ValidationException',
    );
  });

  test('a dev-CA document against an emulator trusting only the AWS root', async () => {
    const aws = await startTestKms({ ca: t.ca, attestationRoot: undefined });
    try {
      const c = aws.client();
      const k = await c.send(new CreateKeyCommand({}));
      const err = await rejects(c.send(new GenerateDataKeyCommand({ KeyId: k.KeyMetadata!.KeyId!, KeySpec: 'AES_256', Recipient: recipient(goodDoc) })), 'ValidationException');
      expect(err.message).toMatch(/chain/);
    } finally {
      await aws.close();
    }
  });
});
