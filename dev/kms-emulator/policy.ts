/**
 * Key policies in AWS's JSON policy language: parsed strictly at the
 * boundary (PutKeyPolicy/CreateKey reject what they cannot evaluate with
 * MalformedPolicyDocumentException), evaluated as IAM does for a resource
 * policy: an explicit Deny wins, then any Allow, else the default deny.
 *
 * Deliberate simplifications (documented in docs/kms-emulator.md): no IAM
 * identity policies exist, so the account principal (`arn:aws:iam::<acct>:root`
 * or the bare account id) stands for every caller of that account; condition
 * keys are single-valued, so ForAnyValue/ForAllValues are refused.
 */
import { KmsError } from './errors.js';

export type Effect = 'Allow' | 'Deny';

type BaseOperator =
  | 'StringEquals'
  | 'StringNotEquals'
  | 'StringEqualsIgnoreCase'
  | 'StringNotEqualsIgnoreCase'
  | 'StringLike'
  | 'StringNotLike'
  | 'Bool'
  | 'Null';

const OPERATORS: ReadonlySet<string> = new Set<BaseOperator>([
  'StringEquals',
  'StringNotEquals',
  'StringEqualsIgnoreCase',
  'StringNotEqualsIgnoreCase',
  'StringLike',
  'StringNotLike',
  'Bool',
  'Null',
]);

const NEGATED: ReadonlySet<BaseOperator> = new Set<BaseOperator>(['StringNotEquals', 'StringNotEqualsIgnoreCase', 'StringNotLike']);

export interface ConditionClause {
  /** Operator as written, for messages. */
  operator: string;
  base: BaseOperator;
  ifExists: boolean;
  /** Condition key, lowercased (AWS condition key names are case-insensitive). */
  key: string;
  values: string[];
}

export interface PrincipalSpec {
  /** "*" or {"AWS": "*"}: anyone. */
  anyone: boolean;
  /** AWS principals: ARNs or 12-digit account ids. Service/Federated principals never match a SigV4 caller here. */
  aws: string[];
}

export interface PolicyStatement {
  sid: string | undefined;
  effect: Effect;
  principal: PrincipalSpec;
  notPrincipal: boolean;
  actions: string[];
  notAction: boolean;
  resources: string[];
  notResource: boolean;
  conditions: ConditionClause[];
}

export interface KeyPolicy {
  version: string | undefined;
  statements: PolicyStatement[];
}

/** What a request asks for, as the evaluator sees it. */
export interface RequestContext {
  principalArn: string;
  /** The key's account (account-principal statements grant to callers of this account). */
  accountId: string;
  /** e.g. `kms:Decrypt`. */
  action: string;
  resourceArn: string;
  /** Lowercased condition key → value. Absent keys are simply not in the map. */
  conditionKeys: ReadonlyMap<string, string>;
}

export type PolicyDecision =
  | { decision: 'allow'; statement: string }
  | { decision: 'explicit-deny'; statement: string }
  | { decision: 'implicit-deny' };

/** KMS's key policy size limit, in characters. */
export const MAX_POLICY_CHARS = 32 * 1024;
const VERSIONS = new Set(['2012-10-17', '2008-10-17']);
const STATEMENT_FIELDS = new Set(['Sid', 'Effect', 'Principal', 'NotPrincipal', 'Action', 'NotAction', 'Resource', 'NotResource', 'Condition']);
const AWS_PRINCIPAL_RE = /^(?:\*|\d{12}|arn:aws[a-z-]*:(?:iam|sts)::\d{12}:[\x21-\x7e]+)$/;
const ACTION_RE = /^(?:\*|[a-z0-9-]+:[A-Za-z0-9*?]+)$/i;

/** Condition keys whose values are hex measurements: compared case-insensitively whatever the operator. */
const HEX_KEY_PREFIX = 'kms:recipientattestation:';

function malformed(message: string): KmsError {
  return new KmsError('MalformedPolicyDocumentException', message);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringList(v: unknown, what: string): string[] {
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) throw malformed(`${what} must not be an empty list`);
  return list.map((x) => {
    if (typeof x !== 'string' || x === '') throw malformed(`${what} must be a non-empty string or a list of them`);
    return x;
  });
}

function conditionValues(v: unknown, where: string): string[] {
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) throw malformed(`${where}: a condition needs at least one value`);
  return list.map((x) => {
    if (typeof x === 'string') return x;
    if (typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x))) return String(x);
    throw malformed(`${where}: condition values must be strings, booleans or numbers`);
  });
}

