/**
 * The enclave methods of principals (docs/principals.md): quorum approvals — viewed, listed,
 * approved or vetoed — and sessions, opened by a principal's signature. Every decision is a
 * record on the chain; an approval's answer also carries the sealed state it changed, which the
 * parent stores before it answers.
 */
import { requestDigest } from '../common/audit/digest.js';
import type { JsonLike } from '../common/cbor-json.js';
import { SignerError } from '../common/errors.js';
import { asRecord, asString, onlyKeys } from '../common/protocol/enclave-api.js';
import { OPEN_SESSION_METHOD } from '../common/auth/session.js';
import { withAuditRecord } from './audit/trail.js';
import { errorRule, type Decisions } from './decisions.js';
import type { EnclaveMethod } from './method.js';

export function principalMethods(d: Decisions): Record<string, EnclaveMethod> {
  const { trail, approvals, verifier } = d;
  return {
    // Quorum approvals: the view carries the request the digest covers and the intent decoded here.
    async 'approval.get'(p) {
      onlyKeys(p, ['approvalId', 'state'], 'params');
      if (p.state !== undefined) d.stateReady(p.state);
      return approvals.view(asString(p.approvalId, 'approvalId', 128)) as unknown as JsonLike;
    },
    async 'approval.list'(p) {
      onlyKeys(p, ['state'], 'params');
      if (p.state !== undefined) d.stateReady(p.state);
      return { approvals: approvals.list() } as unknown as JsonLike;
    },
    // Sessions ("Sessions"): opened by a principal's signature, on the chain like every decision.
    // The answer holds the enclave's public half only; the key stays here.
    async 'session.open'(p, ctx) {
      onlyKeys(p, ['auth'], 'params');
      trail.log(); // no audit log, no decision
      const digest = requestDigest('session.open', ctx?.raw ?? null);
      let principal = 'host';
      let opened;
      try {
        const a = asRecord(p.auth, 'auth');
        onlyKeys(a, ['method', 'params', 'signerAuth'], 'auth');
        if (a.method !== OPEN_SESSION_METHOD) throw new SignerError('INVALID_PARAMS', `auth.method: session.open carries ${OPEN_SESSION_METHOD} only`);
        const out = verifier.openSession(a.params, a.signerAuth);
        principal = out.request.principal;
        opened = out.opened;
      } catch (e) {
        throw withAuditRecord(e as Error, trail.sessionRefused(principal, digest, errorRule(e)));
      }
      let rec;
      try {
        rec = trail.sessionOpened(principal, digest);
      } catch (e) {
        verifier.sessions.end(opened.session);
        throw new SignerError('AUDIT_UNAVAILABLE', 'denied: the session could not be recorded, so it is not opened', { cause: e });
      }
      return { ...opened, audit: [rec.bytes] } as unknown as JsonLike;
    },
    async 'approval.approve'(p) {
      return decideApproval(d, approvalParams(p), 'approve');
    },
    async 'approval.reject'(p) {
      return decideApproval(d, approvalParams(p), 'reject');
    },
  };
}

/**
 * An approval or veto, counted and recorded: the answer carries its audit record (the parent
 * stores it before answering) and the sealed state it changed. The log must be open before the
 * approval book changes, so a counted approval always has its record.
 */
function decideApproval(d: Decisions, params: ReturnType<typeof approvalParams>, decision: 'approve' | 'reject'): JsonLike {
  // Not before the sealed state is back: the approval book is part of it (`state.restore` replaces
  // the book), so until then this enclave's book is not the one the approval is for — an approver
  // was told APPROVAL_UNKNOWN for an approval that exists, and anything counted would be replaced.
  // Refused as a signature is (-32002); the approver sends it again.
  d.stateReady(params.state);
  d.trail.log();
  const view = d.approvals.approve(params, decision) as unknown as { requestDigest?: unknown; rule?: unknown; request?: { method?: unknown }; intent?: { keyId?: unknown } };
  const digest = typeof view.requestDigest === 'string' && /^[0-9a-f]{64}$/.test(view.requestDigest) ? new Uint8Array(Buffer.from(view.requestDigest, 'hex')) : null;
  const rec = d.trail.approval(decision === 'approve' ? 'approved' : 'rejected', params.approver, {
    op: typeof view.request?.method === 'string' ? view.request.method : null,
    keyId: typeof view.intent?.keyId === 'string' ? view.intent.keyId : null,
    requestDigest: digest,
    rule: typeof view.rule === 'string' ? view.rule : null,
  });
  return { ...d.withSealed(view), audit: [rec.bytes] } as unknown as JsonLike;
}

function approvalParams(p: Record<string, unknown>) {
  onlyKeys(p, ['approvalId', 'approver', 'signature', 'webauthn', 'state'], 'params');
  const out: { approvalId: string; approver: string; signature: string; webauthn?: { authenticatorData: string; clientDataJSON: string }; state?: unknown } = {
    approvalId: asString(p.approvalId, 'approvalId', 128),
    approver: asString(p.approver, 'approver', 64),
    signature: asString(p.signature, 'signature', 512),
  };
  if (p.webauthn !== undefined) {
    const w = asRecord(p.webauthn, 'webauthn');
    onlyKeys(w, ['authenticatorData', 'clientDataJSON'], 'webauthn');
    out.webauthn = { authenticatorData: asString(w.authenticatorData, 'webauthn.authenticatorData', 4096), clientDataJSON: asString(w.clientDataJSON, 'webauthn.clientDataJSON', 4096) };
  }
  if (p.state !== undefined) out.state = p.state;
  return out;
}
