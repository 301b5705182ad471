/**
 * The TrentService operations. Each handler validates its members, resolves
 * the key, authorizes against the key policy (explicit Deny > Allow >
 * default deny), checks the key state, and only then touches key material.
 * Mutations go through the state store, so they are durable before the
 * response is written. Plaintext and material buffers are wiped after use.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { wipe } from '../../common/bytes.js';
import type { TrustRoot } from '../../attestation/types.js';
import { MATERIAL_BYTES, openBlob, readBlobHeader, sealBlob, type EncryptionContext } from './blob.js';
import { KmsError } from './errors.js';
import {
  optBool,
  optContext,
  optEnum,
  optInt,
  optString,
  optStringList,
  reqBlob,
  reqString,
  validation,
  type Input,
} from './input.js';
import { defaultKeyPolicy, evaluatePolicy, parseKeyPolicy, type KeyPolicy } from './policy.js';
import { readRecipient, sealForRecipient, type VerifiedRecipient } from './recipient.js';
import { ALIAS_NAME_RE, aliasArn, keyArn, resolveKey, type Resolved } from './resolve.js';
import type { AliasRecord, EmulatorState, KeyRecord, StateStore } from './state.js';

export interface Caller {
  accessKeyId: string;
  principalArn: string;
}

export interface OperationContext {
  store: StateStore;
  caller: Caller;
  attestationRoot: TrustRoot;
  now: Date;
}

/** A handler returns the response members, or undefined for operations with no output. */
export type Operation = (input: Input, ctx: OperationContext) => Record<string, unknown> | undefined;

const SYMMETRIC_DEFAULT = 'SYMMETRIC_DEFAULT';
const MAX_PLAINTEXT = 4096;
const MAX_CIPHERTEXT = 6144;
const MAX_KEY_ID = 2048;
const DEFAULT_LIST_LIMIT = 100;

// ───────────────────────────── helpers ─────────────────────────────

const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
const epochSeconds = (ms: number): number => ms / 1000;

/** Parsed policies by text: the same few policies are evaluated on every request. */
const policyCache = new Map<string, KeyPolicy>();
function policyOf(key: KeyRecord): KeyPolicy {
  let p = policyCache.get(key.policy);
  if (!p) {
    p = parseKeyPolicy(key.policy);
    if (policyCache.size > 256) policyCache.clear();
    policyCache.set(key.policy, p);
  }
  return p;
}

function accountOf(principalArn: string): string | undefined {
  return /^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):/.exec(principalArn)?.[1];
}

interface AuthExtras {
  encryptionContext?: EncryptionContext | undefined;
  recipient?: VerifiedRecipient | undefined;
  alias?: AliasRecord | undefined;
}

/** The request's condition keys (lowercased names). Attestation keys exist only with a verified document. */
function conditionKeys(ctx: OperationContext, extras: AuthExtras): Map<string, string> {
  const m = new Map<string, string>();
  m.set('aws:principalarn', ctx.caller.principalArn);
  const acct = accountOf(ctx.caller.principalArn);
  if (acct !== undefined) {
    m.set('aws:principalaccount', acct);
    m.set('kms:calleraccount', acct);
  }
  if (extras.alias) m.set('kms:requestalias', extras.alias.name);
  for (const [k, v] of Object.entries(extras.encryptionContext ?? {})) {
    const name = `kms:encryptioncontext:${k.toLowerCase()}`;
    if (!m.has(name)) m.set(name, v);
  }
  if (extras.recipient) for (const [k, v] of extras.recipient.conditionKeys) m.set(k, v);
  return m;
}

function authorize(ctx: OperationContext, state: EmulatorState, key: KeyRecord, action: string, extras: AuthExtras = {}): void {
  const arn = keyArn(state, key.keyId);
  const d = evaluatePolicy(policyOf(key), {
    principalArn: ctx.caller.principalArn,
    accountId: state.accountId,
    action,
    resourceArn: arn,
    conditionKeys: conditionKeys(ctx, extras),
  });
  if (d.decision === 'allow') return;
  const why =
    d.decision === 'explicit-deny'
      ? `with an explicit deny in a resource-based policy (statement ${d.statement})`
      : `because no resource-based policy allows the ${action} action`;
  throw new KmsError('AccessDeniedException', `User: ${ctx.caller.principalArn} is not authorized to perform: ${action} on resource: ${arn} ${why}`);
}