function parsePrincipal(v: unknown, where: string): PrincipalSpec {
  if (v === '*') return { anyone: true, aws: [] };
  if (!isPlainObject(v)) throw malformed(`${where}: Principal must be "*" or an object such as {"AWS": "<arn>"}`);
  const keys = Object.keys(v);
  if (keys.length === 0) throw malformed(`${where}: Principal must name at least one principal`);
  let anyone = false;
  const aws: string[] = [];
  for (const k of keys) {
    const list = stringList(v[k], `${where}: Principal.${k}`);
    if (k === 'AWS') {
      for (const p of list) {
        if (!AWS_PRINCIPAL_RE.test(p)) throw malformed(`${where}: Policy contains a statement with one or more invalid principals (${JSON.stringify(p)})`);
        if (p === '*') anyone = true;
        else aws.push(p);
      }
    } else if (k !== 'Service' && k !== 'Federated' && k !== 'CanonicalUser') {
      throw malformed(`${where}: unknown principal type ${JSON.stringify(k)}`);
    }
  }
  return { anyone, aws };
}

function parseConditions(v: unknown, where: string): ConditionClause[] {
  if (!isPlainObject(v)) throw malformed(`${where}: Condition must be an object of operator → {key: value(s)}`);
  const out: ConditionClause[] = [];
  for (const [operator, block] of Object.entries(v)) {
    if (/^For(Any|All)Value:/.test(operator)) {
      throw malformed(`${where}: ${operator}: multi-valued condition operators (ForAnyValue/ForAllValues) are not supported by the KMS emulator`);
    }
    const ifExists = operator.endsWith('IfExists');
    const base = ifExists ? operator.slice(0, -'IfExists'.length) : operator;
    if (!OPERATORS.has(base) || (ifExists && base === 'Null')) {
      throw malformed(`${where}: condition operator ${JSON.stringify(operator)} is not supported (StringEquals, StringNotEquals, StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, StringLike, StringNotLike, Bool, each with IfExists, and Null)`);
    }
    if (!isPlainObject(block) || Object.keys(block).length === 0) throw malformed(`${where}: ${operator} must map condition keys to values`);
    for (const [key, raw] of Object.entries(block)) {
      if (!/^[A-Za-z0-9-]+:[\x21-\x7e]+$/.test(key)) throw malformed(`${where}: ${JSON.stringify(key)} is not a condition key`);
      const values = conditionValues(raw, `${where}: ${operator}.${key}`);
      if (base === 'Null' || base === 'Bool') {
        for (const x of values) if (x !== 'true' && x !== 'false') throw malformed(`${where}: ${operator} takes "true" or "false"`);
      }
      out.push({ operator, base: base as BaseOperator, ifExists, key: key.toLowerCase(), values });
    }
  }
  return out;
}

function parseStatement(v: unknown, i: number): PolicyStatement {
  const where0 = `Statement[${i}]`;
  if (!isPlainObject(v)) throw malformed(`${where0} must be an object`);
  const sid = v.Sid;
  if (sid !== undefined && typeof sid !== 'string') throw malformed(`${where0}: Sid must be a string`);
  const where = sid ? `${where0} (${sid})` : where0;
  for (const k of Object.keys(v)) if (!STATEMENT_FIELDS.has(k)) throw malformed(`${where}: unknown element ${JSON.stringify(k)}`);
  if (v.Effect !== 'Allow' && v.Effect !== 'Deny') throw malformed(`${where}: Effect must be "Allow" or "Deny"`);

  const one = (a: string, b: string): [unknown, boolean] => {
    const hasA = v[a] !== undefined;
    const hasB = v[b] !== undefined;
    if (hasA === hasB) throw malformed(`${where}: exactly one of ${a} and ${b} is required`);
    return hasA ? [v[a], false] : [v[b], true];
  };
  const [p, notPrincipal] = one('Principal', 'NotPrincipal');
  if (notPrincipal && v.Effect === 'Allow') throw malformed(`${where}: NotPrincipal cannot be used with "Effect": "Allow"`);
  const [a, notAction] = one('Action', 'NotAction');
  const [r, notResource] = one('Resource', 'NotResource');
  const actions = stringList(a, `${where}: Action`);
  for (const x of actions) if (!ACTION_RE.test(x)) throw malformed(`${where}: ${JSON.stringify(x)} is not an action (service:Action, wildcards * and ? allowed)`);
  return {
    sid,
    effect: v.Effect,
    principal: parsePrincipal(p, where),
    notPrincipal,
    actions,
    notAction,
    resources: stringList(r, `${where}: Resource`),
    notResource,
    conditions: v.Condition === undefined ? [] : parseConditions(v.Condition, where),
  };
}

