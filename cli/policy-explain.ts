/**
 * `enclave-signer policy explain FILE --request req.json`: which rule decides a request and
 * why, with the decoded intent and every rule's verdict. Runs the enclave's own intent builder
 * and evaluator, so the answer is the enclave's answer for the same facts.
 */
import { parseStrictJsonBytes } from '../attestation/manifest-json.js';
import type { JsonLike } from '../common/cbor-json.js';
import { SignerError } from '../common/errors.js';
import { buildIntent } from '../enclave/policy/build-intent.js';
import { HOST_PRINCIPAL } from '../enclave/policy/document.js';
import { evaluate, type Decision } from '../enclave/policy/evaluate.js';
import { POLICY_OPS, type Intent, type PolicyOp } from '../enclave/policy/intent.js';
import { policyHash } from '../enclave/policy/policy-hash.js';
import { checkWindowState, emptyWindowState } from '../enclave/policy/windows.js';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import { CliInputError, EXIT_FAILED, EXIT_OK, UsageError, errorReport } from './errors.js';
import { readInputFile, type Io } from './io.js';
import { loadPolicy } from './policy-input.js';

export const POLICY_EXPLAIN_USAGE = `Usage: enclave-signer policy explain <policy.json> --request <req.json|-> [--json]

Evaluates one request against a policy and says which rule decides and why.
The request file is JSON:

  { "method": "eth_signTransaction",          (any op a rule can name)
    "request": { "tx": { … } },              (the enclave's sign request: tx, typedData,
                                               psbt, message, data, digest, authorization,
                                               path, kind — see docs/policy.md)
    "keyId": "0b9a8c4e-…",                    (optional)
    "principal": "backend",                   (optional; default "host")
    "approvals": ["alice"], "rejections": [], (optional: verified approvers)
    "now": 1800000000, "windows": { … },      (optional: clock and window state)
    "masterFingerprint": "73c5da0a" }         (optional, PSBTs)

PSBT change cannot be verified here (that needs the seed, inside the enclave),
so every output counts as external in this explanation.

Options:
  --request <file>  the request (- for standard input)
  --json            print a JSON result on stdout
  -h, --help        show this help

Exit status: 0 explained (whatever the decision), 1 invalid policy or request,
2 usage error.
`;

const SPEC = { request: { type: 'string' }, json: { type: 'boolean' } } as const;
const REQUEST_FIELDS = ['method', 'op', 'request', 'params', 'keyId', 'principal', 'approvals', 'rejections', 'now', 'windows', 'masterFingerprint'];

class ExplainInputError extends SignerError {}

function strings(v: unknown, field: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new ExplainInputError('POLICY_REQUEST', `${field}: expected an array of principal names`);
  return v as string[];
}

/** JSON-safe copy of an intent (bigint → decimal string). */
function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

function summary(i: Intent): string[] {
  switch (i.op) {
    case 'eth_signTransaction': {
      const t = i.tx;
      const c = t.call;
      const call =
        c.kind === 'none' ? (t.contractCreation ? 'contract creation' : 'plain value transfer')
          : c.kind === 'erc20-transfer' ? `ERC-20 transfer ${c.amount} to ${c.to}`
            : c.kind === 'erc20-approve' ? `ERC-20 approve ${c.amount} to spender ${c.spender}`
              : c.kind === 'erc20-transferFrom' ? `ERC-20 transferFrom ${c.from} → ${c.to}, ${c.amount}`
                : c.kind === 'erc20-mint' ? `ERC-20 mint ${c.amount} to ${c.to}`
                : c.kind === 'erc20-burn' ? `ERC-20 burn ${c.amount} (from the signer's own balance)`
                : c.kind === 'other' ? `call ${c.selector} with ${c.args.length} argument word(s)` : `short calldata ${c.data}`;
      return [
        `chain ${t.chainId}, ${t.type}, to ${t.to ?? '(contract creation)'}, value ${t.value} wei`,
        call,
        `max fee ${t.fees.maxFeeWei} wei`,
        ...(t.delegates.length > 0 ? [`EIP-7702 delegates ${t.delegates.join(', ')}`] : []),
      ];
    }
    case 'eth_signTypedData_v4': {
      const d = i.typedData.domain;
      return [
        `${i.typedData.primaryType} in domain ${JSON.stringify(d)}`,
        ...i.typedData.grants.map((g) => `grant ${g.kind}: ${g.unlimited ? 'UNLIMITED' : g.amount} of ${g.token ?? '?'} to spender ${g.spender ?? '?'}`),
      ];
    }
    case 'signer_signPsbt':
      return [
        ...i.psbt.outputs.map((o) => `output ${o.index}: ${o.amount} sats to ${o.address ?? `script ${o.script}`}${o.change ? ` (change, ${o.changePath})` : o.claimsOurs ? ' (claims our fingerprint, unverified)' : ''}`),
        `fee ${i.psbt.fee ?? 'unknown'} sats, outgoing ${i.psbt.externalAmount} sats`,
      ];
    case 'signer_signAuthorization':
      return [`EIP-7702 delegation to ${i.authorization.address} on chain ${i.authorization.chainId}`];
    case 'personal_sign':
      return [`message of ${i.message.length} bytes${i.message.text !== null ? `: ${JSON.stringify(i.message.text.slice(0, 80))}` : ''}`];
    default:
      return [i.op];
  }
}

