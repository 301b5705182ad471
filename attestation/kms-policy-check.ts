/**
 * Static analysis of a keyring CMK's key policy: does any statement let the
 * keyring's data key exist outside an attested enclave running the image a
 * PCR manifest names? Used by auditors and CI (`enclave-signer kms
 * check-policy`), never by the enclave.
 *
 * Why each rule (docs/kms-policy.md):
 *  - `kms:RecipientAttestation:*` condition keys exist only in requests that
 *    carry a Recipient with a verified attestation document (Decrypt,
 *    GenerateDataKey, GenerateDataKeyPair, GenerateRandom, DeriveSharedSecret).
 *    Encrypt never carries one, so any Allow of kms:Encrypt lets the caller
 *    make a ciphertext of a data key it chose.
 *  - For a key absent from the request, IAM makes `…IfExists`, negated
 *    operators, `Null: true` and `ForAllValues:` true: each lets a request
 *    without Recipient through, i.e. hands out the plaintext data key.
 *  - ReEncrypt moves the data key under (From) or in from (To) another CMK
 *    whose policy this check cannot see; grants carry no attestation
 *    condition; PutKeyPolicy rewrites all of this.
 *
 * Deliberately conservative: Deny statements are not credited (a policy is
 * judged by what its Allows grant), conditions on the caller (aws:*) are not
 * credited, and anything it does not understand is a finding, never a pass.
 */
import { SignerError } from '../common/errors.js';

export type FindingCode =
  | 'ENCRYPT_ALLOWED'
  | 'NO_ATTESTATION'
  | 'IF_EXISTS'
  | 'NULL_CONDITION'
  | 'NEGATED_CONDITION'
  | 'SET_OPERATOR'
  | 'WILDCARD_MEASUREMENT'
  | 'UNSUPPORTED_CONDITION'
  | 'DEBUG_PCR'
  | 'PCR_MISMATCH'
  | 'NO_RECIPIENT_DATA_KEY'
  | 'REENCRYPT_ALLOWED'
  | 'ADMIN_ACTION_TO_NON_ADMIN'
  | 'WILDCARD_PRINCIPAL'
  | 'NOT_PRINCIPAL'
  | 'NOT_ACTION';

export interface PolicyFinding {
  /** `Sid "x" (#i)` or `#i`: how a human finds the statement. */
  statement: string;
  index: number;
  sid: string | null;
  /** The action (or actions, comma-separated) the finding is about; `*` for the whole statement. */
  action: string;
  code: FindingCode;
  message: string;
}

export interface PolicyCheckOptions {
  /** PCR index → lowercase hex (96 chars), from the PCR manifest; must include 0. */
  manifestPcrs: Readonly<Record<string, string>>;
  /**
   * Principals that may administer the key (PutKeyPolicy, CreateGrant, …).
   * When empty: any principal that gets no Recipient operation and is neither
   * a wildcard nor an account (root) principal.
   */
  admins?: readonly string[];
}

export interface PolicyCheckResult {
  ok: boolean;
  statements: number;
  findings: PolicyFinding[];
}

export class PolicyCheckError extends SignerError {}

/** Operations that take Recipient: the only ones `kms:RecipientAttestation:*` can constrain. */
export const RECIPIENT_ACTIONS = ['kms:Decrypt', 'kms:GenerateDataKey', 'kms:GenerateDataKeyPair', 'kms:GenerateRandom', 'kms:DeriveSharedSecret'] as const;
const NO_RECIPIENT_DATA_KEY = ['kms:GenerateDataKeyWithoutPlaintext', 'kms:GenerateDataKeyPairWithoutPlaintext'] as const;
const REENCRYPT = ['kms:ReEncryptFrom', 'kms:ReEncryptTo'] as const;
/** Administration that can undo every other rule, or move the key's material where this policy does not reach. */
const ADMIN_ONLY = ['kms:PutKeyPolicy', 'kms:CreateGrant', 'kms:ImportKeyMaterial', 'kms:ReplicateKey'] as const;
const SENSITIVE = ['kms:Encrypt', ...RECIPIENT_ACTIONS, ...NO_RECIPIENT_DATA_KEY, ...REENCRYPT, ...ADMIN_ONLY] as const;

