/**
 * The emulator driven by the unmodified @aws-sdk/client-kms over HTTPS
 * (only endpoint + trusted dev CA differ from production), plus hand-made
 * requests for inputs the SDK never sends.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  CancelKeyDeletionCommand,
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DeleteAliasCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyWithoutPlaintextCommand,
  GenerateRandomCommand,
  GetKeyPolicyCommand,
  ListAliasesCommand,
  ListKeysCommand,
  PutKeyPolicyCommand,
  ReEncryptCommand,
  ScheduleKeyDeletionCommand,
  UpdateAliasCommand,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { ADMIN_CREDENTIAL, ADMIN_ROLE, PARENT_CREDENTIAL, PARENT_ROLE, TEST_ACCOUNT, TEST_REGION, startTestKms, type TestKms } from './harness.js';
import { rawKmsRequest } from './raw-request.js';
import { startKmsEmulator } from './server.js';
import { openStateStore } from './state.js';
import { sweepDeletedKeys } from './operations.js';

const ARN_RE = new RegExp(`^arn:aws:kms:${TEST_REGION}:${TEST_ACCOUNT}:key/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`);

/** Runs `p`, expecting the SDK to throw the KMS exception `name`; returns the error. */
async function rejects(p: Promise<unknown>, name: string): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await p;
  } catch (e) {
    expect((e as Error).name, (e as Error).message).toBe(name);
    return e as Error;
  }
  throw new Error(`expected ${name}, but the call succeeded`);
}

const bytes = (s: string) => new TextEncoder().encode(s);

let t: TestKms;
let kms: KMSClient;
let admin: KMSClient;
const logLines: string[] = [];

beforeAll(async () => {
  t = await startTestKms({ log: (l) => logLines.push(l) });
  kms = t.client();
  admin = t.client(ADMIN_CREDENTIAL);
});
afterAll(async () => {
  await t?.close();
});

async function newKey(policy?: object, client: KMSClient = kms): Promise<{ keyId: string; arn: string }> {
  const r = await client.send(new CreateKeyCommand({ Description: 'test', ...(policy ? { Policy: JSON.stringify(policy) } : {}) }));
  return { keyId: r.KeyMetadata!.KeyId!, arn: r.KeyMetadata!.Arn! };
}