function text(policyName: string, hash: string, op: string, principal: string, i: Intent, d: Decision): string {
  const lines = [
    `policy    ${policyName} (sha256 ${hash})`,
    `request   ${op} by ${principal}${i.keyId ? ` on key ${i.keyId}` : ''}`,
    ...summary(i).map((s, n) => `${n === 0 ? 'intent   ' : '         '} ${s}`),
    `decision  ${d.outcome.toUpperCase()}${d.rule ? ` by rule ${d.rule}` : ' (no rule: deny by default)'}`,
    `reason    ${d.reason}`,
  ];
  if (d.approvals) lines.push(`approvals ${d.approvals.approvedBy.length} of ${d.approvals.threshold} (approvers: ${d.approvals.approvers.join(', ')})`);
  lines.push('rules');
  const w = Math.max(0, ...(d.trace ?? []).map((t) => t.rule.length));
  for (const t of d.trace ?? []) lines.push(`  ${t.effect.padEnd(5)} ${t.rule.padEnd(w)}  ${t.matched ? 'MATCH' : 'no'}: ${t.reason}`);
  return `${lines.join('\n')}\n`;
}

export async function policyExplain(argv: string[], io: Io): Promise<number> {
  return guard(POLICY_EXPLAIN_USAGE, io, 'cannot explain the request', async () => {
    const args = parseArgs(argv, SPEC, { positionals: { min: 1, max: 1 } });
    if (args.help) {
      io.stdout(POLICY_EXPLAIN_USAGE);
      return EXIT_OK;
    }
    const { json } = args.flags;
    if (args.flags.request === undefined) throw new UsageError('missing --request <req.json>');
    const p = await loadPolicy(args.positionals[0]!, io, json);
    if (typeof p === 'number') return p;
    const raw = await readInputFile(args.flags.request, 'request', 4 * 1024 * 1024, io);
    let req: Record<string, unknown>;
    try {
      const v = parseStrictJsonBytes(raw);
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected a JSON object');
      req = v as Record<string, unknown>;
    } catch (e) {
      throw new CliInputError(`request ${args.flags.request} is not a JSON object: ${(e as Error).message.replace(/manifest/g, 'request')}`, { cause: e });
    }
    try {
      for (const k of Object.keys(req)) if (!REQUEST_FIELDS.includes(k)) throw new ExplainInputError('POLICY_REQUEST', `${k}: unknown field (allowed: ${REQUEST_FIELDS.join(', ')})`);
      const op = (req.method ?? req.op) as PolicyOp;
      if (!POLICY_OPS.includes(op)) throw new ExplainInputError('POLICY_REQUEST', `method: expected one of ${POLICY_OPS.join(', ')}`);
      const body = req.request ?? req.params ?? {};
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ExplainInputError('POLICY_REQUEST', 'request: expected an object (the enclave sign request)');
      const principal = req.principal ?? HOST_PRINCIPAL;
      if (typeof principal !== 'string' || (principal !== HOST_PRINCIPAL && !p.principals.has(principal))) {
        throw new ExplainInputError('POLICY_REQUEST', 'principal: not a principal of this policy (nor "host")');
      }
      if (req.keyId !== undefined && typeof req.keyId !== 'string') throw new ExplainInputError('POLICY_REQUEST', 'keyId: expected a string');
      if (req.masterFingerprint !== undefined && (typeof req.masterFingerprint !== 'string' || !/^[0-9a-f]{8}$/i.test(req.masterFingerprint))) {
        throw new ExplainInputError('POLICY_REQUEST', 'masterFingerprint: expected 8 hex digits');
      }
      const now = req.now ?? Math.floor(Date.now() / 1000);
      if (typeof now !== 'number' || !Number.isSafeInteger(now)) throw new ExplainInputError('POLICY_REQUEST', 'now: expected unix seconds');
      const intent = buildIntent(op, body as Record<string, JsonLike>, {
        ...(typeof req.keyId === 'string' ? { keyId: req.keyId } : {}),
        ...(typeof req.masterFingerprint === 'string' ? { masterFingerprint: req.masterFingerprint.toLowerCase() } : {}),
      });
      const d = evaluate(p, intent, {
        principal,
        approvals: strings(req.approvals, 'approvals'),
        rejections: strings(req.rejections, 'rejections'),
        now,
        windows: req.windows === undefined ? emptyWindowState() : checkWindowState(req.windows),
        explain: true,
      });
      const hash = policyHash(p);
      io.stdout(json ? `${JSON.stringify({ valid: true, policy: { name: p.name, hash }, method: op, principal, intent: plain(intent), decision: d }, null, 2)}\n` : text(p.name, hash, op, principal, intent, d));
      return EXIT_OK;
    } catch (e) {
      if (!(e instanceof SignerError)) throw e;
      const r = { ...errorReport(e), ...((e as { field?: string }).field ? { field: (e as { field?: string }).field } : {}) };
      if (json) io.stdout(`${JSON.stringify({ valid: false, error: r }, null, 2)}\n`);
      else io.stderr(`FAILED: cannot explain the request\n  error   ${r.code}\n  reason  ${r.message}\n${r.hint ? `  hint    ${r.hint}\n` : ''}`);
      return EXIT_FAILED;
    }
  });
}
