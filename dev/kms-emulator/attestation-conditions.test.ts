/**
 * `kms:RecipientAttestation:*` condition keys as AWS KMS evaluates them, through
 * the real SDK. The keys exist only in a request that carries a Recipient with
 * a verified attestation document (Decrypt, GenerateDataKey, GenerateDataKeyPair,
 * GenerateRandom, DeriveSharedSecret); Encrypt never carries one. IAM's rules
 * for a key that is absent from the request (IAM User Guide, "Condition
 * operators"): a plain operator (StringEqualsIgnoreCase…) is false; its
 * `…IfExists` form is true; a negated operator (StringNotEquals…) is true;
 * `Null: true` is true and `Null: false` is false. These are the holes
 * `enclave-signer kms check-policy` flags (cli/kms-policy-check.ts).
 */
import { CreateKeyCommand, DescribeKeyCommand, EncryptCommand, GenerateDataKeyCommand, KeyEncryptionMechanism, type KMSClient } from '@aws-sdk/client-kms';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { toHex } from '../../common/bytes.js';
import { createSimulatedNsm, simulatedImagePcrs, type Nsm } from '../../enclave/nsm/index.js';
import { ADMIN_ROLE, PARENT_CREDENTIAL, PARENT_ROLE, TEST_ACCOUNT, startTestKms, type TestKms } from './harness.js';
import { rawKmsRequest } from './raw-request.js';

const PCRS = simulatedImagePcrs('attestation-conditions-image');
const PCR0 = toHex(PCRS.get(0)!);
const KEY = 'kms:RecipientAttestation:ImageSha384';

let t: TestKms;
let kms: KMSClient;
let nsm: Nsm;
let matching: Uint8Array;
let other: Uint8Array;

const recipient = (doc: Uint8Array) => ({ AttestationDocument: doc, KeyEncryptionAlgorithm: KeyEncryptionMechanism.RSAES_OAEP_SHA_256 });

function policy(actions: string[], condition: Record<string, Record<string, string>>): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Sid: 'admin', Effect: 'Allow', Principal: { AWS: ADMIN_ROLE }, Action: ['kms:PutKeyPolicy', 'kms:DescribeKey'], Resource: '*' },
      { Sid: 'host', Effect: 'Allow', Principal: { AWS: PARENT_ROLE }, Action: actions, Resource: '*', Condition: condition },
    ],
  });
}

async function keyWith(actions: string[], condition: Record<string, Record<string, string>>): Promise<string> {
  const admin = t.client({ accessKeyId: 'AKIATESTADMIN0000001', secretAccessKey: 'admin-secret-for-tests-only' });
  return (await admin.send(new CreateKeyCommand({ Policy: policy(actions, condition) }))).KeyMetadata!.KeyId!;
}

async function outcome(p: Promise<object>): Promise<string> {
  try {
    const r = (await p) as { Plaintext?: Uint8Array; CiphertextForRecipient?: Uint8Array };
    return r.Plaintext ? 'plaintext' : r.CiphertextForRecipient ? 'for-recipient' : 'ok';
  } catch (e) {
    return (e as Error).name;
  }
}

const gdk = (keyId: string, doc?: Uint8Array) => kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', ...(doc ? { Recipient: recipient(doc) } : {}) }));

beforeAll(async () => {
  t = await startTestKms();
  kms = t.client();
  nsm = createSimulatedNsm({ ca: t.ca, pcrs: PCRS });
  const { generateKeyPairSync } = await import('node:crypto');
  const spki = new Uint8Array(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }));
  matching = await nsm.attest({ publicKey: spki });
  other = await createSimulatedNsm({ ca: t.ca, pcrs: simulatedImagePcrs('another-image') }).attest({ publicKey: spki });
});
afterAll(async () => {
  nsm?.close();
  await t?.close();
});