const ATTESTATION_PREFIX = 'kms:recipientattestation:';
const ZERO_PCR = '0'.repeat(96);

function bad(message: string): PolicyCheckError {
  return new PolicyCheckError('POLICY_CHECK_MALFORMED', `key policy: ${message}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function strings(v: unknown, where: string): string[] {
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) throw bad(`${where} must not be empty`);
  return list.map((x) => {
    if (typeof x !== 'string') throw bad(`${where} must be a string or a list of strings`);
    return x;
  });
}

/** IAM action glob, case-insensitive. */
function actionMatches(pattern: string, action: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'i').test(action);
}

interface Principals {
  wildcard: boolean;
  /** Every principal as written (AWS ARNs/accounts, Service, Federated…). */
  list: string[];
}

function principals(v: unknown, where: string): Principals {
  if (v === '*') return { wildcard: true, list: ['*'] };
  if (!isObject(v)) throw bad(`${where}: Principal must be "*" or an object`);
  const list: string[] = [];
  for (const [type, value] of Object.entries(v)) list.push(...strings(value, `${where}: Principal.${type}`).map((p) => (type === 'AWS' ? p : `${type}:${p}`)));
  return { wildcard: list.some((p) => p.includes('*')), list };
}

const isAccountPrincipal = (p: string) => /^\d{12}$/.test(p) || /^arn:aws[a-z-]*:iam::\d{12}:root$/.test(p);

interface Clause {
  operator: string;
  key: string;
  values: string[];
}

function clauses(v: unknown, where: string): Clause[] {
  if (v === undefined) return [];
  if (!isObject(v)) throw bad(`${where}: Condition must be an object`);
  const out: Clause[] = [];
  for (const [operator, block] of Object.entries(v)) {
    if (!isObject(block)) throw bad(`${where}: Condition.${operator} must map keys to values`);
    for (const [key, raw] of Object.entries(block)) {
      const list = Array.isArray(raw) ? raw : [raw];
      out.push({ operator, key: key.toLowerCase(), values: list.map((x) => String(x)) });
    }
  }
  return out;
}

/** `kms:RecipientAttestation:ImageSha384` → 0, `…:PCR<n>` → n. */
function pcrIndexOf(key: string): number | undefined {
  const rest = key.slice(ATTESTATION_PREFIX.length);
  if (rest === 'imagesha384') return 0;
  const m = /^pcr(\d{1,2})$/.exec(rest);
  return m ? Number(m[1]) : undefined;
}

/** Parses the policy text far enough to judge it; a document KMS would refuse is an error, not a pass. */
function statementsOf(text: string): unknown[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bad(`not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(doc)) throw bad('must be a JSON object');
  const st = doc.Statement;
  const list = Array.isArray(st) ? st : st === undefined ? [] : [st];
  if (list.length === 0) throw bad('has no Statement');
  return list;
}

