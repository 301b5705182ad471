/**
 * `enclave-signer approve <approvalId>`: fetch a pending approval, check that
 * the request it shows is the one its digest names, show it, and sign the
 * approval (or, with --reject, the veto) as a principal.
 *
 * Why the digest check matters: the approval travels through the untrusted
 * host, which could show the approver a harmless request next to the digest
 * of a harmful one. The approver signs the digest, so the CLI recomputes it
 * from the request it prints and refuses to sign when they differ.
 */
import { signApproval } from '../common/auth/client-signer.js';
import { requestDigest } from '../common/auth/request.js';
import { SignerError } from '../common/errors.js';
import { parseArgs } from './args.js';
import { printRpcError } from './call.js';
import { guard } from './command.js';
import { EXIT_OK, UsageError } from './errors.js';
import type { Io } from './io.js';
import { principalFlag, readPrincipalKey, resolveAudience } from './principal-auth.js';
import { socketRpc } from './socket-rpc.js';

export const APPROVE_USAGE = `Usage: enclave-signer approve <approvalId> --socket PATH --principal NAME --key key.pem [--reject] [--json]

Shows a pending approval — the request, and the intent the enclave decoded
from it — checks that the request matches the approval's request digest, and
signs your approval of that digest as NAME (--reject: your veto; one rejection
vetoes the request). Prints the approval's state afterwards.

Options:
  --socket PATH        the signing socket
  --principal NAME     the approver (one of the rule's approvers; never the requester)
  --key FILE           its private key (PEM: Ed25519 or ECDSA P-256)
  --reject             reject (veto) instead of approve
  --policy-hash HEX    the policy the request is for (default: signer_status policy.hash)
  --webauthn           sign in WebAuthn assertion shape (ECDSA P-256 keys)
  --json               print {"ok":true,"approval":…,"shown":…} on one line
  -h, --help           show this help

Exit status: 0 recorded, 1 refused (printed) or the shown request does not match its digest, 2 usage error.
`;

const SPEC = {
  socket: { type: 'string' },
  principal: { type: 'string' },
  key: { type: 'string' },
  reject: { type: 'boolean' },
  'policy-hash': { type: 'string' },
  webauthn: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

interface ShownApproval {
  approvalId: string;
  requestDigest: string;
  rule: string;
  requester: string;
  status?: unknown;
  threshold?: unknown;
  approvedBy?: unknown;
  request: { method: string; params: unknown } | null;
  intent?: unknown;
}

function readShown(v: unknown, approvalId: string): ShownApproval {
  const o = v as Partial<ShownApproval> | null;
  if (typeof o !== 'object' || o === null || o.approvalId !== approvalId || typeof o.requestDigest !== 'string' || !/^[0-9a-f]{64}$/.test(o.requestDigest)) {
    throw new SignerError('CLI_APPROVAL_SHAPE', `signer_getApproval did not answer with approval ${approvalId}`);
  }
  // Signed as shown (approval message v2): the enclave refuses a signature naming another requester or rule.
  if (typeof o.requester !== 'string' || o.requester.length === 0 || typeof o.rule !== 'string' || o.rule.length === 0) {
    throw new SignerError('CLI_APPROVAL_SHAPE', `signer_getApproval did not show who requested approval ${approvalId} and under which rule`);
  }
  const r = o.request as { method?: unknown; params?: unknown } | null | undefined;
  if (r === null || r === undefined || typeof r.method !== 'string') {
    throw new SignerError('CLI_APPROVAL_UNVERIFIABLE', `approval ${approvalId} does not show its request, so its digest cannot be checked; refusing to sign blind`);
  }
  return { ...(o as ShownApproval), request: { method: r.method, params: r.params } };
}

export async function approve(argv: string[], io: Io): Promise<number> {
  return guard(APPROVE_USAGE, io, 'approval failed', async () => {
    const args = parseArgs(argv, SPEC, { positionals: { min: 1, max: 1 } });
    if (args.help) {
      io.stdout(APPROVE_USAGE);
      return EXIT_OK;
    }
    const f = args.flags;
    const approvalId = args.positionals[0]!;
    if (f.socket === undefined) throw new UsageError('missing --socket PATH');
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(approvalId)) throw new UsageError('<approvalId> is the id from the -32010 answer (letters, digits, _ -)');
    const principal = principalFlag(f.principal);
    const key = await readPrincipalKey(f.key, io);
    if (f.webauthn && key.alg !== 'ecdsa-p256') throw new UsageError('--webauthn needs an ECDSA P-256 key');
    const audience = await resolveAudience(f.socket, f['policy-hash']);

    const got = await socketRpc(f.socket, { jsonrpc: '2.0', id: 1, method: 'signer_getApproval', params: { approvalId } });
    if (!got.ok) return printRpcError(io, f.json, got.error);
    const shown = readShown(got.result, approvalId);
    const recomputed = requestDigest(audience, shown.request!.method, shown.request!.params);
    if (recomputed !== shown.requestDigest) {
      throw new SignerError('CLI_APPROVAL_MISMATCH', `the request shown for ${approvalId} does not match its digest (shown ${shown.requestDigest}, recomputed ${recomputed}); not signing`, {
        hint: 'the host may be showing you a different request than the one waiting for approval; report it',
      });
    }
    if (!f.json) {
      io.stderr(
        [
          `approval  ${approvalId}  (rule ${shown.rule}, ${String(shown.status)}, ${Array.isArray(shown.approvedBy) ? shown.approvedBy.length : '?'} of ${String(shown.threshold)})`,
          `requester ${shown.requester}  (your signature names it: the enclave refuses it for anyone else's request)`,
          `digest    ${shown.requestDigest}  (recomputed from the request below: matches)`,
          `request   ${shown.request!.method} ${JSON.stringify(shown.request!.params)}`,
          ...(shown.intent !== undefined ? [`intent    ${JSON.stringify(shown.intent, null, 2).replace(/\n/g, '\n          ')}`] : []),
          `decision  ${f.reject ? 'REJECT' : 'approve'} as ${principal}`,
          '',
        ].join('\n'),
      );
    }
    const decision = f.reject ? 'reject' : 'approve';
    const s = signApproval({ key, approver: principal, approvalId, requestDigest: shown.requestDigest, requester: shown.requester, rule: shown.rule, decision, webauthn: f.webauthn ? {} : false });
    const params = { approvalId, approver: principal, signature: s.signature, ...(s.webauthn ? { webauthn: s.webauthn } : {}) };
    const answer = await socketRpc(f.socket, { jsonrpc: '2.0', id: 2, method: f.reject ? 'signer_reject' : 'signer_approve', params });
    if (!answer.ok) return printRpcError(io, f.json, answer.error);
    io.stdout(f.json ? `${JSON.stringify({ ok: true, approval: answer.result, shown })}\n` : `${JSON.stringify(answer.result, null, 2)}\n`);
    return EXIT_OK;
  });
}