/** Cryptographic operations need an Enabled key. */
function requireEnabled(state: EmulatorState, key: KeyRecord): void {
  const arn = keyArn(state, key.keyId);
  if (key.state === 'Disabled') throw new KmsError('DisabledException', `${arn} is disabled.`);
  if (key.state === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${arn} is pending deletion.`);
}

function requireNotPendingDeletion(state: EmulatorState, key: KeyRecord): void {
  if (key.state === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${keyArn(state, key.keyId)} is pending deletion.`);
}

function encrypt(key: KeyRecord, plaintext: Uint8Array, ec: EncryptionContext | undefined): Uint8Array {
  const current = key.material.reduce((a, b) => (b.version > a.version ? b : a));
  const material = Buffer.from(current.key, 'base64');
  try {
    return sealBlob({ keyId: key.keyId, materialVersion: current.version }, material, plaintext, ec);
  } finally {
    wipe(material);
  }
}

/** The key a blob names, or InvalidCiphertextException: an unknown key id means we cannot authenticate it. */
function blobKey(state: EmulatorState, blob: Uint8Array): KeyRecord {
  const header = readBlobHeader(blob);
  const key = state.keys.find((k) => k.keyId === header.keyId);
  if (!key) {
    throw new KmsError('InvalidCiphertextException', 'The ciphertext refers to a key that does not exist in this emulator (or was modified).');
  }
  return key;
}

function decrypt(key: KeyRecord, blob: Uint8Array, ec: EncryptionContext | undefined): Uint8Array {
  const header = readBlobHeader(blob);
  const m = key.material.find((x) => x.version === header.materialVersion);
  if (!m) throw new KmsError('InvalidCiphertextException', 'The ciphertext names a key material version this key does not have.');
  const material = Buffer.from(m.key, 'base64');
  try {
    return openBlob(blob, material, ec);
  } finally {
    wipe(material);
  }
}

/** With KeyId given, Decrypt/ReEncrypt insist the blob was made under that key. */
function checkExpectedKey(state: EmulatorState, key: KeyRecord, keyIdArg: string | undefined, member: string): void {
  if (keyIdArg === undefined) return;
  const named = resolveKey(state, keyIdArg, { allowAlias: true }).key;
  if (named.keyId !== key.keyId) {
    throw new KmsError('IncorrectKeyException', `The key ID in the request (${member}) does not identify a KMS key that can perform this operation on this ciphertext.`);
  }
}

function algorithm(input: Input, name: string): void {
  optEnum(input, name, [SYMMETRIC_DEFAULT]);
}

/** Grant tokens are accepted (the SDK may send them) but grants are not modelled. */
function grantTokens(input: Input): void {
  const t = optStringList(input, 'GrantTokens');
  if (t && t.length > 10) throw validation('GrantTokens', 'Member must have length less than or equal to 10');
}

function dryRun(input: Input): void {
  if (optBool(input, 'DryRun') === true) throw new KmsError('DryRunOperationException', 'The request would have succeeded, but the DryRun option is set.');
}

function keyMetadata(state: EmulatorState, k: KeyRecord): Record<string, unknown> {
  const md: Record<string, unknown> = {
    AWSAccountId: state.accountId,
    KeyId: k.keyId,
    Arn: keyArn(state, k.keyId),
    CreationDate: epochSeconds(k.creationDate),
    Enabled: k.state === 'Enabled',
    Description: k.description,
    KeyUsage: 'ENCRYPT_DECRYPT',
    KeyState: k.state,
    Origin: 'AWS_KMS',
    KeyManager: 'CUSTOMER',
    CustomerMasterKeySpec: SYMMETRIC_DEFAULT,
    KeySpec: SYMMETRIC_DEFAULT,
    EncryptionAlgorithms: [SYMMETRIC_DEFAULT],
    MultiRegion: false,
  };
  if (k.state === 'PendingDeletion' && k.deletionDate !== undefined) {
    md.DeletionDate = epochSeconds(k.deletionDate);
    md.PendingDeletionWindowInDays = k.pendingWindowInDays;
  }
  return md;
}

