/**
 * The policy document: JSON, versioned, deny by default (docs/policy.md is the reference).
 * `parsePolicy` validates a document strictly — unknown fields, bad addresses, unknown
 * principals, impossible rules are errors naming the JSON path of the offending field — and
 * compiles it into the form the evaluator uses (sets of lowercase addresses, bigints).
 *
 * Parsing goes through the repo's strict JSON reader (duplicate keys, floats, lone
 * surrogates are refused), so the file means one thing to every reader, and the policy hash
 * is SHA-256 of its canonical JSON (policy-hash.ts).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { parseStrictJsonBytes, type JsonValue } from '../../attestation/manifest-json.js';
import { MAX_SESSION_SECONDS } from '../../common/auth/session.js';
import { isUsableEd25519Key, keyIdentity } from '../auth/principals.js';
import { SignerError } from '../../common/errors.js';
import { readAddress } from '../signers/eth-address.js';
import type { Hex } from '../signers/validate.js';
import { addressToScript, BTC_NETWORKS, type BtcNetworkName } from './btc-network.js';
import { invalidPolicy, PolicyDocumentError } from './errors.js';
import { POLICY_OPS, type PolicyOp } from './intent.js';

export const POLICY_VERSION = 1;
/** The unauthenticated socket caller: a principal every policy knows without declaring it. */
export const HOST_PRINCIPAL = 'host';
export const MAX_POLICY_BYTES = 4 * 1024 * 1024;
const MAX_RULES = 10_000;
const MAX_LIST = 10_000;
const MAX_UINT256 = (1n << 256n) - 1n;

export type PrincipalAlg = 'ed25519' | 'ecdsa-p256';
export interface Principal {
  name: string;
  alg: PrincipalAlg;
  publicKey: KeyObject;
  /**
   * Present: the principal may open sessions (docs/principals.md "Sessions") of at most
   * maxSeconds; absent: every request of this principal carries its own signature.
   */
  sessions?: { maxSeconds: number };
}

export type Erc20Function = 'transfer' | 'approve' | 'transferFrom' | 'mint' | 'burn';
export const ERC20_FUNCTIONS: readonly Erc20Function[] = ['transfer', 'approve', 'transferFrom', 'mint', 'burn'];

/** A list that may be the word "any" (explicitly unrestricted). */
export type AddressList = ReadonlySet<string> | 'any';

export interface CompiledRule {
  id: string;
  index: number;
  effect: 'allow' | 'deny';
  description?: string;
  /** undefined = not constrained. */
  ops?: ReadonlySet<PolicyOp>;
  principals?: ReadonlySet<string>;
  keys?: ReadonlySet<string>;
  chainIds?: ReadonlySet<number>;
  to?: ReadonlySet<string>;
  maxValueWei?: bigint;
  maxFeeWei?: bigint;
  contractCreation: boolean;
  erc20?: { tokens: ReadonlySet<string>; functions: ReadonlySet<Erc20Function>; recipients?: ReadonlySet<string>; spenders?: ReadonlySet<string>; maxAmount?: bigint };
  calls?: { contracts: ReadonlySet<string>; selectors: ReadonlySet<string> };
  typedData?: {
    domains?: { name?: string; version?: string; chainId?: number; verifyingContract?: string }[];
    primaryTypes?: ReadonlySet<string>;
    permitSpenders?: AddressList;
    permitTokens?: ReadonlySet<string>;
    permitMaxAmount?: bigint;
  };
  btc?: { network: BtcNetworkName; outputScripts?: ReadonlySet<string>; maxOutputSats?: bigint; maxFeeSats?: bigint; maxTotalSats?: bigint };
  delegates?: AddressList;
  window?: { seconds: number; maxValueWei?: bigint; maxAmount?: bigint; maxCount?: number };
  approvals?: { threshold: number; from: readonly string[]; ttlSeconds: number };
}