export function checkKeyPolicy(policyText: string, opts: PolicyCheckOptions): PolicyCheckResult {
  const pcr0 = opts.manifestPcrs['0']?.toLowerCase();
  if (pcr0 === undefined || !/^[0-9a-f]{96}$/.test(pcr0)) throw new PolicyCheckError('POLICY_CHECK_BAD_MANIFEST', 'the manifest has no PCR0 (96 hex characters)');
  const manifest = new Map(Object.entries(opts.manifestPcrs).map(([i, h]) => [Number(i), h.toLowerCase()]));
  const raw = statementsOf(policyText);
  const findings: PolicyFinding[] = [];

  interface Parsed {
    index: number;
    sid: string | null;
    name: string;
    effect: string;
    principals: Principals | undefined;
    notPrincipal: boolean;
    sensitive: string[];
    notAction: boolean;
    conditions: Clause[];
  }
  const parsed: Parsed[] = raw.map((s, index) => {
    if (!isObject(s)) throw bad(`Statement #${index} must be an object`);
    const sid = typeof s.Sid === 'string' ? s.Sid : null;
    const name = sid === null ? `#${index}` : `Sid ${JSON.stringify(sid)} (#${index})`;
    if (s.Effect !== 'Allow' && s.Effect !== 'Deny') throw bad(`${name}: Effect must be Allow or Deny`);
    const notAction = s.NotAction !== undefined;
    if (notAction === (s.Action !== undefined)) throw bad(`${name}: exactly one of Action and NotAction`);
    const patterns = strings(notAction ? s.NotAction : s.Action, `${name}: ${notAction ? 'NotAction' : 'Action'}`);
    const covered = (a: string) => patterns.some((p) => actionMatches(p, a));
    const notPrincipal = s.NotPrincipal !== undefined;
    if (notPrincipal === (s.Principal !== undefined)) throw bad(`${name}: exactly one of Principal and NotPrincipal`);
    return {
      index,
      sid,
      name,
      effect: s.Effect,
      principals: notPrincipal ? undefined : principals(s.Principal, name),
      notPrincipal,
      sensitive: SENSITIVE.filter((a) => covered(a) !== notAction),
      notAction,
      conditions: clauses(s.Condition, name),
    };
  });

  const allows = parsed.filter((s) => s.effect === 'Allow');
  // Who the enclave's requests come from (the parent's role): they must never administer the key.
  const recipientPrincipals = new Set(allows.filter((s) => s.sensitive.some((a) => (RECIPIENT_ACTIONS as readonly string[]).includes(a))).flatMap((s) => s.principals?.list ?? []));
  const isAdmin = (p: string) =>
    opts.admins && opts.admins.length > 0 ? opts.admins.includes(p) : !p.includes('*') && !isAccountPrincipal(p) && !recipientPrincipals.has(p);

  for (const s of allows) {
    if (s.sensitive.length === 0) continue;
    const add = (action: string, code: FindingCode, message: string) => findings.push({ statement: s.name, index: s.index, sid: s.sid, action, code, message });

    if (s.notPrincipal) add('*', 'NOT_PRINCIPAL', 'Allow with NotPrincipal grants to every principal except those listed (KMS refuses it; never use it)');
    if (s.principals?.wildcard) add('*', 'WILDCARD_PRINCIPAL', `Principal ${JSON.stringify(s.principals.list.join(', '))} is a wildcard: any AWS account (anyone who runs the same public image, too) gets ${s.sensitive.join(', ')}; conditions on the caller are not credited`);
    if (s.notAction) add('*', 'NOT_ACTION', `Allow with NotAction grants every action not listed, including ${s.sensitive.join(', ')}`);

    if (s.sensitive.includes('kms:Encrypt')) add('kms:Encrypt', 'ENCRYPT_ALLOWED', 'kms:Encrypt never carries an attestation document, so no condition can confine it: the caller can wrap a data key it knows under this CMK and hand the enclave that keyring');

    for (const a of NO_RECIPIENT_DATA_KEY) {
      if (s.sensitive.includes(a)) add(a, 'NO_RECIPIENT_DATA_KEY', `${a} takes no Recipient: it makes keyring ciphertexts outside any enclave, which no attestation condition can confine`);
    }

    const sameKeyOnly = s.conditions.some((c) => c.operator === 'Bool' && c.key === 'kms:reencryptonsamekey' && c.values.length === 1 && c.values[0]!.toLowerCase() === 'true');
    for (const a of REENCRYPT) {
      if (s.sensitive.includes(a) && !sameKeyOnly) {
        add(a, 'REENCRYPT_ALLOWED', a === 'kms:ReEncryptFrom'
          ? 'kms:ReEncryptFrom moves the data key under another CMK whose policy this check cannot see (and which the caller may be able to Decrypt without attestation); allow it only with Bool kms:ReEncryptOnSameKey=true, or only for a rotation, then remove it'
          : 'kms:ReEncryptTo brings a ciphertext from another CMK (whose data key the caller may know) under this one: as good as kms:Encrypt; allow it only with Bool kms:ReEncryptOnSameKey=true, or only for a rotation, then remove it');
      }
    }

    for (const a of ADMIN_ONLY) {
      if (!s.sensitive.includes(a)) continue;
      const outsiders = (s.principals?.list ?? ['(NotPrincipal)']).filter((p) => !isAdmin(p));
      if (outsiders.length > 0) {
        add(a, 'ADMIN_ACTION_TO_NON_ADMIN', `${a} is allowed to ${outsiders.join(', ')}, which ${opts.admins && opts.admins.length > 0 ? 'is not a listed --admin' : 'is an account/wildcard principal or also makes the enclave\'s KMS requests'}: ${a === 'kms:CreateGrant' ? 'a grant allows Decrypt/GenerateDataKey with no attestation condition' : a === 'kms:PutKeyPolicy' ? 'it can rewrite this policy' : 'it puts the key material under a policy this check does not see'}`);
      }
    }

    const recipientOps = s.sensitive.filter((a) => (RECIPIENT_ACTIONS as readonly string[]).includes(a));
    if (recipientOps.length === 0) continue;
    const ops = recipientOps.join(', ');
    let pinsPcr0 = false;
    for (const c of s.conditions) {
      if (!c.key.startsWith(ATTESTATION_PREFIX)) continue;
      const op = c.operator;
      const keyName = `kms:RecipientAttestation:${c.key.slice(ATTESTATION_PREFIX.length)}`;
      if (/^For(AnyValue|AllValues):/i.test(op)) {
        add(ops, 'SET_OPERATOR', `${op} on ${keyName}: ForAllValues is true for a request without the key, and set operators are meant for multi-valued keys; use StringEqualsIgnoreCase`);
        continue;
      }
      if (/IfExists$/.test(op)) {
        add(ops, 'IF_EXISTS', `${op} on ${keyName} is true for a request WITHOUT Recipient, which then gets the plaintext (${ops} without attestation)`);
        continue;
      }
      if (op === 'Null') {
        if (c.values.some((v) => v.toLowerCase() === 'true')) add(ops, 'NULL_CONDITION', `Null: ${keyName}=true is satisfied exactly by a request WITHOUT Recipient (${ops} in plaintext)`);
        continue; // Null=false only demands some document: it pins nothing.
      }
      if (/^StringNot/.test(op)) {
        add(ops, 'NEGATED_CONDITION', `${op} on ${keyName} is true for a request without Recipient (the key is absent), and for every image but the ones named`);
        continue;
      }
      if (op !== 'StringEquals' && op !== 'StringEqualsIgnoreCase' && op !== 'StringLike') {
        add(ops, 'UNSUPPORTED_CONDITION', `${op} on ${keyName} is not a measurement comparison this check credits; use StringEqualsIgnoreCase`);
        continue;
      }
      const idx = pcrIndexOf(c.key);
      let allMatch = true;
      for (const v of c.values) {
        const value = v.toLowerCase();
        if (op === 'StringLike' && /[*?]/.test(value)) {
          add(ops, 'WILDCARD_MEASUREMENT', `${op} ${keyName} = ${JSON.stringify(v)} matches many measurements`);
          allMatch = false;
          continue;
        }
        if (value === ZERO_PCR) {
          add(ops, 'DEBUG_PCR', `${keyName} = all zeros: that is what a debug-mode enclave reports (its memory is readable by the host)`);
          allMatch = false;
          continue;
        }
        const expected = idx === undefined ? undefined : manifest.get(idx);
        if (expected !== undefined && value !== expected) {
          add(ops, 'PCR_MISMATCH', `${keyName} allows ${value.slice(0, 16)}…, which is not the manifest's PCR${idx} (${expected.slice(0, 16)}…): another image could unwrap the data key`);
          allMatch = false;
        }
      }
      if (idx === 0 && allMatch) pinsPcr0 = true;
    }
    if (!pinsPcr0) {
      for (const a of recipientOps) {
        add(a, 'NO_ATTESTATION', `${a} is allowed without a kms:RecipientAttestation:ImageSha384 (or PCR0) condition equal to the manifest's PCR0 ${pcr0.slice(0, 16)}…: ${a === 'kms:GenerateRandom' ? 'random bytes reach the caller in plaintext' : 'the data key can reach the caller outside an attested enclave'}`);
      }
    }
  }
  return { ok: findings.length === 0, statements: parsed.length, findings };
}