describe('operations through the real SDK', () => {
  test('CreateKey/DescribeKey return KMS-shaped KeyMetadata', async () => {
    const before = Date.now();
    const r = await kms.send(new CreateKeyCommand({ Description: 'keyring CMK' }));
    const md = r.KeyMetadata!;
    expect(md.Arn).toMatch(ARN_RE);
    expect(md.Arn!.endsWith(md.KeyId!)).toBe(true);
    expect(md).toMatchObject({
      AWSAccountId: TEST_ACCOUNT,
      Description: 'keyring CMK',
      Enabled: true,
      KeyState: 'Enabled',
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeySpec: 'SYMMETRIC_DEFAULT',
      CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
      Origin: 'AWS_KMS',
      KeyManager: 'CUSTOMER',
      EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
      MultiRegion: false,
    });
    // The SDK parsed the epoch-seconds number into a Date.
    expect(md.CreationDate).toBeInstanceOf(Date);
    expect(md.CreationDate!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(md.CreationDate!.getTime()).toBeLessThanOrEqual(Date.now() + 1000);

    await kms.send(new CreateAliasCommand({ AliasName: 'alias/describe-me', TargetKeyId: md.KeyId! }));
    for (const id of [md.KeyId!, md.Arn!, 'alias/describe-me', `arn:aws:kms:${TEST_REGION}:${TEST_ACCOUNT}:alias/describe-me`]) {
      const d = await kms.send(new DescribeKeyCommand({ KeyId: id }));
      expect(d.KeyMetadata!.KeyId, id).toBe(md.KeyId);
    }
    await rejects(kms.send(new DescribeKeyCommand({ KeyId: '00000000-0000-4000-8000-000000000000' })), 'NotFoundException');
    await rejects(kms.send(new DescribeKeyCommand({ KeyId: 'alias/nope' })), 'NotFoundException');
    await rejects(kms.send(new DescribeKeyCommand({ KeyId: `arn:aws:kms:eu-west-1:${TEST_ACCOUNT}:key/${md.KeyId}` })), 'NotFoundException');
    await rejects(kms.send(new DescribeKeyCommand({ KeyId: 'not-a-key' })), 'NotFoundException');
  });

  test('ListKeys paginates and lists every key', async () => {
    const a = await newKey();
    const b = await newKey();
    const seen: string[] = [];
    let marker: string | undefined;
    let pages = 0;
    do {
      const r = await kms.send(new ListKeysCommand({ Limit: 1, ...(marker ? { Marker: marker } : {}) }));
      expect(r.Keys).toHaveLength(1);
      expect(r.Keys![0]!.KeyArn).toMatch(ARN_RE);
      seen.push(r.Keys![0]!.KeyId!);
      marker = r.Truncated ? r.NextMarker : undefined;
      pages++;
    } while (marker && pages < 1000);
    expect(seen).toContain(a.keyId);
    expect(seen).toContain(b.keyId);
    expect(new Set(seen).size).toBe(seen.length);
    const all = await kms.send(new ListKeysCommand({}));
    expect(all.Keys!.map((k) => k.KeyId)).toEqual(seen);
    expect(all.Truncated).toBe(false);
    await rejects(kms.send(new ListKeysCommand({ Marker: 'bogus' })), 'InvalidMarkerException');
  });

  test('aliases: create, list (filtered), update, delete, name rules', async () => {
    const a = await newKey();
    const b = await newKey();
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/keyring', TargetKeyId: a.arn }));
    await rejects(kms.send(new CreateAliasCommand({ AliasName: 'alias/keyring', TargetKeyId: b.keyId })), 'AlreadyExistsException');
    await rejects(kms.send(new CreateAliasCommand({ AliasName: 'keyring2', TargetKeyId: b.keyId })), 'InvalidAliasNameException');
    await rejects(kms.send(new CreateAliasCommand({ AliasName: 'alias/aws/kms', TargetKeyId: b.keyId })), 'InvalidAliasNameException');
    await rejects(kms.send(new CreateAliasCommand({ AliasName: 'alias/x', TargetKeyId: 'alias/keyring' })), 'NotFoundException');

    const listed = await kms.send(new ListAliasesCommand({ KeyId: a.keyId }));
    expect(listed.Aliases).toHaveLength(1);
    expect(listed.Aliases![0]).toMatchObject({
      AliasName: 'alias/keyring',
      AliasArn: `arn:aws:kms:${TEST_REGION}:${TEST_ACCOUNT}:alias/keyring`,
      TargetKeyId: a.keyId,
    });
    expect(listed.Aliases![0]!.CreationDate).toBeInstanceOf(Date);

    await kms.send(new UpdateAliasCommand({ AliasName: 'alias/keyring', TargetKeyId: b.keyId }));
    expect((await kms.send(new DescribeKeyCommand({ KeyId: 'alias/keyring' }))).KeyMetadata!.KeyId).toBe(b.keyId);
    await kms.send(new DeleteAliasCommand({ AliasName: 'alias/keyring' }));
    await rejects(kms.send(new DescribeKeyCommand({ KeyId: 'alias/keyring' })), 'NotFoundException');
  });

  test('Encrypt/Decrypt with encryption context; wrong context and tampering → InvalidCiphertextException', async () => {
    const { keyId, arn } = await newKey();
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/enc', TargetKeyId: keyId }));
    const ec = { purpose: 'keyring', keyring: 'main' };
    const e = await kms.send(new EncryptCommand({ KeyId: 'alias/enc', Plaintext: bytes('hello enclave'), EncryptionContext: ec }));
    expect(e.KeyId).toBe(arn);
    expect(e.EncryptionAlgorithm).toBe('SYMMETRIC_DEFAULT');
    const d = await kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob!, EncryptionContext: { keyring: 'main', purpose: 'keyring' } }));
    expect(new TextDecoder().decode(d.Plaintext)).toBe('hello enclave');
    expect(d.KeyId).toBe(arn);
    expect(d.CiphertextForRecipient).toBeUndefined();

    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob! })), 'InvalidCiphertextException');
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob!, EncryptionContext: { ...ec, keyring: 'other' } })), 'InvalidCiphertextException');
    for (const i of [0, 10, 30, e.CiphertextBlob!.length - 20, e.CiphertextBlob!.length - 1]) {
      const bad = e.CiphertextBlob!.slice();
      bad[i] = bad[i]! ^ 0x40;
      await rejects(kms.send(new DecryptCommand({ CiphertextBlob: bad, EncryptionContext: ec })), 'InvalidCiphertextException');
    }
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: bytes('not a ciphertext at all, but long enough to parse'), EncryptionContext: ec })), 'InvalidCiphertextException');

    // Decrypt naming another key → IncorrectKeyException; naming the right one (by alias) works.
    const other = await newKey();
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob!, EncryptionContext: ec, KeyId: other.keyId })), 'IncorrectKeyException');
    const ok = await kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob!, EncryptionContext: ec, KeyId: 'alias/enc' }));
    expect(new TextDecoder().decode(ok.Plaintext)).toBe('hello enclave');

    await rejects(kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: new Uint8Array(4097) })), 'ValidationException');
  });

  test('GenerateDataKey, GenerateDataKeyWithoutPlaintext, GenerateRandom', async () => {
    const { keyId, arn } = await newKey();
    const g = await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: { k: 'v' } }));
    expect(g.Plaintext).toHaveLength(32);
    expect(g.KeyId).toBe(arn);
    const d = await kms.send(new DecryptCommand({ CiphertextBlob: g.CiphertextBlob!, EncryptionContext: { k: 'v' } }));
    expect(d.Plaintext).toEqual(g.Plaintext);

    expect((await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_128' }))).Plaintext).toHaveLength(16);
    expect((await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, NumberOfBytes: 64 }))).Plaintext).toHaveLength(64);
    await rejects(kms.send(new GenerateDataKeyCommand({ KeyId: keyId })), 'ValidationException');
    await rejects(kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', NumberOfBytes: 32 })), 'ValidationException');
    await rejects(kms.send(new GenerateDataKeyCommand({ KeyId: keyId, NumberOfBytes: 1025 })), 'ValidationException');

    const w = await kms.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, KeySpec: 'AES_256' }));
    expect((w as { Plaintext?: unknown }).Plaintext).toBeUndefined();
    expect(w.KeyId).toBe(arn);
    expect((await kms.send(new DecryptCommand({ CiphertextBlob: w.CiphertextBlob! }))).Plaintext).toHaveLength(32);

    const r1 = await kms.send(new GenerateRandomCommand({ NumberOfBytes: 1024 }));
    const r2 = await kms.send(new GenerateRandomCommand({ NumberOfBytes: 1024 }));
    expect(r1.Plaintext).toHaveLength(1024);
    expect(Buffer.from(r1.Plaintext!).equals(Buffer.from(r2.Plaintext!))).toBe(false);
    await rejects(kms.send(new GenerateRandomCommand({ NumberOfBytes: 0 })), 'ValidationException');
    await rejects(kms.send(new GenerateRandomCommand({ NumberOfBytes: 1025 })), 'ValidationException');
  });

  test('Disable/Enable: a disabled key refuses crypto with DisabledException', async () => {
    const { keyId } = await newKey();
    const e = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes('x') }));
    await kms.send(new DisableKeyCommand({ KeyId: keyId }));
    const md = (await kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata!;
    expect(md).toMatchObject({ KeyState: 'Disabled', Enabled: false });
    await rejects(kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes('x') })), 'DisabledException');
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob! })), 'DisabledException');
    await rejects(kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' })), 'DisabledException');
    await kms.send(new EnableKeyCommand({ KeyId: keyId }));
    expect((await kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob! }))).Plaintext).toEqual(bytes('x'));
    await rejects(kms.send(new EnableKeyCommand({ KeyId: 'alias/whatever' })), 'NotFoundException');
  });

  test('ScheduleKeyDeletion → PendingDeletion (KMSInvalidStateException); CancelKeyDeletion → Disabled', async () => {
    const { keyId, arn } = await newKey();
    const e = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes('x') }));
    await rejects(kms.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 6 })), 'ValidationException');
    const s = await kms.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 }));
    expect(s).toMatchObject({ KeyId: arn, KeyState: 'PendingDeletion', PendingWindowInDays: 7 });
    expect(s.DeletionDate!.getTime() - Date.now()).toBeGreaterThan(6.9 * 86_400_000);
    const md = (await kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata!;
    expect(md).toMatchObject({ KeyState: 'PendingDeletion', Enabled: false, PendingDeletionWindowInDays: 7 });
    expect(md.DeletionDate).toBeInstanceOf(Date);
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob! })), 'KMSInvalidStateException');
    await rejects(kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes('x') })), 'KMSInvalidStateException');
    await rejects(kms.send(new EnableKeyCommand({ KeyId: keyId })), 'KMSInvalidStateException');
    await rejects(kms.send(new ScheduleKeyDeletionCommand({ KeyId: keyId })), 'KMSInvalidStateException');
    expect((await kms.send(new CancelKeyDeletionCommand({ KeyId: keyId }))).KeyId).toBe(arn);
    expect((await kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata).toMatchObject({ KeyState: 'Disabled' });
    await rejects(kms.send(new CancelKeyDeletionCommand({ KeyId: keyId })), 'KMSInvalidStateException');
    await kms.send(new EnableKeyCommand({ KeyId: keyId }));
    expect((await kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob! }))).Plaintext).toEqual(bytes('x'));
  });

  test('ReEncrypt to a new key; the new ciphertext decrypts with the old key disabled', async () => {
    const oldKey = await newKey();
    const newK = await newKey();
    const g = await kms.send(new GenerateDataKeyCommand({ KeyId: oldKey.keyId, KeySpec: 'AES_256', EncryptionContext: { ring: 'a' } }));
    await rejects(
      kms.send(new ReEncryptCommand({ CiphertextBlob: g.CiphertextBlob!, SourceEncryptionContext: { ring: 'a' }, SourceKeyId: newK.keyId, DestinationKeyId: newK.keyId })),
      'IncorrectKeyException',
    );
    const r = await kms.send(
      new ReEncryptCommand({
        CiphertextBlob: g.CiphertextBlob!,
        SourceEncryptionContext: { ring: 'a' },
        SourceKeyId: oldKey.arn,
        DestinationKeyId: newK.keyId,
        DestinationEncryptionContext: { ring: 'b' },
      }),
    );
    expect(r).toMatchObject({ SourceKeyId: oldKey.arn, KeyId: newK.arn, SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT', DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT' });
    await kms.send(new DisableKeyCommand({ KeyId: oldKey.keyId }));
    const d = await kms.send(new DecryptCommand({ CiphertextBlob: r.CiphertextBlob!, EncryptionContext: { ring: 'b' } }));
    expect(d.Plaintext).toEqual(g.Plaintext);
    expect(d.KeyId).toBe(newK.arn);
    // The old blob is frozen with its key; re-encrypting out of a disabled key is refused too.
    await rejects(kms.send(new DecryptCommand({ CiphertextBlob: g.CiphertextBlob!, EncryptionContext: { ring: 'a' } })), 'DisabledException');
    await rejects(
      kms.send(new ReEncryptCommand({ CiphertextBlob: g.CiphertextBlob!, SourceEncryptionContext: { ring: 'a' }, DestinationKeyId: newK.keyId })),
      'DisabledException',
    );
  });

  test('DryRun reports DryRunOperationException and changes nothing', async () => {
    const { keyId } = await newKey();
    await rejects(kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes('x'), DryRun: true })), 'DryRunOperationException');
  });
});