/** The compiled `restartGuard` (readRestartGuard). */
export interface RestartGuardPolicy {
  when: 'unclean' | 'always';
  /** Ids of the guarded allow rules. */
  rules: ReadonlySet<string>;
  approvals: { threshold: number; from: readonly string[]; ttlSeconds: number };
}

export interface CompiledPolicy {
  version: 1;
  name: string;
  description?: string;
  principals: ReadonlyMap<string, Principal>;
  rules: readonly CompiledRule[];
  restartGuard?: RestartGuardPolicy;
  /**
   * Where the durable state (windows, approvals) lives (docs/scale-out.md "Limits across
   * instances"): "instance" (default) — each enclave keeps its own sealed sequence; "fleet" —
   * every enclave of the keyring shares one sealed record, handed in with each request and
   * stored by compare-and-swap, so a window is a window for the whole fleet.
   */
  stateScope: 'instance' | 'fleet';
  /** The document as parsed (what the hash covers). */
  document: JsonValue;
}

// ── small strict readers; every failure names its path ─────────────────────────

type Obj = Record<string, JsonValue>;

function obj(v: unknown, path: string, allowed: readonly string[], required: readonly string[] = []): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidPolicy(path, `expected an object`);
  const o = v as Obj;
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw invalidPolicy(join(path, k), `unknown field (allowed: ${allowed.join(', ')})`);
  }
  for (const k of required) if (!Object.hasOwn(o, k)) throw invalidPolicy(join(path, k), 'required');
  return o;
}

function join(path: string, k: string): string {
  return path === '' ? k : `${path}.${k}`;
}

function str(v: unknown, path: string, opts: { max?: number; re?: RegExp; what?: string } = {}): string {
  if (typeof v !== 'string') throw invalidPolicy(path, 'expected a string');
  if (v.length === 0) throw invalidPolicy(path, 'must not be empty');
  if (v.length > (opts.max ?? 256)) throw invalidPolicy(path, `longer than ${opts.max ?? 256} characters`);
  if (opts.re && !opts.re.test(v)) throw invalidPolicy(path, `expected ${opts.what ?? `a string matching ${opts.re}`}`);
  return v;
}

function list<T>(v: unknown, path: string, item: (x: unknown, p: string) => T): T[] {
  if (!Array.isArray(v)) throw invalidPolicy(path, 'expected an array');
  if (v.length === 0) throw invalidPolicy(path, 'an empty list matches nothing; omit the field to leave it unconstrained, or remove the rule');
  if (v.length > MAX_LIST) throw invalidPolicy(path, `more than ${MAX_LIST} items`);
  const out = v.map((x, i) => item(x, `${path}[${i}]`));
  return out;
}

function uniqueSet<T>(items: T[], path: string, key: (t: T) => string = String): Set<T> {
  const seen = new Set<string>();
  items.forEach((t, i) => {
    const k = key(t);
    if (seen.has(k)) throw invalidPolicy(`${path}[${i}]`, 'duplicate entry');
    seen.add(k);
  });
  return new Set(items);
}

function ethAddress(v: unknown, path: string): Hex {
  try {
    return readAddress(v, path);
  } catch {
    throw invalidPolicy(path, 'expected a 0x-prefixed 20-byte Ethereum address (mixed case must be a valid EIP-55 checksum)');
  }
}

function addressSet(v: unknown, path: string): Set<string> {
  return uniqueSet(list(v, path, ethAddress), path);
}

function addressListOrAny(v: unknown, path: string): AddressList {
  if (v === 'any') return 'any';
  return addressSet(v, path);
}

const UINT = /^(0|[1-9][0-9]*)$/;
/** A non-negative integer as a decimal string (amounts exceed 2^53, so never a JSON number). */
function amount(v: unknown, path: string): bigint {
  if (typeof v === 'number') throw invalidPolicy(path, 'amounts are decimal strings (JSON numbers lose precision above 2^53)');
  if (typeof v !== 'string' || v.length > 80 || !UINT.test(v)) throw invalidPolicy(path, 'expected a non-negative integer as a decimal string, e.g. "1000000"');
  const n = BigInt(v);
  if (n > MAX_UINT256) throw invalidPolicy(path, 'larger than 2^256-1');
  return n;
}