function paginate<T>(items: T[], idOf: (t: T) => string, input: Input): { page: T[]; next: string | undefined } {
  const limit = optInt(input, 'Limit', 1, 1000) ?? DEFAULT_LIST_LIMIT;
  const marker = optString(input, 'Marker', { max: 1024 });
  let start = 0;
  if (marker !== undefined) {
    const after = Buffer.from(marker, 'base64url').toString('utf8');
    const i = items.findIndex((t) => idOf(t) === after);
    if (i < 0 || Buffer.from(after, 'utf8').toString('base64url') !== marker) {
      throw new KmsError('InvalidMarkerException', 'The request was rejected because the marker that specifies where pagination should next begin is not valid.');
    }
    start = i + 1;
  }
  const page = items.slice(start, start + limit);
  const last = page[page.length - 1];
  const next = start + limit < items.length && last !== undefined ? Buffer.from(idOf(last), 'utf8').toString('base64url') : undefined;
  return { page, next };
}

/** Policy syntax, plus KMS's lockout safety check: the caller must still be able to change the policy afterwards. */
function checkNewPolicy(ctx: OperationContext, state: EmulatorState, keyId: string, text: string, bypass: boolean): void {
  const policy = parseKeyPolicy(text);
  if (bypass) return;
  const d = evaluatePolicy(policy, {
    principalArn: ctx.caller.principalArn,
    accountId: state.accountId,
    action: 'kms:PutKeyPolicy',
    resourceArn: keyArn(state, keyId),
    conditionKeys: conditionKeys(ctx, {}),
  });
  if (d.decision !== 'allow') {
    throw new KmsError('MalformedPolicyDocumentException', 'The new key policy will not allow you to update the key policy in the future.', {
      hint: 'add a statement allowing kms:PutKeyPolicy to an administrator principal, or set BypassPolicyLockoutSafetyCheck',
    });
  }
}

function draftKey(draft: EmulatorState, keyId: string): KeyRecord {
  const k = draft.keys.find((x) => x.keyId === keyId);
  if (!k) throw new KmsError('NotFoundException', `Key '${keyArn(draft, keyId)}' does not exist`);
  return k;
}

function resolveArg(state: EmulatorState, input: Input, member: string, allowAlias: boolean): Resolved {
  return resolveKey(state, reqString(input, member, { max: MAX_KEY_ID }), { allowAlias });
}

function dataKeyLength(input: Input): number {
  const n = optInt(input, 'NumberOfBytes', 1, 1024);
  const spec = optEnum(input, 'KeySpec', ['AES_256', 'AES_128']);
  if (n !== undefined && spec !== undefined) throw new KmsError('ValidationException', 'Please specify either number of bytes or key spec, not both.');
  if (n === undefined && spec === undefined) throw new KmsError('ValidationException', 'Please specify either number of bytes or key spec.');
  return n ?? (spec === 'AES_128' ? 16 : 32);
}

// ─────────────────────────── operations ───────────────────────────

const CreateKey: Operation = (input, ctx) => {
  const policyText = optString(input, 'Policy', { max: 32768 });
  const description = optString(input, 'Description', { min: 0, max: 8192 }) ?? '';
  const usage = optString(input, 'KeyUsage');
  const spec = optString(input, 'KeySpec') ?? optString(input, 'CustomerMasterKeySpec');
  const origin = optString(input, 'Origin');
  const bypass = optBool(input, 'BypassPolicyLockoutSafetyCheck') ?? false;
  const multiRegion = optBool(input, 'MultiRegion');
  if (usage !== undefined && usage !== 'ENCRYPT_DECRYPT') throw new KmsError('UnsupportedOperationException', `KeyUsage ${usage} is not supported by the KMS emulator (ENCRYPT_DECRYPT only)`);
  if (spec !== undefined && spec !== SYMMETRIC_DEFAULT) throw new KmsError('UnsupportedOperationException', `KeySpec ${spec} is not supported by the KMS emulator (SYMMETRIC_DEFAULT only)`);
  if (origin !== undefined && origin !== 'AWS_KMS') throw new KmsError('UnsupportedOperationException', `Origin ${origin} is not supported by the KMS emulator (AWS_KMS only)`);
  if (multiRegion === true) throw new KmsError('UnsupportedOperationException', 'multi-Region keys are not supported by the KMS emulator');
  if (optString(input, 'CustomKeyStoreId') !== undefined || optString(input, 'XksKeyId') !== undefined) {
    throw new KmsError('UnsupportedOperationException', 'custom key stores are not supported by the KMS emulator');
  }
  const keyId = randomUUID();
  const state = ctx.store.current();
  const policy = policyText ?? defaultKeyPolicy(state.accountId);
  if (policyText !== undefined) checkNewPolicy(ctx, state, keyId, policyText, bypass);
  const material = randomBytes(MATERIAL_BYTES);
  const record: KeyRecord = {
    keyId,
    creationDate: ctx.now.getTime(),
    description,
    state: 'Enabled',
    policy,
    material: [{ version: 1, key: material.toString('base64') }],
  };
  wipe(material);
  const after = ctx.store.mutate((d) => {
    d.keys.push(record);
    return d;
  });
  return { KeyMetadata: keyMetadata(after, record) };
};