describe('key policies through the SDK', () => {
  const adminStatement = { Sid: 'admin', Effect: 'Allow', Principal: { AWS: ADMIN_ROLE }, Action: 'kms:*', Resource: '*' };
  const parentEncrypt = { Sid: 'parent-encrypt', Effect: 'Allow', Principal: { AWS: PARENT_ROLE }, Action: ['kms:Encrypt', 'kms:DescribeKey'], Resource: '*' };

  test('PutKeyPolicy/GetKeyPolicy round-trip verbatim; policy governs who may do what', async () => {
    const { keyId } = await newKey(undefined, admin);
    const text = JSON.stringify({ Version: '2012-10-17', Statement: [adminStatement, parentEncrypt] }, null, 1);
    await admin.send(new PutKeyPolicyCommand({ KeyId: keyId, Policy: text }));
    const got = await admin.send(new GetKeyPolicyCommand({ KeyId: keyId }));
    expect(got.Policy).toBe(text);
    expect(got.PolicyName).toBe('default');

    const e = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes('x') }));
    const denied = await rejects(kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob! })), 'AccessDeniedException');
    expect(denied.message).toMatch(/enclave-parent is not authorized to perform: kms:Decrypt/);
    expect(denied.$metadata?.httpStatusCode).toBe(400);
    await rejects(kms.send(new GetKeyPolicyCommand({ KeyId: keyId })), 'AccessDeniedException');
    await rejects(kms.send(new DisableKeyCommand({ KeyId: keyId })), 'AccessDeniedException');
    await rejects(kms.send(new PutKeyPolicyCommand({ KeyId: keyId, Policy: text })), 'AccessDeniedException');
    expect((await admin.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob! }))).Plaintext).toEqual(bytes('x'));
  });

  test('explicit Deny beats the account-wide Allow', async () => {
    const { keyId } = await newKey({
      Version: '2012-10-17',
      Statement: [
        { Sid: 'account', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${TEST_ACCOUNT}:root` }, Action: 'kms:*', Resource: '*' },
        { Sid: 'no-parent-decrypt', Effect: 'Deny', Principal: { AWS: PARENT_ROLE }, Action: 'kms:Decrypt', Resource: '*' },
      ],
    });
    const e = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes('x') }));
    const err = await rejects(kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob! })), 'AccessDeniedException');
    expect(err.message).toMatch(/explicit deny/);
    expect((await admin.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob! }))).Plaintext).toEqual(bytes('x'));
  });

  test('malformed policies → MalformedPolicyDocumentException on CreateKey and PutKeyPolicy; lockout check', async () => {
    await rejects(kms.send(new CreateKeyCommand({ Policy: '{"Version": "2012-10-17", "Statement": [' })), 'MalformedPolicyDocumentException');
    await rejects(
      kms.send(new CreateKeyCommand({ Policy: JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 'kms:*' }] }) })),
      'MalformedPolicyDocumentException',
    );
    const { keyId } = await newKey();
    const before = (await kms.send(new GetKeyPolicyCommand({ KeyId: keyId }))).Policy;
    await rejects(kms.send(new PutKeyPolicyCommand({ KeyId: keyId, Policy: '{"Statement": "nope"}' })), 'MalformedPolicyDocumentException');
    // A policy that would lock the caller out is refused unless the caller bypasses the check.
    const lockout = JSON.stringify({ Version: '2012-10-17', Statement: [adminStatement] });
    const err = await rejects(kms.send(new PutKeyPolicyCommand({ KeyId: keyId, Policy: lockout })), 'MalformedPolicyDocumentException');
    expect(err.message).toMatch(/will not allow you to update the key policy/);
    expect((await kms.send(new GetKeyPolicyCommand({ KeyId: keyId }))).Policy).toBe(before);
    await kms.send(new PutKeyPolicyCommand({ KeyId: keyId, Policy: lockout, BypassPolicyLockoutSafetyCheck: true }));
    await rejects(kms.send(new GetKeyPolicyCommand({ KeyId: keyId })), 'AccessDeniedException');
    expect((await admin.send(new GetKeyPolicyCommand({ KeyId: keyId }))).Policy).toBe(lockout);
  });
});

describe('authentication', () => {
  test('a request signed with the wrong secret is rejected (InvalidSignatureException, 400)', async () => {
    const bad = t.client({ accessKeyId: PARENT_CREDENTIAL.accessKeyId, secretAccessKey: 'wrong-secret-entirely' });
    const err = await rejects(bad.send(new ListKeysCommand({})), 'InvalidSignatureException');
    expect(err.$metadata?.httpStatusCode).toBe(400);
  });

  test('an unknown access key is rejected (UnrecognizedClientException)', async () => {
    const bad = t.client({ accessKeyId: 'AKIANOBODY0000000000', secretAccessKey: PARENT_CREDENTIAL.secretAccessKey });
    await rejects(bad.send(new ListKeysCommand({})), 'UnrecognizedClientException');
  });

  test('session tokens: required when configured', async () => {
    const cred = { accessKeyId: 'AKIATOKEN00000000001', secretAccessKey: 'token-secret-xyz', sessionToken: 'session-token-abc', principalArn: PARENT_ROLE };
    const tk = await startTestKms({ credentials: [cred] });
    try {
      expect((await tk.client(cred).send(new ListKeysCommand({}))).Keys).toEqual([]);
      await rejects(tk.client({ ...cred, sessionToken: 'session-token-abd' }).send(new ListKeysCommand({})), 'UnrecognizedClientException');
      await rejects(tk.client({ accessKeyId: cred.accessKeyId, secretAccessKey: cred.secretAccessKey }).send(new ListKeysCommand({})), 'UnrecognizedClientException');
    } finally {
      await tk.close();
    }
  });
});

describe('bad requests get KMS-shaped errors and leave the server and its state intact', () => {
  test('malformed JSON, unknown target, oversized body, bad base64, bad types, no auth, wrong content type', async () => {
    const { keyId } = await newKey();
    const e = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes('survivor') }));
    const keysBefore = (await kms.send(new ListKeysCommand({ Limit: 1000 }))).Keys!.length;
    const stateBefore = readFileSync(join(t.dataDir, 'state.json'), 'utf8');
    const agent = new Agent({ ca: t.caPem, keepAlive: true, maxSockets: 1 });
    const send = (o: Partial<Parameters<typeof rawKmsRequest>[1]>) =>
      rawKmsRequest(t.emulator.url, { agent, body: '{}', target: 'TrentService.ListKeys', credential: PARENT_CREDENTIAL, ...o });
    try {
      const cases: [string, Partial<Parameters<typeof rawKmsRequest>[1]>, number, string][] = [
        ['malformed JSON', { body: '{"KeyId": ' }, 400, 'SerializationException'],
        ['JSON array', { body: '[1,2]' }, 400, 'SerializationException'],
        ['unknown target', { target: 'TrentService.MintMoney' }, 400, 'UnknownOperationException'],
        ['other service target', { target: 'DynamoDB_20120810.ListTables' }, 400, 'UnknownOperationException'],
        ['prototype name as target', { target: 'TrentService.constructor' }, 400, 'UnknownOperationException'],
        ['oversized body', { body: `{"Plaintext":"${'A'.repeat(1024 * 1024)}"}`, target: 'TrentService.Encrypt' }, 413, 'ValidationException'],
        ['bad base64', { body: JSON.stringify({ KeyId: keyId, Plaintext: 'not*base64!' }), target: 'TrentService.Encrypt' }, 400, 'SerializationException'],
        ['wrong member type', { body: JSON.stringify({ KeyId: 42, Plaintext: 'AAAA' }), target: 'TrentService.Encrypt' }, 400, 'SerializationException'],
        ['missing member', { body: JSON.stringify({ Plaintext: 'AAAA' }), target: 'TrentService.Encrypt' }, 400, 'ValidationException'],
        ['unknown key id', { body: JSON.stringify({ KeyId: '11111111-2222-4333-8444-555555555555', Plaintext: 'AAAA' }), target: 'TrentService.Encrypt' }, 400, 'NotFoundException'],
        ['bad encryption context', { body: JSON.stringify({ KeyId: keyId, Plaintext: 'AAAA', EncryptionContext: { a: 1 } }), target: 'TrentService.Encrypt' }, 400, 'SerializationException'],
        ['malformed policy', { body: JSON.stringify({ Policy: '{"Statement":[{}]}' }), target: 'TrentService.CreateKey' }, 400, 'MalformedPolicyDocumentException'],
        ['unsigned', { credential: undefined }, 400, 'MissingAuthenticationTokenException'],
        ['wrong region scope', { region: 'eu-west-1' }, 400, 'InvalidSignatureException'],
        ['wrong content type', { contentType: 'text/plain' }, 400, 'SerializationException'],
        ['wrong path', { path: '/admin' }, 400, 'UnknownOperationException'],
      ];
      for (const [name, o, status, type] of cases) {
        const r = await send(o);
        expect(r.status, name).toBe(status);
        expect(r.json, name).toMatchObject({ __type: type, message: expect.any(String) });
        expect(r.headers['content-type'], name).toBe('application/x-amz-json-1.1');
        // The next request on the same keep-alive connection still works.
        const next = await send({});
        expect(next.status, `after ${name}`).toBe(200);
        expect(next.reusedSocket, `connection survives ${name}`).toBe(true);
      }
    } finally {
      agent.destroy();
    }
    expect((await kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob! }))).Plaintext).toEqual(bytes('survivor'));
    expect((await kms.send(new ListKeysCommand({ Limit: 1000 }))).Keys!.length).toBe(keysBefore);
    expect(readFileSync(join(t.dataDir, 'state.json'), 'utf8')).toBe(stateBefore);
  });

  test('log lines name operations and outcomes but never key material', () => {
    const state = JSON.parse(readFileSync(join(t.dataDir, 'state.json'), 'utf8')) as { keys: { material: { key: string }[] }[] };
    const all = logLines.join('\n');
    expect(all).toMatch(/kms-local Decrypt 400 AccessDeniedException arn:aws:iam::111122223333:role\/enclave-parent/);
    expect(all).toMatch(/kms-local CreateKey 200/);
    for (const k of state.keys) for (const m of k.material) expect(all).not.toContain(m.key);
  });
});

describe('persistence', () => {
  test('restart over the same directory: same keys, aliases, policies and states; old ciphertexts decrypt', async () => {
    const tk = await startTestKms();
    try {
      let c = tk.client();
      const k = await c.send(new CreateKeyCommand({}));
      const id = k.KeyMetadata!.KeyId!;
      await c.send(new CreateAliasCommand({ AliasName: 'alias/persist', TargetKeyId: id }));
      const e = await c.send(new EncryptCommand({ KeyId: 'alias/persist', Plaintext: bytes('durable'), EncryptionContext: { a: 'b' } }));
      const disabled = await c.send(new CreateKeyCommand({}));
      await c.send(new DisableKeyCommand({ KeyId: disabled.KeyMetadata!.KeyId! }));

      const file = join(tk.dataDir, 'state.json');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(tk.dataDir).mode & 0o777).toBe(0o700);

      await tk.restart();
      c = tk.client();
      const d = await c.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob!, EncryptionContext: { a: 'b' } }));
      expect(new TextDecoder().decode(d.Plaintext)).toBe('durable');
      expect((await c.send(new DescribeKeyCommand({ KeyId: 'alias/persist' }))).KeyMetadata!.KeyId).toBe(id);
      expect((await c.send(new DescribeKeyCommand({ KeyId: disabled.KeyMetadata!.KeyId! }))).KeyMetadata!.KeyState).toBe('Disabled');
      expect((await c.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!.CreationDate).toEqual(k.KeyMetadata!.CreationDate);
    } finally {
      await tk.close();
    }
  });

  test('one emulator per directory; corrupt or foreign state refuses to start', async () => {
    const tls = t.ca.issueTlsServerCert(['127.0.0.1']);
    const base = { credentials: [PARENT_CREDENTIAL], tls: { cert: tls.chainPem, key: tls.keyPem }, region: TEST_REGION, accountId: TEST_ACCOUNT };
    await expect(startKmsEmulator({ ...base, dataDir: t.dataDir })).rejects.toMatchObject({ code: 'KMS_EMU_DATA_DIR_LOCKED' });

    const tk = await startTestKms();
    const dir = tk.dataDir;
    await tk.emulator.close();
    await expect(startKmsEmulator({ ...base, dataDir: dir, region: 'eu-west-1' })).rejects.toMatchObject({ code: 'KMS_EMU_STATE_MISMATCH' });
    const good = readFileSync(join(dir, 'state.json'), 'utf8');
    writeFileSync(join(dir, 'state.json'), good.slice(0, good.length / 2));
    await expect(startKmsEmulator({ ...base, dataDir: dir })).rejects.toMatchObject({ code: 'KMS_EMU_STATE_CORRUPT' });
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ ...JSON.parse(good), keys: [{ keyId: 'x' }] }));
    await expect(startKmsEmulator({ ...base, dataDir: dir })).rejects.toMatchObject({ code: 'KMS_EMU_STATE_CORRUPT' });
    writeFileSync(join(dir, 'state.json'), good);
    const again = await startKmsEmulator({ ...base, dataDir: dir });
    await again.close();
    await tk.close();
  });

  test('keys past their deletion date are deleted with their aliases', async () => {
    const tk = await startTestKms();
    try {
      const c = tk.client();
      const keep = await c.send(new CreateKeyCommand({}));
      const doomed = await c.send(new CreateKeyCommand({}));
      await c.send(new CreateAliasCommand({ AliasName: 'alias/doomed', TargetKeyId: doomed.KeyMetadata!.KeyId! }));
      await c.send(new ScheduleKeyDeletionCommand({ KeyId: doomed.KeyMetadata!.KeyId!, PendingWindowInDays: 7 }));
      await tk.emulator.close();
      const store = openStateStore(tk.dataDir, { region: TEST_REGION, accountId: TEST_ACCOUNT });
      expect(sweepDeletedKeys(store, new Date(Date.now() + 6 * 86_400_000))).toBe(0);
      expect(sweepDeletedKeys(store, new Date(Date.now() + 8 * 86_400_000))).toBe(1);
      expect(store.current().keys.map((k) => k.keyId)).toEqual([keep.KeyMetadata!.KeyId]);
      expect(store.current().aliases).toEqual([]);
      store.close();
    } finally {
      await tk.close();
    }
  });
});

describe('configuration is checked at startup', () => {
  test.each([
    ['non-loopback host', { host: '0.0.0.0' }],
    ['bad region', { region: 'mars' }],
    ['bad account', { accountId: '123' }],
    ['no credentials', { credentials: [] }],
    ['bad principal', { credentials: [{ ...PARENT_CREDENTIAL, principalArn: 'bob' }] }],
    ['duplicate access key', { credentials: [PARENT_CREDENTIAL, PARENT_CREDENTIAL] }],
  ])('%s → KMS_EMU_CONFIG', async (_n, over) => {
    const tls = t.ca.issueTlsServerCert(['127.0.0.1']);
    await expect(
      startKmsEmulator({ dataDir: join(t.dataDir, 'never'), credentials: [PARENT_CREDENTIAL], tls: { cert: tls.chainPem, key: tls.keyPem }, ...over }),
    ).rejects.toMatchObject({ code: 'KMS_EMU_CONFIG' });
  });
});
