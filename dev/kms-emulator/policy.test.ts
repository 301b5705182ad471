import { describe, expect, test } from 'vitest';
import { evaluatePolicy, parseKeyPolicy, defaultKeyPolicy, type RequestContext } from './policy.js';

const ACCT = '111122223333';
const PARENT = `arn:aws:iam::${ACCT}:role/enclave-parent`;
const KEY = `arn:aws:kms:us-east-1:${ACCT}:key/0f0e0d0c-0b0a-4908-8706-050403020100`;
const PCR0 = 'ab'.repeat(48);

function ctx(over: Partial<RequestContext> & { keys?: Record<string, string> } = {}): RequestContext {
  const { keys, ...rest } = over;
  return {
    principalArn: PARENT,
    accountId: ACCT,
    action: 'kms:Decrypt',
    resourceArn: KEY,
    conditionKeys: new Map(Object.entries(keys ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
    ...rest,
  };
}

const doc = (...Statement: unknown[]): string => JSON.stringify({ Version: '2012-10-17', Statement });

describe('parseKeyPolicy rejects what it cannot evaluate', () => {
  const cases: [string, string][] = [
    ['not JSON', '{"Version":'],
    ['not an object', '[1]'],
    ['no statements', JSON.stringify({ Version: '2012-10-17', Statement: [] })],
    ['bad version', JSON.stringify({ Version: '2020-01-01', Statement: [{ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*' }] })],
    ['unknown top-level element', JSON.stringify({ Version: '2012-10-17', Statment: [] })],
    ['bad effect', doc({ Effect: 'Permit', Principal: '*', Action: 'kms:*', Resource: '*' })],
    ['no principal', doc({ Effect: 'Allow', Action: 'kms:*', Resource: '*' })],
    ['both Action and NotAction', doc({ Effect: 'Allow', Principal: '*', Action: 'kms:*', NotAction: 'kms:Decrypt', Resource: '*' })],
    ['no resource', doc({ Effect: 'Allow', Principal: '*', Action: 'kms:*' })],
    ['bad principal', doc({ Effect: 'Allow', Principal: { AWS: 'bob' }, Action: 'kms:*', Resource: '*' })],
    ['unknown principal type', doc({ Effect: 'Allow', Principal: { Robot: 'x' }, Action: 'kms:*', Resource: '*' })],
    ['bad action', doc({ Effect: 'Allow', Principal: '*', Action: 'Decrypt', Resource: '*' })],
    ['unknown operator', doc({ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*', Condition: { NumericEquals: { 'kms:X': '1' } } })],
    ['ForAnyValue', doc({ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*', Condition: { 'ForAnyValue:StringEquals': { 'kms:X': '1' } } })],
    ['empty condition values', doc({ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*', Condition: { StringEquals: { 'kms:X': [] } } })],
    ['object condition value', doc({ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*', Condition: { StringEquals: { 'kms:X': { a: 1 } } } })],
    ['unknown statement element', doc({ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*', Conditions: {} })],
    ['duplicate Sid', doc({ Sid: 'a', Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*' }, { Sid: 'a', Effect: 'Deny', Principal: '*', Action: 'kms:*', Resource: '*' })],
    ['NotPrincipal with Allow', doc({ Effect: 'Allow', NotPrincipal: { AWS: PARENT }, Action: 'kms:*', Resource: '*' })],
    ['too long', doc({ Sid: 'x'.repeat(40000), Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*' })],
  ];
  test.each(cases)('%s → MalformedPolicyDocumentException', (_name, text) => {
    expect(() => parseKeyPolicy(text)).toThrow(expect.objectContaining({ type: 'MalformedPolicyDocumentException' }));
  });

  test('accepts a realistic enclave key policy and the default policy', () => {
    expect(parseKeyPolicy(defaultKeyPolicy(ACCT)).statements).toHaveLength(1);
    const p = parseKeyPolicy(
      doc(
        { Sid: 'admin', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCT}:role/kms-admin` }, Action: ['kms:*'], Resource: '*' },
        {
          Sid: 'enclave',
          Effect: 'Allow',
          Principal: { AWS: [PARENT] },
          Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
          Resource: '*',
          Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': PCR0, 'kms:RecipientAttestation:PCR8': '0'.repeat(96) } },
        },
      ),
    );
    expect(p.statements.map((s) => s.sid)).toEqual(['admin', 'enclave']);
    expect(p.statements[1]!.conditions.map((c) => c.key)).toEqual(['kms:recipientattestation:imagesha384', 'kms:recipientattestation:pcr8']);
  });
});

describe('evaluatePolicy', () => {
  const attested = parseKeyPolicy(
    doc({
      Sid: 'enclave',
      Effect: 'Allow',
      Principal: { AWS: PARENT },
      Action: 'kms:Decrypt',
      Resource: '*',
      Condition: { StringEquals: { 'kms:RecipientAttestation:ImageSha384': PCR0 } },
    }),
  );

  test('attestation condition: match (case-insensitive hex), mismatch, absent', () => {
    expect(evaluatePolicy(attested, ctx({ keys: { 'kms:RecipientAttestation:ImageSha384': PCR0 } })).decision).toBe('allow');
    expect(evaluatePolicy(attested, ctx({ keys: { 'kms:RecipientAttestation:ImageSha384': PCR0.toUpperCase() } })).decision).toBe('allow');
    expect(evaluatePolicy(attested, ctx({ keys: { 'kms:RecipientAttestation:ImageSha384': 'cd'.repeat(48) } })).decision).toBe('implicit-deny');
    expect(evaluatePolicy(attested, ctx()).decision).toBe('implicit-deny');
  });

  test('principal, action and resource must all match', () => {
    const k = { 'kms:RecipientAttestation:ImageSha384': PCR0 };
    expect(evaluatePolicy(attested, ctx({ keys: k, principalArn: `arn:aws:iam::${ACCT}:role/other` })).decision).toBe('implicit-deny');
    expect(evaluatePolicy(attested, ctx({ keys: k, action: 'kms:Encrypt' })).decision).toBe('implicit-deny');
    const pinned = parseKeyPolicy(doc({ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: `${KEY.slice(0, -4)}ffff` }));
    expect(evaluatePolicy(pinned, ctx()).decision).toBe('implicit-deny');
  });

  test('explicit Deny wins over Allow', () => {
    const p = parseKeyPolicy(
      doc(
        { Sid: 'all', Effect: 'Allow', Principal: { AWS: '*' }, Action: 'kms:*', Resource: '*' },
        { Sid: 'no-debug', Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*', Condition: { StringEquals: { 'kms:RecipientAttestation:PCR0': '0'.repeat(96) } } },
      ),
    );
    expect(evaluatePolicy(p, ctx({ keys: { 'kms:RecipientAttestation:PCR0': PCR0 } }))).toEqual({ decision: 'allow', statement: 'all' });
    expect(evaluatePolicy(p, ctx({ keys: { 'kms:RecipientAttestation:PCR0': '0'.repeat(96) } }))).toEqual({ decision: 'explicit-deny', statement: 'no-debug' });
  });

  test('action wildcards are case-insensitive; NotAction inverts', () => {
    const p = parseKeyPolicy(doc({ Effect: 'Allow', Principal: '*', Action: 'KMS:generate*', Resource: '*' }));
    expect(evaluatePolicy(p, ctx({ action: 'kms:GenerateDataKey' })).decision).toBe('allow');
    expect(evaluatePolicy(p, ctx({ action: 'kms:GenerateRandom' })).decision).toBe('allow');
    expect(evaluatePolicy(p, ctx({ action: 'kms:Decrypt' })).decision).toBe('implicit-deny');
    const q = parseKeyPolicy(doc({ Effect: 'Allow', Principal: '*', NotAction: ['kms:Decrypt', 'kms:ScheduleKeyDeletion'], Resource: '*' }));
    expect(evaluatePolicy(q, ctx({ action: 'kms:Decrypt' })).decision).toBe('implicit-deny');
    expect(evaluatePolicy(q, ctx({ action: 'kms:Encrypt' })).decision).toBe('allow');
  });

  test('account principal stands for every caller of that account (no IAM policies here)', () => {
    const p = parseKeyPolicy(defaultKeyPolicy(ACCT));
    expect(evaluatePolicy(p, ctx()).decision).toBe('allow');
    expect(evaluatePolicy(p, ctx({ principalArn: 'arn:aws:iam::999999999999:role/enclave-parent' })).decision).toBe('implicit-deny');
    const bare = parseKeyPolicy(doc({ Effect: 'Allow', Principal: { AWS: ACCT }, Action: 'kms:*', Resource: '*' }));
    expect(evaluatePolicy(bare, ctx()).decision).toBe('allow');
  });

  test('a role principal matches its assumed-role sessions', () => {
    const p = parseKeyPolicy(doc({ Effect: 'Allow', Principal: { AWS: PARENT }, Action: 'kms:*', Resource: '*' }));
    expect(evaluatePolicy(p, ctx({ principalArn: `arn:aws:sts::${ACCT}:assumed-role/enclave-parent/i-0123` })).decision).toBe('allow');
    expect(evaluatePolicy(p, ctx({ principalArn: `arn:aws:sts::${ACCT}:assumed-role/enclave-parentX/i-0123` })).decision).toBe('implicit-deny');
  });

  test('operators: IgnoreCase, Like, negations, IfExists, Null', () => {
    const one = (Condition: unknown) => parseKeyPolicy(doc({ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*', Condition }));
    const ec = (v?: string) => ctx(v === undefined ? {} : { keys: { 'kms:EncryptionContext:purpose': v } });
    expect(evaluatePolicy(one({ StringEquals: { 'kms:EncryptionContext:purpose': 'Keyring' } }), ec('keyring')).decision).toBe('implicit-deny');
    expect(evaluatePolicy(one({ StringEqualsIgnoreCase: { 'kms:EncryptionContext:purpose': 'Keyring' } }), ec('keyring')).decision).toBe('allow');
    expect(evaluatePolicy(one({ StringLike: { 'kms:EncryptionContext:purpose': 'key*' } }), ec('keyring')).decision).toBe('allow');
    expect(evaluatePolicy(one({ StringLike: { 'kms:EncryptionContext:purpose': 'k?y' } }), ec('keyring')).decision).toBe('implicit-deny');
    expect(evaluatePolicy(one({ StringNotEquals: { 'kms:EncryptionContext:purpose': 'x' } }), ec('keyring')).decision).toBe('allow');
    expect(evaluatePolicy(one({ StringNotEquals: { 'kms:EncryptionContext:purpose': 'keyring' } }), ec('keyring')).decision).toBe('implicit-deny');
    expect(evaluatePolicy(one({ StringEquals: { 'kms:EncryptionContext:purpose': 'keyring' } }), ec()).decision).toBe('implicit-deny');
    expect(evaluatePolicy(one({ StringEqualsIfExists: { 'kms:EncryptionContext:purpose': 'keyring' } }), ec()).decision).toBe('allow');
    expect(evaluatePolicy(one({ StringEqualsIfExists: { 'kms:EncryptionContext:purpose': 'keyring' } }), ec('other')).decision).toBe('implicit-deny');
    expect(evaluatePolicy(one({ Null: { 'kms:RecipientAttestation:ImageSha384': 'false' } }), ctx()).decision).toBe('implicit-deny');
    expect(evaluatePolicy(one({ Null: { 'kms:RecipientAttestation:ImageSha384': 'false' } }), ctx({ keys: { 'kms:RecipientAttestation:ImageSha384': PCR0 } })).decision).toBe('allow');
    // Values within a key are ORed; keys and operators are ANDed.
    expect(evaluatePolicy(one({ StringEquals: { 'kms:EncryptionContext:purpose': ['a', 'keyring'] } }), ec('keyring')).decision).toBe('allow');
    const both = one({ StringEquals: { 'kms:EncryptionContext:purpose': 'keyring' }, StringLike: { 'aws:PrincipalArn': '*:role/other' } });
    expect(evaluatePolicy(both, ctx({ keys: { 'kms:EncryptionContext:purpose': 'keyring', 'aws:PrincipalArn': PARENT } })).decision).toBe('implicit-deny');
  });

  test('a glob never matches across the pattern anchors', () => {
    const p = parseKeyPolicy(doc({ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*', Condition: { StringLike: { 'kms:RecipientAttestation:PCR0': 'ab*' } } }));
    expect(evaluatePolicy(p, ctx({ keys: { 'kms:RecipientAttestation:PCR0': PCR0 } })).decision).toBe('allow');
    expect(evaluatePolicy(p, ctx({ keys: { 'kms:RecipientAttestation:PCR0': `x${PCR0}` } })).decision).toBe('implicit-deny');
  });
});