const DescribeKey: Operation = (input, ctx) => {
  grantTokens(input);
  const state = ctx.store.current();
  const { key, alias } = resolveArg(state, input, 'KeyId', true);
  authorize(ctx, state, key, 'kms:DescribeKey', { alias });
  return { KeyMetadata: keyMetadata(state, key) };
};

const ListKeys: Operation = (input, ctx) => {
  const state = ctx.store.current();
  const { page, next } = paginate(state.keys, (k) => k.keyId, input);
  return {
    Keys: page.map((k) => ({ KeyId: k.keyId, KeyArn: keyArn(state, k.keyId) })),
    Truncated: next !== undefined,
    ...(next === undefined ? {} : { NextMarker: next }),
  };
};

const CreateAlias: Operation = (input, ctx) => {
  const name = reqString(input, 'AliasName', { max: 256 });
  if (!ALIAS_NAME_RE.test(name)) throw new KmsError('InvalidAliasNameException', `Alias name ${name} must begin with 'alias/' and contain only alphanumerics, '/', '_' and '-'.`);
  if (name.startsWith('alias/aws/')) throw new KmsError('InvalidAliasNameException', 'Alias names beginning with alias/aws/ are reserved for AWS managed keys.');
  const state = ctx.store.current();
  const { key } = resolveArg(state, input, 'TargetKeyId', false);
  authorize(ctx, state, key, 'kms:CreateAlias');
  requireNotPendingDeletion(state, key);
  ctx.store.mutate((d) => {
    if (d.aliases.some((a) => a.name === name)) throw new KmsError('AlreadyExistsException', `An alias with the name ${aliasArn(d, name)} already exists`);
    draftKey(d, key.keyId);
    const t = ctx.now.getTime();
    d.aliases.push({ name, targetKeyId: key.keyId, creationDate: t, lastUpdatedDate: t });
  });
  return undefined;
};

const UpdateAlias: Operation = (input, ctx) => {
  const name = reqString(input, 'AliasName', { max: 256 });
  const state = ctx.store.current();
  const alias = state.aliases.find((a) => a.name === name);
  if (!alias) throw new KmsError('NotFoundException', `Alias ${aliasArn(state, name)} is not found.`);
  const { key } = resolveArg(state, input, 'TargetKeyId', false);
  authorize(ctx, state, draftKey(state, alias.targetKeyId), 'kms:UpdateAlias');
  authorize(ctx, state, key, 'kms:UpdateAlias');
  requireNotPendingDeletion(state, key);
  ctx.store.mutate((d) => {
    const a = d.aliases.find((x) => x.name === name);
    if (!a) throw new KmsError('NotFoundException', `Alias ${aliasArn(d, name)} is not found.`);
    a.targetKeyId = key.keyId;
    a.lastUpdatedDate = ctx.now.getTime();
  });
  return undefined;
};

const DeleteAlias: Operation = (input, ctx) => {
  const name = reqString(input, 'AliasName', { max: 256 });
  const state = ctx.store.current();
  const alias = state.aliases.find((a) => a.name === name);
  if (!alias) throw new KmsError('NotFoundException', `Alias ${aliasArn(state, name)} is not found.`);
  authorize(ctx, state, draftKey(state, alias.targetKeyId), 'kms:DeleteAlias');
  ctx.store.mutate((d) => {
    d.aliases = d.aliases.filter((a) => a.name !== name);
  });
  return undefined;
};