describe('kms:RecipientAttestation conditions, as KMS evaluates them', () => {
  test('StringEqualsIgnoreCase: only a request with a matching document; none without Recipient', async () => {
    const k = await keyWith(['kms:GenerateDataKey'], { StringEqualsIgnoreCase: { [KEY]: PCR0.toUpperCase() } });
    expect(await outcome(gdk(k))).toBe('AccessDeniedException');
    expect(await outcome(gdk(k, other))).toBe('AccessDeniedException');
    expect(await outcome(gdk(k, matching))).toBe('for-recipient');
  });

  test('StringEqualsIgnoreCaseIfExists: a request WITHOUT Recipient satisfies it and gets the plaintext data key', async () => {
    const k = await keyWith(['kms:GenerateDataKey'], { StringEqualsIgnoreCaseIfExists: { [KEY]: PCR0 } });
    expect(await outcome(gdk(k))).toBe('plaintext');
    expect(await outcome(gdk(k, other))).toBe('AccessDeniedException');
    expect(await outcome(gdk(k, matching))).toBe('for-recipient');
  });

  test('Null true: satisfied only WITHOUT Recipient; Null false: only with a (any) verified document', async () => {
    const absent = await keyWith(['kms:GenerateDataKey'], { Null: { [KEY]: 'true' } });
    expect(await outcome(gdk(absent))).toBe('plaintext');
    expect(await outcome(gdk(absent, matching))).toBe('AccessDeniedException');
    const present = await keyWith(['kms:GenerateDataKey'], { Null: { [KEY]: 'false' } });
    expect(await outcome(gdk(present))).toBe('AccessDeniedException');
    expect(await outcome(gdk(present, other))).toBe('for-recipient');
  });

  test('a negated operator (StringNotEqualsIgnoreCase) is true when the key is absent', async () => {
    const k = await keyWith(['kms:GenerateDataKey'], { StringNotEqualsIgnoreCase: { [KEY]: '0'.repeat(96) } });
    expect(await outcome(gdk(k))).toBe('plaintext');
  });

  test('Encrypt never carries Recipient: an attestation-conditioned Encrypt is never allowed, even with a Recipient member on the wire', async () => {
    const k = await keyWith(['kms:Encrypt'], { StringEqualsIgnoreCase: { [KEY]: PCR0 } });
    expect(await outcome(kms.send(new EncryptCommand({ KeyId: k, Plaintext: new Uint8Array(32) })))).toBe('AccessDeniedException');
    const agent = new Agent({ ca: t.caPem });
    try {
      const r = await rawKmsRequest(t.emulator.url, {
        agent,
        target: 'TrentService.Encrypt',
        credential: PARENT_CREDENTIAL,
        body: JSON.stringify({ KeyId: k, Plaintext: Buffer.alloc(32).toString('base64'), Recipient: { AttestationDocument: Buffer.from(matching).toString('base64'), KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' } }),
      });
      expect(r.status).toBe(400);
      expect((r.json as { __type: string }).__type).toMatch(/AccessDeniedException/);
    } finally {
      agent.destroy();
    }
    // …and its IfExists form lets every Encrypt through (the key is never present).
    const hole = await keyWith(['kms:Encrypt'], { StringEqualsIgnoreCaseIfExists: { [KEY]: PCR0 } });
    expect(await outcome(kms.send(new EncryptCommand({ KeyId: hole, Plaintext: new Uint8Array(32) })))).toBe('ok');
  });
});

describe('presetKeys: a key with a chosen id (for images that pin a fixed ARN)', () => {
  test('made at start with that id and policy; kept as is on restart; bad ids refused', async () => {
    const keyId = '00000000-0000-4000-8000-00000000abcd';
    const p = await startTestKms({ presetKeys: [{ keyId, policy: policy(['kms:GenerateDataKey'], { StringEqualsIgnoreCase: { [KEY]: PCR0 } }), description: 'preset' }] });
    try {
      const cred = { accessKeyId: 'AKIATESTADMIN0000001', secretAccessKey: 'admin-secret-for-tests-only' };
      const admin = p.client(cred);
      const md = (await admin.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata!;
      expect(md.Arn).toBe(`arn:aws:kms:us-east-1:${TEST_ACCOUNT}:key/${keyId}`);
      expect(md.Description).toBe('preset');
      await p.restart();
      expect((await p.client(cred).send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata!.CreationDate).toEqual(md.CreationDate);
    } finally {
      await p.close();
    }
    // The refused start leaves no data directory behind (the harness made it in TMPDIR).
    const scratch = mkdtempSync(join(tmpdir(), 'kms-harness-'));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = scratch;
    try {
      await expect(startTestKms({ presetKeys: [{ keyId: 'NOT-A-UUID' }] })).rejects.toThrow(/not a lowercase UUID/);
      expect(readdirSync(scratch)).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