/** Parses and validates a key policy document. Throws MalformedPolicyDocumentException. */
export function parseKeyPolicy(text: string): KeyPolicy {
  if (typeof text !== 'string' || text.length === 0) throw malformed('the key policy is empty');
  if (text.length > MAX_POLICY_CHARS) throw malformed(`the key policy is ${text.length} characters; the limit is ${MAX_POLICY_CHARS}`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw malformed(`the key policy is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(doc)) throw malformed('the key policy must be a JSON object');
  for (const k of Object.keys(doc)) if (k !== 'Version' && k !== 'Id' && k !== 'Statement') throw malformed(`unknown policy element ${JSON.stringify(k)}`);
  if (doc.Version !== undefined && (typeof doc.Version !== 'string' || !VERSIONS.has(doc.Version))) {
    throw malformed('Version must be "2012-10-17" (or "2008-10-17")');
  }
  if (doc.Id !== undefined && typeof doc.Id !== 'string') throw malformed('Id must be a string');
  const st = doc.Statement;
  const list = Array.isArray(st) ? st : st === undefined ? [] : [st];
  if (list.length === 0) throw malformed('the key policy needs at least one Statement');
  const statements = list.map(parseStatement);
  const sids = statements.map((s) => s.sid).filter((s): s is string => s !== undefined);
  if (new Set(sids).size !== sids.length) throw malformed('Statement Sids must be unique');
  return { version: doc.Version as string | undefined, statements };
}

/** IAM glob: `*` any run, `?` one character; anchored. */
function globMatch(pattern: string, value: string, ignoreCase: boolean): boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) {
    return ignoreCase ? pattern.toLowerCase() === value.toLowerCase() : pattern === value;
  }
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, ignoreCase ? 'is' : 's').test(value);
}

const ARN_ACCOUNT_RE = /^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):(.*)$/;

/** The role ARN a `sts::…:assumed-role/<role>/<session>` caller acts as, so a policy naming the role matches its sessions. */
function roleOfSession(arn: string): string | undefined {
  const m = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/.+$/.exec(arn);
  return m ? `arn:${m[1]}:iam::${m[2]}:role/${m[3]}` : undefined;
}

function principalMatches(spec: PrincipalSpec, ctx: RequestContext): boolean {
  if (spec.anyone) return true;
  const callerAccount = ARN_ACCOUNT_RE.exec(ctx.principalArn)?.[1];
  const role = roleOfSession(ctx.principalArn);
  return spec.aws.some((p) => {
    if (p === ctx.principalArn || (role !== undefined && p === role)) return true;
    // The account principal: in AWS it delegates to IAM policies, which the emulator does not have.
    const acct = /^\d{12}$/.test(p) ? p : /^arn:aws[a-z-]*:iam::(\d{12}):root$/.exec(p)?.[1];
    return acct !== undefined && acct === callerAccount;
  });
}

function conditionHolds(c: ConditionClause, ctx: RequestContext): boolean {
  const actual = ctx.conditionKeys.get(c.key);
  if (c.base === 'Null') {
    const wantAbsent = c.values.includes('true');
    const wantPresent = c.values.includes('false');
    return (actual === undefined && wantAbsent) || (actual !== undefined && wantPresent);
  }
  if (actual === undefined) return c.ifExists || NEGATED.has(c.base);
  const hex = c.key.startsWith(HEX_KEY_PREFIX);
  switch (c.base) {
    case 'StringEquals':
      return c.values.some((v) => (hex ? v.toLowerCase() === actual.toLowerCase() : v === actual));
    case 'StringNotEquals':
      return !c.values.some((v) => (hex ? v.toLowerCase() === actual.toLowerCase() : v === actual));
    case 'StringEqualsIgnoreCase':
      return c.values.some((v) => v.toLowerCase() === actual.toLowerCase());
    case 'StringNotEqualsIgnoreCase':
      return !c.values.some((v) => v.toLowerCase() === actual.toLowerCase());
    case 'StringLike':
      return c.values.some((v) => globMatch(v, actual, hex));
    case 'StringNotLike':
      return !c.values.some((v) => globMatch(v, actual, hex));
    case 'Bool':
      return c.values.some((v) => v === actual.toLowerCase());
  }
  return false;
}

function statementApplies(s: PolicyStatement, ctx: RequestContext): boolean {
  const principalHit = principalMatches(s.principal, ctx);
  if (principalHit === s.notPrincipal) return false;
  const actionHit = s.actions.some((a) => globMatch(a, ctx.action, true));
  if (actionHit === s.notAction) return false;
  const resourceHit = s.resources.some((r) => globMatch(r, ctx.resourceArn, false));
  if (resourceHit === s.notResource) return false;
  return s.conditions.every((c) => conditionHolds(c, ctx));
}

export function evaluatePolicy(policy: KeyPolicy, ctx: RequestContext): PolicyDecision {
  let allow: PolicyStatement | undefined;
  for (const s of policy.statements) {
    if (!statementApplies(s, ctx)) continue;
    if (s.effect === 'Deny') return { decision: 'explicit-deny', statement: s.sid ?? '(no Sid)' };
    allow ??= s;
  }
  return allow ? { decision: 'allow', statement: allow.sid ?? '(no Sid)' } : { decision: 'implicit-deny' };
}

/** The policy KMS attaches when CreateKey gets none: the account (i.e. its IAM policies) may do anything. */
export function defaultKeyPolicy(accountId: string): string {
  return JSON.stringify(
    {
      Version: '2012-10-17',
      Id: 'key-default-1',
      Statement: [
        { Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountId}:root` }, Action: 'kms:*', Resource: '*' },
      ],
    },
    null,
    2,
  );
}