const ListAliases: Operation = (input, ctx) => {
  const state = ctx.store.current();
  const keyIdArg = optString(input, 'KeyId', { max: MAX_KEY_ID });
  let aliases = state.aliases;
  if (keyIdArg !== undefined) {
    const { key } = resolveKey(state, keyIdArg, { allowAlias: false });
    aliases = aliases.filter((a) => a.targetKeyId === key.keyId);
  }
  const { page, next } = paginate(aliases, (a) => a.name, input);
  return {
    Aliases: page.map((a) => ({
      AliasName: a.name,
      AliasArn: aliasArn(state, a.name),
      TargetKeyId: a.targetKeyId,
      CreationDate: epochSeconds(a.creationDate),
      LastUpdatedDate: epochSeconds(a.lastUpdatedDate),
    })),
    Truncated: next !== undefined,
    ...(next === undefined ? {} : { NextMarker: next }),
  };
};

function policyName(input: Input): void {
  const n = optString(input, 'PolicyName', { max: 128 });
  if (n !== undefined && n !== 'default') throw new KmsError('NotFoundException', `Policy ${n} does not exist; a key has one policy, named "default"`);
}

const PutKeyPolicy: Operation = (input, ctx) => {
  policyName(input);
  const text = reqString(input, 'Policy', { max: 32768 });
  const bypass = optBool(input, 'BypassPolicyLockoutSafetyCheck') ?? false;
  const state = ctx.store.current();
  const { key } = resolveArg(state, input, 'KeyId', false);
  authorize(ctx, state, key, 'kms:PutKeyPolicy');
  requireNotPendingDeletion(state, key);
  checkNewPolicy(ctx, state, key.keyId, text, bypass);
  ctx.store.mutate((d) => {
    draftKey(d, key.keyId).policy = text;
  });
  return undefined;
};

const GetKeyPolicy: Operation = (input, ctx) => {
  policyName(input);
  const state = ctx.store.current();
  const { key } = resolveArg(state, input, 'KeyId', false);
  authorize(ctx, state, key, 'kms:GetKeyPolicy');
  return { Policy: key.policy, PolicyName: 'default' };
};

const Encrypt: Operation = (input, ctx) => {
  const plaintext = reqBlob(input, 'Plaintext', 1, MAX_PLAINTEXT);
  try {
    const ec = optContext(input, 'EncryptionContext');
    algorithm(input, 'EncryptionAlgorithm');
    grantTokens(input);
    const state = ctx.store.current();
    const { key, alias } = resolveArg(state, input, 'KeyId', true);
    authorize(ctx, state, key, 'kms:Encrypt', { encryptionContext: ec, alias });
    requireEnabled(state, key);
    dryRun(input);
    return { CiphertextBlob: b64(encrypt(key, plaintext, ec)), KeyId: keyArn(state, key.keyId), EncryptionAlgorithm: SYMMETRIC_DEFAULT };
  } finally {
    wipe(plaintext);
  }
};

const Decrypt: Operation = (input, ctx) => {
  const blob = reqBlob(input, 'CiphertextBlob', 1, MAX_CIPHERTEXT);
  const ec = optContext(input, 'EncryptionContext');
  const keyIdArg = optString(input, 'KeyId', { max: MAX_KEY_ID });
  algorithm(input, 'EncryptionAlgorithm');
  grantTokens(input);
  const state = ctx.store.current();
  const key = blobKey(state, blob);
  checkExpectedKey(state, key, keyIdArg, 'KeyId');
  const recipient = readRecipient(input, ctx.attestationRoot, ctx.now);
  authorize(ctx, state, key, 'kms:Decrypt', { encryptionContext: ec, recipient });
  requireEnabled(state, key);
  dryRun(input);
  const plaintext = decrypt(key, blob, ec);
  try {
    const out: Record<string, unknown> = { KeyId: keyArn(state, key.keyId), EncryptionAlgorithm: SYMMETRIC_DEFAULT };
    if (recipient) out.CiphertextForRecipient = b64(sealForRecipient(plaintext, recipient));
    else out.Plaintext = b64(plaintext);
    return out;
  } finally {
    wipe(plaintext);
  }
};

