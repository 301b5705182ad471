import { describe, expect, it } from 'vitest';
import { checkKeyPolicy, type FindingCode } from './kms-policy-check.js';

const ACCT = '111122223333';
const PARENT = `arn:aws:iam::${ACCT}:role/enclave-parent`;
const ADMIN = `arn:aws:iam::${ACCT}:role/kms-admin`;
const PCR0 = 'ab'.repeat(48);
const PCR1 = 'cd'.repeat(48);
const PCR2 = 'ef'.repeat(48);
const MANIFEST = { '0': PCR0, '1': PCR1, '2': PCR2 };
const ZEROS = '0'.repeat(96);

const admin = { Sid: 'KeyAdministration', Effect: 'Allow', Principal: { AWS: ADMIN }, Action: ['kms:Describe*', 'kms:Get*', 'kms:List*', 'kms:PutKeyPolicy', 'kms:Enable*', 'kms:Disable*', 'kms:ScheduleKeyDeletion', 'kms:CancelKeyDeletion'], Resource: '*' };
const enclave = (Condition: unknown, extra: Record<string, unknown> = {}) => ({ Sid: 'EnclaveOnly', Effect: 'Allow', Principal: { AWS: PARENT }, Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: '*', Condition, ...extra });
const attested = { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': PCR0.toUpperCase(), 'kms:RecipientAttestation:PCR2': PCR2 } };
const doc = (...Statement: unknown[]) => JSON.stringify({ Version: '2012-10-17', Statement });
const codes = (text: string, admins?: string[]) => checkKeyPolicy(text, { manifestPcrs: MANIFEST, ...(admins ? { admins } : {}) }).findings.map((f) => f.code);

describe('kms check-policy: good policies pass', () => {
  it.each([
    ['admin + attested Decrypt/GenerateDataKey (ImageSha384 and PCR2)', doc(admin, enclave(attested))],
    ['PCR0 instead of ImageSha384, StringEquals, a PCR3 role binding not in the manifest', doc(admin, enclave({ StringEquals: { 'kms:RecipientAttestation:PCR0': PCR0, 'kms:RecipientAttestation:PCR3': '12'.repeat(48) } }))],
    ['a Deny on debug PCRs alongside', doc(admin, enclave(attested), { Sid: 'NoDebug', Effect: 'Deny', Principal: '*', Action: 'kms:*', Resource: '*', Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:PCR0': ZEROS } } })],
    ['ReEncrypt on the same key only', doc(admin, enclave(attested), { Sid: 'Rotate', Effect: 'Allow', Principal: { AWS: ADMIN }, Action: 'kms:ReEncrypt*', Resource: '*', Condition: { Bool: { 'kms:ReEncryptOnSameKey': 'true' } } })],
  ])('%s', (_n, text) => {
    expect(checkKeyPolicy(text, { manifestPcrs: MANIFEST })).toEqual({ ok: true, statements: expect.any(Number), findings: [] });
  });
});

describe('kms check-policy: every way a data key can exist outside the enclave is a finding', () => {
  const cases: [string, string, FindingCode[]][] = [
    ['Encrypt to the parent', doc(admin, enclave(attested), { Sid: 'Store', Effect: 'Allow', Principal: { AWS: PARENT }, Action: 'kms:Encrypt', Resource: '*' }), ['ENCRYPT_ALLOWED']],
    ['Encrypt even with an attestation condition', doc(admin, enclave(attested, { Action: ['kms:Decrypt', 'kms:Encrypt'] })), ['ENCRYPT_ALLOWED']],
    ['kms:* with attestation conditions still covers Encrypt, ReEncrypt, grants and the policy', doc(admin, enclave(attested, { Action: 'kms:*' })), ['ENCRYPT_ALLOWED', 'NO_RECIPIENT_DATA_KEY', 'NO_RECIPIENT_DATA_KEY', 'REENCRYPT_ALLOWED', 'REENCRYPT_ALLOWED', 'ADMIN_ACTION_TO_NON_ADMIN', 'ADMIN_ACTION_TO_NON_ADMIN', 'ADMIN_ACTION_TO_NON_ADMIN', 'ADMIN_ACTION_TO_NON_ADMIN']],
    ['the AWS default policy (account root kms:*)', doc({ Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCT}:root` }, Action: 'kms:*', Resource: '*' }), ['ENCRYPT_ALLOWED', 'NO_RECIPIENT_DATA_KEY', 'NO_RECIPIENT_DATA_KEY', 'REENCRYPT_ALLOWED', 'REENCRYPT_ALLOWED', 'ADMIN_ACTION_TO_NON_ADMIN', 'ADMIN_ACTION_TO_NON_ADMIN', 'ADMIN_ACTION_TO_NON_ADMIN', 'ADMIN_ACTION_TO_NON_ADMIN', 'NO_ATTESTATION', 'NO_ATTESTATION', 'NO_ATTESTATION', 'NO_ATTESTATION', 'NO_ATTESTATION']],
    ['wildcard action kms:*crypt* (and the admin who may now Decrypt may also rewrite the policy)', doc(admin, enclave(attested), { Sid: 'W', Effect: 'Allow', Principal: { AWS: ADMIN }, Action: 'kms:*crypt*', Resource: '*' }), ['ENCRYPT_ALLOWED', 'REENCRYPT_ALLOWED', 'REENCRYPT_ALLOWED', 'NO_ATTESTATION', 'ADMIN_ACTION_TO_NON_ADMIN']],
    ['Decrypt without conditions', doc(admin, enclave(undefined)), ['NO_ATTESTATION', 'NO_ATTESTATION']],
    ['GenerateDataKey* without conditions', doc(admin, enclave(attested), { Sid: 'G', Effect: 'Allow', Principal: { AWS: PARENT }, Action: 'kms:GenerateDataKey*', Resource: '*' }), ['NO_RECIPIENT_DATA_KEY', 'NO_RECIPIENT_DATA_KEY', 'NO_ATTESTATION', 'NO_ATTESTATION']],
    ['only PCR2 pinned (any kernel, no PCR0)', doc(admin, enclave({ StringEqualsIgnoreCase: { 'kms:RecipientAttestation:PCR2': PCR2 } })), ['NO_ATTESTATION', 'NO_ATTESTATION']],
    ['IfExists', doc(admin, enclave({ StringEqualsIgnoreCaseIfExists: { 'kms:RecipientAttestation:ImageSha384': PCR0 } })), ['IF_EXISTS', 'NO_ATTESTATION', 'NO_ATTESTATION']],
    ['IfExists beside a real pin still leaks nothing more, but is flagged', doc(admin, enclave({ ...attested, StringEqualsIfExists: { 'kms:RecipientAttestation:PCR1': PCR1 } })), ['IF_EXISTS']],
    ['Null true', doc(admin, enclave({ Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } })), ['NULL_CONDITION', 'NO_ATTESTATION', 'NO_ATTESTATION']],
    ['Null false alone pins no image', doc(admin, enclave({ Null: { 'kms:RecipientAttestation:ImageSha384': 'false' } })), ['NO_ATTESTATION', 'NO_ATTESTATION']],
    ['negated operator', doc(admin, enclave({ StringNotEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': ZEROS } })), ['NEGATED_CONDITION', 'NO_ATTESTATION', 'NO_ATTESTATION']],
    ['ForAllValues', doc(admin, enclave({ 'ForAllValues:StringEquals': { 'kms:RecipientAttestation:ImageSha384': PCR0 } })), ['SET_OPERATOR', 'NO_ATTESTATION', 'NO_ATTESTATION']],
    ['StringLike wildcard', doc(admin, enclave({ StringLike: { 'kms:RecipientAttestation:ImageSha384': 'ab*' } })), ['WILDCARD_MEASUREMENT', 'NO_ATTESTATION', 'NO_ATTESTATION']],
    ['debug zeros', doc(admin, enclave({ StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': ZEROS } })), ['DEBUG_PCR', 'NO_ATTESTATION', 'NO_ATTESTATION']],
    ['a second, unlisted image', doc(admin, enclave({ StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': [PCR0, '99'.repeat(48)] } })), ['PCR_MISMATCH', 'NO_ATTESTATION', 'NO_ATTESTATION']],
    ['PCR2 of another build', doc(admin, enclave({ StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': PCR0, 'kms:RecipientAttestation:PCR2': '77'.repeat(48) } })), ['PCR_MISMATCH']],
    ['Bool on an attestation key', doc(admin, enclave({ ...attested, Bool: { 'kms:RecipientAttestation:PCR1': 'true' } })), ['UNSUPPORTED_CONDITION']],
    ['wildcard principal', doc(admin, enclave(attested, { Principal: '*' })), ['WILDCARD_PRINCIPAL']],
    ['wildcard AWS principal', doc(admin, enclave(attested, { Principal: { AWS: ['*'] } })), ['WILDCARD_PRINCIPAL']],
    ['NotPrincipal', doc(admin, { Sid: 'NP', Effect: 'Allow', NotPrincipal: { AWS: ADMIN }, Action: 'kms:Decrypt', Resource: '*' }), ['NOT_PRINCIPAL', 'NO_ATTESTATION']],
    ['NotAction', doc(admin, { Sid: 'NA', Effect: 'Allow', Principal: { AWS: ADMIN }, NotAction: ['kms:Decrypt', 'kms:GenerateDataKey', 'kms:GenerateDataKeyPair', 'kms:GenerateRandom', 'kms:DeriveSharedSecret', 'kms:ScheduleKeyDeletion'], Resource: '*' }), ['NOT_ACTION', 'ENCRYPT_ALLOWED', 'NO_RECIPIENT_DATA_KEY', 'NO_RECIPIENT_DATA_KEY', 'REENCRYPT_ALLOWED', 'REENCRYPT_ALLOWED']],
    ['ReEncrypt* to the admin', doc(admin, enclave(attested), { Sid: 'R', Effect: 'Allow', Principal: { AWS: ADMIN }, Action: 'kms:ReEncrypt*', Resource: '*' }), ['REENCRYPT_ALLOWED', 'REENCRYPT_ALLOWED']],
    ['CreateGrant to the parent', doc(admin, enclave(attested), { Sid: 'Grant', Effect: 'Allow', Principal: { AWS: PARENT }, Action: 'kms:CreateGrant', Resource: '*' }), ['ADMIN_ACTION_TO_NON_ADMIN']],
    ['PutKeyPolicy to the parent (the enclave principal)', doc(admin, enclave(attested), { Sid: 'Put', Effect: 'Allow', Principal: { AWS: PARENT }, Action: 'kms:Put*', Resource: '*' }), ['ADMIN_ACTION_TO_NON_ADMIN']],
    ['a Deny is not credited', doc(admin, enclave(undefined), { Sid: 'D', Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*', Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } } }), ['NO_ATTESTATION', 'NO_ATTESTATION']],
  ];
  it.each(cases)('%s', (_n, text, expected) => {
    expect(codes(text).sort()).toEqual([...expected].sort());
  });

  it('each finding names the statement (Sid or index), the action and why', () => {
    const r = checkKeyPolicy(doc(admin, { Effect: 'Allow', Principal: { AWS: PARENT }, Action: 'kms:Encrypt', Resource: '*' }), { manifestPcrs: MANIFEST });
    expect(r.ok).toBe(false);
    expect(r.findings).toEqual([{ statement: '#1', index: 1, sid: null, action: 'kms:Encrypt', code: 'ENCRYPT_ALLOWED', message: expect.stringMatching(/never carries an attestation document/) }]);
    const s = checkKeyPolicy(doc(admin, enclave(undefined)), { manifestPcrs: MANIFEST }).findings[0]!;
    expect(s).toMatchObject({ statement: 'Sid "EnclaveOnly" (#1)', sid: 'EnclaveOnly', action: 'kms:Decrypt', code: 'NO_ATTESTATION' });
  });

  it('--admin narrows who may administer the key', () => {
    expect(codes(doc(admin, enclave(attested)), [ADMIN])).toEqual([]);
    expect(codes(doc(admin, enclave(attested)), ['arn:aws:iam::111122223333:role/someone-else'])).toEqual(['ADMIN_ACTION_TO_NON_ADMIN']);
  });

  it('refuses what it cannot judge', () => {
    expect(() => codes('{')).toThrow(expect.objectContaining({ code: 'POLICY_CHECK_MALFORMED' }));
    expect(() => codes(JSON.stringify({ Statement: [] }))).toThrow(/no Statement/);
    expect(() => codes(doc({ Effect: 'Allow', Principal: '*', Resource: '*' }))).toThrow(/Action/);
    expect(() => checkKeyPolicy(doc(admin), { manifestPcrs: { '1': PCR1 } })).toThrow(expect.objectContaining({ code: 'POLICY_CHECK_BAD_MANIFEST' }));
  });
});