function posInt(v: unknown, path: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw invalidPolicy(path, 'expected a positive integer');
  if (v > max) throw invalidPolicy(path, `at most ${max}`);
  return v;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') throw invalidPolicy(path, 'expected true or false');
  return v;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const PRINCIPAL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const SELECTOR = /^0x[0-9a-fA-F]{8}$/;
const TYPE_NAME = /^[A-Za-z0-9_$:]{1,128}$/;

// ── principals ───────────────────────────────────────────────────────────────

function readPrincipal(name: string, v: unknown, path: string): Principal {
  const o = obj(v, path, ['alg', 'publicKey', 'description', 'sessions'], ['alg', 'publicKey']);
  if (o.alg !== 'ed25519' && o.alg !== 'ecdsa-p256') throw invalidPolicy(join(path, 'alg'), 'expected "ed25519" or "ecdsa-p256"');
  if (o.description !== undefined) str(o.description, join(path, 'description'), { max: 1024 });
  const pem = str(o.publicKey, join(path, 'publicKey'), { max: 4096 });
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (e) {
    throw new PolicyDocumentError('POLICY_INVALID', join(path, 'publicKey'), 'not a PEM public key (SubjectPublicKeyInfo)', { cause: e });
  }
  const ok =
    o.alg === 'ed25519'
      ? key.asymmetricKeyType === 'ed25519'
      : key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  if (!ok) throw invalidPolicy(join(path, 'publicKey'), `the key is not an ${o.alg} public key`);
  // A small-order or non-canonical Ed25519 key verifies forged signatures (enclave/auth/principals.ts).
  if (o.alg === 'ed25519' && !isUsableEd25519Key(key)) throw invalidPolicy(join(path, 'publicKey'), 'the Ed25519 key is a small-order point or a non-canonical encoding: anyone could sign for it');
  if (o.sessions === undefined) return { name, alg: o.alg, publicKey: key };
  // Opt-in per principal, so an auditor sees which callers may trade a signature per request for a
  // session key (a bearer secret for its lifetime) — and for how long at most.
  const s = obj(o.sessions, join(path, 'sessions'), ['maxSeconds'], ['maxSeconds']);
  return { name, alg: o.alg, publicKey: key, sessions: { maxSeconds: posInt(s.maxSeconds, join(join(path, 'sessions'), 'maxSeconds'), MAX_SESSION_SECONDS) } };
}

// ── rules ────────────────────────────────────────────────────────────────────

const RULE_FIELDS = [
  'id', 'effect', 'description', 'ops', 'principals', 'keys', 'chainIds', 'to', 'maxValueWei', 'maxFeeWei',
  'contractCreation', 'erc20', 'calls', 'typedData', 'btc', 'delegates', 'window', 'approvals',
] as const;

const TX: PolicyOp[] = ['eth_signTransaction'];
/** Which ops each matcher can apply to; a rule whose ops leave a matcher nothing to apply to is impossible. */
const APPLIES: Partial<Record<(typeof RULE_FIELDS)[number], PolicyOp[]>> = {
  to: TX,
  maxFeeWei: TX,
  contractCreation: TX,
  erc20: TX,
  calls: TX,
  typedData: ['eth_signTypedData_v4'],
  btc: ['signer_signPsbt'],
  chainIds: ['eth_signTransaction', 'eth_signTypedData_v4', 'signer_signAuthorization'],
  delegates: ['eth_signTransaction', 'signer_signAuthorization'],
};

function readRule(v: unknown, path: string, index: number, principals: ReadonlyMap<string, Principal>): CompiledRule {
  const o = obj(v, path, RULE_FIELDS, ['id', 'effect']);
  const p = (k: string) => join(path, k);
  const id = str(o.id, p('id'), { re: ID, what: 'an id of letters, digits and _ . : - (at most 64)' });
  if (o.effect !== 'allow' && o.effect !== 'deny') throw invalidPolicy(p('effect'), 'expected "allow" or "deny"');
  const effect = o.effect;
  const rule: CompiledRule = { id, index, effect, contractCreation: false };
  if (o.description !== undefined) rule.description = str(o.description, p('description'), { max: 1024 });

  if (o.ops !== undefined) {
    rule.ops = uniqueSet(
      list(o.ops, p('ops'), (x, q) => {
        if (!POLICY_OPS.includes(x as PolicyOp)) throw invalidPolicy(q, `unknown operation (one of ${POLICY_OPS.join(', ')})`);
        return x as PolicyOp;
      }),
      p('ops'),
    );
  }
  if (o.principals !== undefined) {
    rule.principals = uniqueSet(
      list(o.principals, p('principals'), (x, q) => {
        const name = str(x, q);
        if (name !== HOST_PRINCIPAL && !principals.has(name)) throw invalidPolicy(q, `unknown principal "${name.slice(0, 64)}" (declare it under principals, or use "host" for the unauthenticated socket)`);
        return name;
      }),
      p('principals'),
    );
  }
  if (o.keys !== undefined) {
    rule.keys = uniqueSet(list(o.keys, p('keys'), (x, q) => str(x, q, { re: UUID, what: 'a key id (UUID)' }).toLowerCase()), p('keys'));
  }
  if (o.chainIds !== undefined) rule.chainIds = uniqueSet(list(o.chainIds, p('chainIds'), (x, q) => posInt(x, q)), p('chainIds'));
  if (o.to !== undefined) rule.to = addressSet(o.to, p('to'));
  if (o.maxValueWei !== undefined) rule.maxValueWei = amount(o.maxValueWei, p('maxValueWei'));
  if (o.maxFeeWei !== undefined) rule.maxFeeWei = amount(o.maxFeeWei, p('maxFeeWei'));
  if (o.contractCreation !== undefined) rule.contractCreation = bool(o.contractCreation, p('contractCreation'));

  if (o.erc20 !== undefined) rule.erc20 = readErc20(o.erc20, p('erc20'), effect);
  if (o.calls !== undefined) rule.calls = readCalls(o.calls, p('calls'));
  if (o.typedData !== undefined) rule.typedData = readTypedData(o.typedData, p('typedData'), effect);
  if (o.btc !== undefined) rule.btc = readBtc(o.btc, p('btc'));
  if (o.delegates !== undefined) rule.delegates = addressListOrAny(o.delegates, p('delegates'));

  if (o.window !== undefined) rule.window = readWindow(o.window, p('window'), rule);
  if (o.approvals !== undefined) {
    const q = p('approvals');
    if (effect === 'deny') throw invalidPolicy(q, 'deny rules take no approvals (nothing can override a deny)');
    const approvals = readApprovals(o.approvals, q, principals);
    rule.approvals = approvals;
    if (rule.principals !== undefined && [...rule.principals].every((r) => approvals.from.includes(r)) && approvals.from.length - 1 < approvals.threshold) {
      throw invalidPolicy(join(q, 'threshold'), 'impossible: the requester cannot approve its own request, so too few approvers remain');
    }
  }

  if (effect === 'deny') refuseCaps(rule, p);
  refuseImpossible(rule, o, p);
  return rule;
}

function readErc20(v: unknown, q: string, effect: CompiledRule['effect']): NonNullable<CompiledRule['erc20']> {
  const e = obj(v, q, ['tokens', 'functions', 'recipients', 'spenders', 'maxAmount'], ['tokens']);
  const functions = e.functions === undefined
    ? new Set<Erc20Function>(['transfer'])
    : uniqueSet(list(e.functions, join(q, 'functions'), (x, r) => {
        if (!ERC20_FUNCTIONS.includes(x as Erc20Function)) throw invalidPolicy(r, 'expected "transfer", "approve", "transferFrom", "mint" or "burn"');
        return x as Erc20Function;
      }), join(q, 'functions'));
  const erc20: NonNullable<CompiledRule['erc20']> = { tokens: addressSet(e.tokens, join(q, 'tokens')), functions };
  if (e.recipients !== undefined) erc20.recipients = addressSet(e.recipients, join(q, 'recipients'));
  if (e.spenders !== undefined) erc20.spenders = addressSet(e.spenders, join(q, 'spenders'));
  if (e.maxAmount !== undefined) erc20.maxAmount = amount(e.maxAmount, join(q, 'maxAmount'));
  if (effect === 'allow' && functions.has('approve') && erc20.spenders === undefined) {
    throw invalidPolicy(join(q, 'spenders'), 'an allow rule with "approve" must name the spenders it may approve');
  }
  if (e.spenders !== undefined && !functions.has('approve')) throw invalidPolicy(join(q, 'spenders'), 'spenders apply only to "approve"; add it to functions');
  if (e.recipients !== undefined && !functions.has('transfer') && !functions.has('transferFrom') && !functions.has('mint')) {
    throw invalidPolicy(join(q, 'recipients'), 'recipients apply only to "transfer"/"transferFrom"/"mint"; add one to functions');
  }
  return erc20;
}

function readCalls(v: unknown, q: string): NonNullable<CompiledRule['calls']> {
  const c = obj(v, q, ['contracts', 'selectors'], ['contracts', 'selectors']);
  return {
    contracts: addressSet(c.contracts, join(q, 'contracts')),
    selectors: uniqueSet(list(c.selectors, join(q, 'selectors'), (x, r) => str(x, r, { re: SELECTOR, what: 'a 4-byte selector as 0x + 8 hex digits' }).toLowerCase()), join(q, 'selectors')),
  };
}

function readTypedData(v: unknown, q: string, effect: CompiledRule['effect']): NonNullable<CompiledRule['typedData']> {
  const t = obj(v, q, ['domains', 'primaryTypes', 'permitSpenders', 'permitTokens', 'permitMaxAmount']);
  const td: NonNullable<CompiledRule['typedData']> = {};
  if (t.domains !== undefined) {
    td.domains = list(t.domains, join(q, 'domains'), (x, r) => {
      const d = obj(x, r, ['name', 'version', 'chainId', 'verifyingContract']);
      if (Object.keys(d).length === 0) throw invalidPolicy(r, 'an empty domain matches every domain; omit "domains" instead');
      const out: { name?: string; version?: string; chainId?: number; verifyingContract?: string } = {};
      if (d.name !== undefined) out.name = str(d.name, join(r, 'name'));
      if (d.version !== undefined) out.version = str(d.version, join(r, 'version'));
      if (d.chainId !== undefined) out.chainId = posInt(d.chainId, join(r, 'chainId'));
      if (d.verifyingContract !== undefined) out.verifyingContract = ethAddress(d.verifyingContract, join(r, 'verifyingContract'));
      return out;
    });
  }
  if (t.primaryTypes !== undefined) {
    td.primaryTypes = uniqueSet(list(t.primaryTypes, join(q, 'primaryTypes'), (x, r) => {
      const s = str(x, r, { re: TYPE_NAME, what: 'an EIP-712 struct name' });
      if (s === 'EIP712Domain') throw invalidPolicy(r, 'EIP712Domain is never a primary type');
      return s;
    }), join(q, 'primaryTypes'));
  }
  if (t.permitSpenders !== undefined) td.permitSpenders = addressListOrAny(t.permitSpenders, join(q, 'permitSpenders'));
  if (t.permitTokens !== undefined) td.permitTokens = addressSet(t.permitTokens, join(q, 'permitTokens'));
  if (t.permitMaxAmount !== undefined) td.permitMaxAmount = amount(t.permitMaxAmount, join(q, 'permitMaxAmount'));
  if (effect === 'allow' && td.permitSpenders === undefined && (td.permitTokens !== undefined || td.permitMaxAmount !== undefined)) {
    throw invalidPolicy(join(q, 'permitSpenders'), 'permits match only rules that name their spenders; add permitSpenders');
  }
  return td;
}

function readBtc(v: unknown, q: string): NonNullable<CompiledRule['btc']> {
  const b = obj(v, q, ['network', 'outputs', 'maxOutputSats', 'maxFeeSats', 'maxTotalSats'], ['network']);
  if (!BTC_NETWORKS.includes(b.network as BtcNetworkName)) throw invalidPolicy(join(q, 'network'), `expected one of ${BTC_NETWORKS.join(', ')}`);
  const network = b.network as BtcNetworkName;
  const btc: NonNullable<CompiledRule['btc']> = { network };
  if (b.outputs !== undefined) {
    btc.outputScripts = uniqueSet(list(b.outputs, join(q, 'outputs'), (x, r) => {
      const a = str(x, r, { max: 128 });
      try {
        return addressToScript(a, network);
      } catch {
        throw invalidPolicy(r, `not a valid ${network} address`);
      }
    }), join(q, 'outputs'));
  }
  if (b.maxOutputSats !== undefined) btc.maxOutputSats = amount(b.maxOutputSats, join(q, 'maxOutputSats'));
  if (b.maxFeeSats !== undefined) btc.maxFeeSats = amount(b.maxFeeSats, join(q, 'maxFeeSats'));
  if (b.maxTotalSats !== undefined) btc.maxTotalSats = amount(b.maxTotalSats, join(q, 'maxTotalSats'));
  return btc;
}

/** A rule's `window`; `rule` is the rule read so far (its effect, and whether it has erc20 or btc to count). */
function readWindow(v: unknown, q: string, rule: CompiledRule): NonNullable<CompiledRule['window']> {
  if (rule.effect === 'deny') throw invalidPolicy(q, 'deny rules have no window (a deny always refuses)');
  const w = obj(v, q, ['seconds', 'maxValueWei', 'maxAmount', 'maxCount'], ['seconds']);
  const window: NonNullable<CompiledRule['window']> = { seconds: posInt(w.seconds, join(q, 'seconds'), 366 * 86400) };
  if (w.maxValueWei !== undefined) window.maxValueWei = amount(w.maxValueWei, join(q, 'maxValueWei'));
  if (w.maxAmount !== undefined) {
    if (rule.erc20 === undefined && rule.btc === undefined) throw invalidPolicy(join(q, 'maxAmount'), 'maxAmount counts token units (erc20) or satoshis (btc); this rule has neither');
    window.maxAmount = amount(w.maxAmount, join(q, 'maxAmount'));
  }
  if (w.maxCount !== undefined) window.maxCount = posInt(w.maxCount, join(q, 'maxCount'));
  if (w.maxValueWei === undefined && w.maxAmount === undefined && w.maxCount === undefined) {
    throw invalidPolicy(q, 'a window needs maxValueWei, maxAmount or maxCount');
  }
  return window;
}

/** Caps bound what an allow grants; on a deny they would read backwards ("deny if at most…"). */
function refuseCaps(rule: CompiledRule, p: (k: string) => string): void {
  const caps: [unknown, string][] = [
    [rule.maxValueWei, 'maxValueWei'],
    [rule.maxFeeWei, 'maxFeeWei'],
    [rule.erc20?.maxAmount, 'erc20.maxAmount'],
    [rule.typedData?.permitMaxAmount, 'typedData.permitMaxAmount'],
    [rule.btc?.maxOutputSats, 'btc.maxOutputSats'],
    [rule.btc?.maxFeeSats, 'btc.maxFeeSats'],
    [rule.btc?.maxTotalSats, 'btc.maxTotalSats'],
  ];
  for (const [v, k] of caps) {
    if (v !== undefined) throw invalidPolicy(p(k), 'deny rules take no caps; put the cap on the allow rule (anything above it is refused by default)');
  }
}

/** Matchers that can never apply to the rule's ops, or to each other, make the rule impossible. */
function refuseImpossible(rule: CompiledRule, o: Record<string, unknown>, p: (k: string) => string): void {
  const ops = rule.ops ?? new Set(POLICY_OPS);
  for (const [k, applies] of Object.entries(APPLIES)) {
    if (o[k] === undefined || (k === 'contractCreation' && o[k] === false)) continue;
    if (!applies!.some((op) => ops.has(op))) {
      throw invalidPolicy(p(k), `impossible: "${k}" applies only to ${applies!.join(', ')}, which the rule's ops do not include`);
    }
  }
  if (rule.contractCreation && (rule.to !== undefined || rule.erc20 !== undefined || rule.calls !== undefined)) {
    throw invalidPolicy(p('contractCreation'), 'impossible: a contract creation has no `to`, so it cannot also match to/erc20/calls');
  }
  if (rule.keys !== undefined && ops.size === 1 && ops.has('signer_createKey')) {
    throw invalidPolicy(p('keys'), 'impossible: signer_createKey has no key yet, so a keys matcher never matches it');
  }
  if (rule.maxValueWei !== undefined && !ops.has('eth_signTransaction')) {
    throw invalidPolicy(p('maxValueWei'), 'impossible: maxValueWei caps transactions, which the rule\'s ops do not include');
  }
}

/** `approvals` of a rule or of the restart guard: who may approve, how many, for how long. */
function readApprovals(v: unknown, q: string, principals: ReadonlyMap<string, Principal>): { threshold: number; from: readonly string[]; ttlSeconds: number } {
  const a = obj(v, q, ['threshold', 'from', 'ttlSeconds'], ['threshold', 'from']);
  const from = [
    ...uniqueSet(
      list(a.from, join(q, 'from'), (x, r) => {
        const name = str(x, r);
        if (name === HOST_PRINCIPAL) throw invalidPolicy(r, 'the unauthenticated host cannot approve');
        if (!principals.has(name)) throw invalidPolicy(r, `unknown principal "${name.slice(0, 64)}"`);
        return name;
      }),
      join(q, 'from'),
    ),
  ];
  const threshold = posInt(a.threshold, join(q, 'threshold'));
  if (threshold > from.length) throw invalidPolicy(join(q, 'threshold'), `impossible: threshold ${threshold} > ${from.length} approver(s)`);
  const ttlSeconds = a.ttlSeconds === undefined ? 86400 : posInt(a.ttlSeconds, join(q, 'ttlSeconds'), 30 * 86400);
  return { threshold, from, ttlSeconds };
}

/**
 * `restartGuard` (docs/principals.md "Restart guard"): after an unclean restart ("unclean") or
 * after every restart ("always"), the first request that a guarded rule would sign needs these
 * approvals instead; once one is approved and signed, the guard is cleared (and sealed).
 * Guarded rules: `rules`, or by default every allow rule with a `window` or `maxValueWei`.
 */
function readRestartGuard(v: unknown, rules: readonly CompiledRule[], principals: ReadonlyMap<string, Principal>): RestartGuardPolicy {
  const g = obj(v, 'restartGuard', ['when', 'rules', 'approvals'], ['when', 'approvals']);
  if (g.when !== 'unclean' && g.when !== 'always') throw invalidPolicy(join('restartGuard', 'when'), 'expected "unclean" or "always"');
  const byId = new Map(rules.map((r) => [r.id, r]));
  let guarded: Set<string>;
  if (g.rules === undefined) {
    guarded = new Set(rules.filter((r) => r.effect === 'allow' && (r.window !== undefined || r.maxValueWei !== undefined)).map((r) => r.id));
    if (guarded.size === 0) throw invalidPolicy(join('restartGuard', 'rules'), 'impossible: no allow rule has a window or maxValueWei; name the guarded rules');
  } else {
    guarded = uniqueSet(
      list(g.rules, join('restartGuard', 'rules'), (x, r) => {
        const id = str(x, r);
        const rule = byId.get(id);
        if (!rule) throw invalidPolicy(r, `no rule with id "${id.slice(0, 64)}"`);
        if (rule.effect !== 'allow') throw invalidPolicy(r, `rule "${id}" is a deny rule (a deny already refuses)`);
        return id;
      }),
      join('restartGuard', 'rules'),
    );
  }
  return { when: g.when, rules: guarded, approvals: readApprovals(g.approvals, join('restartGuard', 'approvals'), principals) };
}

/** Validates and compiles a parsed JSON document. */
export function compilePolicy(doc: unknown): CompiledPolicy {
  const o = obj(doc, '', ['policyVersion', 'name', 'description', 'principals', 'rules', 'restartGuard', 'stateScope'], ['policyVersion', 'name', 'rules']);
  if (o.policyVersion !== POLICY_VERSION) throw invalidPolicy('policyVersion', `unsupported version (this build reads ${POLICY_VERSION})`);
  const name = str(o.name, 'name', { max: 128 });
  const principals = new Map<string, Principal>();
  if (o.principals !== undefined) {
    const ps = obj(o.principals, 'principals', Object.keys(o.principals as object));
    // Approvals are counted by principal name: one key under two names would let its holder
    // approve twice towards a threshold, or approve its own request under the other name
    // (session 25's review). So a key names one principal.
    const byKey = new Map<string, string>();
    for (const [n, v] of Object.entries(ps)) {
      const path = `principals.${n}`;
      if (!PRINCIPAL_NAME.test(n)) throw invalidPolicy(path, 'principal names use letters, digits and _ . - (at most 64)');
      if (n === HOST_PRINCIPAL) throw invalidPolicy(path, '"host" is the built-in unauthenticated caller; choose another name');
      const principal = readPrincipal(n, v, path);
      // By JWK coordinates, not SPKI bytes: a P-256 key has a compressed and an uncompressed form.
      const id = keyIdentity(principal.publicKey);
      const other = byKey.get(id);
      if (other !== undefined) throw invalidPolicy(join(path, 'publicKey'), `the same key as principal "${other}": a key names one principal (approvals are counted by name)`);
      byKey.set(id, n);
      principals.set(n, principal);
    }
  }
  if (!Array.isArray(o.rules)) throw invalidPolicy('rules', 'expected an array');
  if (o.rules.length > MAX_RULES) throw invalidPolicy('rules', `more than ${MAX_RULES} rules`);
  const ids = new Set<string>();
  const rules = o.rules.map((r, i) => {
    const rule = readRule(r, `rules[${i}]`, i, principals);
    if (ids.has(rule.id)) throw invalidPolicy(`rules[${i}].id`, `duplicate rule id "${rule.id}"`);
    if (rule.id === 'restart-guard') throw invalidPolicy(`rules[${i}].id`, '"restart-guard" is reserved (the approvals the restart guard asks for carry it)');
    ids.add(rule.id);
    return rule;
  });
  if (o.stateScope !== undefined && o.stateScope !== 'instance' && o.stateScope !== 'fleet') throw invalidPolicy('stateScope', 'expected "instance" or "fleet"');
  const stateScope = o.stateScope === 'fleet' ? 'fleet' : 'instance';
  const out: CompiledPolicy = { version: 1, name, principals, rules, stateScope, document: doc as JsonValue };
  if (o.description !== undefined) out.description = str(o.description, 'description', { max: 4096 });
  if (o.restartGuard !== undefined) out.restartGuard = readRestartGuard(o.restartGuard, rules, principals);
  return out;
}

/** Parses policy file bytes with the strict JSON reader, then validates. */
export function parsePolicy(bytes: Uint8Array): CompiledPolicy {
  if (bytes.length > MAX_POLICY_BYTES) throw invalidPolicy('', `larger than ${MAX_POLICY_BYTES} bytes`);
  let doc: JsonValue;
  try {
    doc = parseStrictJsonBytes(bytes);
  } catch (e) {
    const msg = e instanceof SignerError ? e.message.replace(/manifest/g, 'policy') : 'not valid JSON';
    throw new PolicyDocumentError('POLICY_JSON', '', `not strict JSON: ${msg}`, { cause: e });
  }
  return compilePolicy(doc);
}