const ReEncrypt: Operation = (input, ctx) => {
  const blob = reqBlob(input, 'CiphertextBlob', 1, MAX_CIPHERTEXT);
  const sourceEc = optContext(input, 'SourceEncryptionContext');
  const destEc = optContext(input, 'DestinationEncryptionContext');
  const sourceKeyArg = optString(input, 'SourceKeyId', { max: MAX_KEY_ID });
  algorithm(input, 'SourceEncryptionAlgorithm');
  algorithm(input, 'DestinationEncryptionAlgorithm');
  grantTokens(input);
  const state = ctx.store.current();
  const source = blobKey(state, blob);
  checkExpectedKey(state, source, sourceKeyArg, 'SourceKeyId');
  const { key: dest, alias } = resolveArg(state, input, 'DestinationKeyId', true);
  authorize(ctx, state, source, 'kms:ReEncryptFrom', { encryptionContext: sourceEc });
  authorize(ctx, state, dest, 'kms:ReEncryptTo', { encryptionContext: destEc, alias });
  requireEnabled(state, source);
  requireEnabled(state, dest);
  dryRun(input);
  const plaintext = decrypt(source, blob, sourceEc);
  try {
    return {
      CiphertextBlob: b64(encrypt(dest, plaintext, destEc)),
      SourceKeyId: keyArn(state, source.keyId),
      KeyId: keyArn(state, dest.keyId),
      SourceEncryptionAlgorithm: SYMMETRIC_DEFAULT,
      DestinationEncryptionAlgorithm: SYMMETRIC_DEFAULT,
    };
  } finally {
    wipe(plaintext);
  }
};

function generateDataKey(input: Input, ctx: OperationContext, withPlaintext: boolean): Record<string, unknown> {
  const length = dataKeyLength(input);
  const ec = optContext(input, 'EncryptionContext');
  grantTokens(input);
  const state = ctx.store.current();
  const { key, alias } = resolveArg(state, input, 'KeyId', true);
  const recipient = withPlaintext ? readRecipient(input, ctx.attestationRoot, ctx.now) : undefined;
  const action = withPlaintext ? 'kms:GenerateDataKey' : 'kms:GenerateDataKeyWithoutPlaintext';
  authorize(ctx, state, key, action, { encryptionContext: ec, recipient, alias });
  requireEnabled(state, key);
  dryRun(input);
  const dataKey = new Uint8Array(randomBytes(length));
  try {
    const out: Record<string, unknown> = { CiphertextBlob: b64(encrypt(key, dataKey, ec)), KeyId: keyArn(state, key.keyId) };
    if (!withPlaintext) return out;
    if (recipient) out.CiphertextForRecipient = b64(sealForRecipient(dataKey, recipient));
    else out.Plaintext = b64(dataKey);
    return out;
  } finally {
    wipe(dataKey);
  }
}

const GenerateDataKey: Operation = (input, ctx) => generateDataKey(input, ctx, true);
const GenerateDataKeyWithoutPlaintext: Operation = (input, ctx) => generateDataKey(input, ctx, false);

const GenerateRandom: Operation = (input, ctx) => {
  const n = optInt(input, 'NumberOfBytes', 1, 1024);
  if (n === undefined) throw validation('NumberOfBytes', 'Member must not be null');
  if (optString(input, 'CustomKeyStoreId') !== undefined) throw new KmsError('UnsupportedOperationException', 'custom key stores are not supported by the KMS emulator');
  // No key, so no key policy: in AWS only IAM policies govern GenerateRandom, and the emulator has none.
  const recipient = readRecipient(input, ctx.attestationRoot, ctx.now);
  const bytes = new Uint8Array(randomBytes(n));
  try {
    return recipient ? { CiphertextForRecipient: b64(sealForRecipient(bytes, recipient)) } : { Plaintext: b64(bytes) };
  } finally {
    wipe(bytes);
  }
};

function setEnabled(enable: boolean): Operation {
  return (input, ctx) => {
    const state = ctx.store.current();
    const { key } = resolveArg(state, input, 'KeyId', false);
    authorize(ctx, state, key, enable ? 'kms:EnableKey' : 'kms:DisableKey');
    requireNotPendingDeletion(state, key);
    ctx.store.mutate((d) => {
      draftKey(d, key.keyId).state = enable ? 'Enabled' : 'Disabled';
    });
    return undefined;
  };
}

const ScheduleKeyDeletion: Operation = (input, ctx) => {
  const days = optInt(input, 'PendingWindowInDays', 7, 30) ?? 30;
  const state = ctx.store.current();
  const { key } = resolveArg(state, input, 'KeyId', false);
  authorize(ctx, state, key, 'kms:ScheduleKeyDeletion');
  requireNotPendingDeletion(state, key);
  const deletionDate = ctx.now.getTime() + days * 86_400_000;
  ctx.store.mutate((d) => {
    const k = draftKey(d, key.keyId);
    k.state = 'PendingDeletion';
    k.deletionDate = deletionDate;
    k.pendingWindowInDays = days;
  });
  return { KeyId: keyArn(state, key.keyId), DeletionDate: epochSeconds(deletionDate), KeyState: 'PendingDeletion', PendingWindowInDays: days };
};

const CancelKeyDeletion: Operation = (input, ctx) => {
  const state = ctx.store.current();
  const { key } = resolveArg(state, input, 'KeyId', false);
  authorize(ctx, state, key, 'kms:CancelKeyDeletion');
  if (key.state !== 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${keyArn(state, key.keyId)} is not pending deletion.`);
  ctx.store.mutate((d) => {
    const k = draftKey(d, key.keyId);
    // KMS leaves a key whose deletion was cancelled disabled.
    k.state = 'Disabled';
    delete k.deletionDate;
    delete k.pendingWindowInDays;
  });
  return { KeyId: keyArn(state, key.keyId) };
};

/** Operation name (as in `X-Amz-Target: TrentService.<name>`) → handler. */
export const OPERATIONS: Readonly<Record<string, Operation>> = Object.freeze({
  CreateKey,
  DescribeKey,
  ListKeys,
  CreateAlias,
  UpdateAlias,
  DeleteAlias,
  ListAliases,
  PutKeyPolicy,
  GetKeyPolicy,
  Encrypt,
  Decrypt,
  ReEncrypt,
  GenerateDataKey,
  GenerateDataKeyWithoutPlaintext,
  GenerateRandom,
  EnableKey: setEnabled(true),
  DisableKey: setEnabled(false),
  ScheduleKeyDeletion,
  CancelKeyDeletion,
});

export const SUPPORTED_OPERATIONS: readonly string[] = Object.keys(OPERATIONS);

export interface PresetKey {
  /** Lowercase UUID: the key's ARN is arn:aws:kms:<region>:<account>:key/<keyId>. */
  keyId: string;
  /** Key policy (parsed like CreateKey's; default: the account's default policy). */
  policy?: string;
  description?: string;
}

/** Adds a key with a chosen key id unless one exists (KmsEmulatorOptions.presetKeys). */
export function presetKey(store: StateStore, spec: PresetKey, now: Date): void {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(spec.keyId)) {
    throw new KmsError('ValidationException', `presetKeys: ${JSON.stringify(spec.keyId)} is not a lowercase UUID key id`);
  }
  const state = store.current();
  if (state.keys.some((k) => k.keyId === spec.keyId)) return;
  const policy = spec.policy ?? defaultKeyPolicy(state.accountId);
  parseKeyPolicy(policy);
  const material = randomBytes(MATERIAL_BYTES);
  const record: KeyRecord = {
    keyId: spec.keyId,
    creationDate: now.getTime(),
    description: spec.description ?? '',
    state: 'Enabled',
    policy,
    material: [{ version: 1, key: material.toString('base64') }],
  };
  wipe(material);
  store.mutate((d) => {
    d.keys.push(record);
  });
}

/** Removes keys whose deletion date has passed (KMS deletes them then), with their aliases. */
export function sweepDeletedKeys(store: StateStore, now: Date): number {
  const due = store.current().keys.filter((k) => k.state === 'PendingDeletion' && (k.deletionDate ?? Infinity) <= now.getTime());
  if (due.length === 0) return 0;
  const ids = new Set(due.map((k) => k.keyId));
  store.mutate((d) => {
    d.keys = d.keys.filter((k) => !ids.has(k.keyId));
    d.aliases = d.aliases.filter((a) => !ids.has(a.targetKeyId));
  });
  return ids.size;
}
