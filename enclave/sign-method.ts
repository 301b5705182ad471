/**
 * The enclave's `sign` method: the signing decision path (docs/policy.md, docs/enclave.md). The
 * worker unwraps the key and parses the request into its intent; the engine decides on that
 * intent (reserving its window slot); the worker signs the same parsed value; the window counts
 * it only once the signature exists and its audit record is written.
 */
import type { JsonLike } from '../common/cbor-json.js';
import { requestDigest } from '../common/audit/digest.js';
import { SignerError } from '../common/errors.js';
import { asKeyRecord, asRecord, asSignOp, onlyKeys, SIGN_OPS, type KeyRecord, type SignOp } from '../common/protocol/enclave-api.js';
import { checkKind, readSignCall, type KeyRef } from '../common/rpc/sign-call.js';
import { withAuditRecord } from './audit/trail.js';
import type { ApprovalRecord } from './auth/approvals.js';
import { errorRule, staleUnderRequest, type Decisions } from './decisions.js';
import type { RequestContext } from './method.js';
import { ReplayedAnswer, type UsedAnswer } from './policy/approvals-gate.js';
import type { Ticket } from './policy/gate.js';
import type { WorkerPool } from './worker-pool.js';

export async function signDecided(d: Decisions, pool: WorkerPool, p: Record<string, unknown>, ctx?: RequestContext) {
  const { trail, durable, approvals, policy } = d;
  const signed = p.auth !== undefined;
  onlyKeys(p, signed ? ['key', 'auth', 'state'] : ['op', 'key', 'request', 'state'], 'params');
  const digest = requestDigest('sign', ctx?.raw ?? null);
  // Only the id, kind, keyring and blob of the host's record are used: the
  // blob's AAD binds the first three, the worker derives everything else.
  // The record's publicKey/address/xpub/fingerprint are advisory (for the parent).
  let key: KeyRecord | undefined;
  let badKey: unknown;
  try {
    key = asKeyRecord(p.key);
  } catch (e) {
    badKey = e;
  }
  // What is known before anything is verified: the host asks. A refusal here is on the chain
  // (Decisions.readyToDecide), and a signed request's id is not spent by it.
  const asked = { principal: 'host', op: signed ? 'sign' : SIGN_OPS.includes(p.op as SignOp) ? (p.op as SignOp) : 'sign', keyId: key?.keyId ?? null, requestDigest: digest };
  d.readyToDecide(p.state, asked); // no audit log or no restored state, no decision
  if (!key) {
    // The host's own malformed call asked nothing of the policy; a principal's request it
    // broke was refused, which the chain records.
    if (!signed) throw badKey;
    throw withAuditRecord(badKey as Error, trail.denied({ ...asked, rule: errorRule(badKey) }));
  }
  let op: SignOp;
  let request: Record<string, JsonLike>;
  let principal = 'host';
  /** For a signed request: the key its params name (checked against the key that signs). */
  let keyRef: KeyRef | undefined;
  if (signed) {
    let who;
    try {
      who = d.authenticate(p.auth, 'sign');
      const method = who.method as Parameters<typeof readSignCall>[0];
      // The call is read from the params the principal signed, never from the host's translation.
      // No configured chain id here: the host's --chain-id is not evidence, so the signed
      // transaction must name its chain.
      const call = readSignCall(method, who.params);
      checkKind(call, key.kind, method);
      if ('keyId' in call.key && call.key.keyId !== key.keyId) {
        throw new SignerError('SIGN_KEY_MISMATCH', `${call.key.field}: the signed request names key ${call.key.keyId}, the host handed over key ${key.keyId}`, {
          hint: 'the host substituted the key: nothing was signed',
        });
      }
      op = call.op;
      request = call.request(key.kind);
      keyRef = call.key;
      principal = who.request.principal;
    } catch (e) {
      throw withAuditRecord(e as Error, trail.denied({ principal: who?.request.principal ?? 'host', op: who?.method ?? 'sign', keyId: key.keyId, requestDigest: digest, rule: errorRule(e) }));
    }
  } else {
    op = asSignOp(p.op);
    request = asRecord(p.request, 'request') as Record<string, JsonLike>;
  }
  const job = { op, keyId: key.keyId, kind: key.kind, keyringId: key.keyringId, blob: key.blob, request };
  let signedBy = key.keyId;
  let ticket: Ticket | undefined;
  let approval: ApprovalRecord | undefined;
  let epoch = durable.epoch;
  // A request that ends without a released signature gives back its window slot and approval.
  const release = () => {
    if (ticket) policy.release(ticket);
    if (approval) approvals.released(approval);
  };
  let outcome;
  try {
    outcome = await pool.run(job, {
      ...(ctx?.cancellation ? { cancellation: ctx.cancellation } : {}),
      ...(ctx?.deadline !== undefined ? { deadline: ctx.deadline } : {}),
      authorize: (facts, intent) => {
        signedBy = facts.keyId;
        // The address a signed request names is checked against the key's own (derived from the unwrapped secret).
        if (keyRef && 'address' in keyRef && facts.address?.toLowerCase() !== keyRef.address.toLowerCase()) {
          throw new SignerError('SIGN_KEY_MISMATCH', `${keyRef.field}: the signed request names ${keyRef.address}, the host handed over the key of ${facts.address ?? 'no address'}`, {
            hint: 'the host substituted the key: nothing was signed',
          });
        }
        // The state this decision is taken on; read before it, as a refusal (-32010) throws.
        epoch = durable.epoch;
        // Fleet scope: an approval used here for this very request, whose use the store may have
        // lost (ApprovalsGate.replayable): the same answer again, nothing signed or used again.
        const again = approvals.replayable({ op, keyId: facts.keyId, request, principal });
        if (again) throw new ReplayedAnswer(again);
        ({ ticket, approval } = approvals.authorize({ op, keyId: facts.keyId, request, intent, principal }));
      },
    });
  } catch (e) {
    release();
    if (e instanceof ReplayedAnswer) return answerAgain(d, e.answer, { principal, op, keyId: signedBy, requestDigest: digest });
    throw d.refusalRecorded(e, { principal, op, keyId: signedBy, requestDigest: digest }, epoch);
  }
  const { result, facts } = outcome;
  // The new counters/approvals change only for a window rule or an approval; those were decided
  // on state that a fleet take-over (durable.handIn) may have replaced since: then not counted.
  const changed = d.changesState(ticket, approval);
  if (changed && durable.epoch !== epoch) {
    release();
    throw d.refusalRecorded(staleUnderRequest(), { principal, op, keyId: facts.keyId, requestDigest: digest });
  }
  let rec;
  try {
    rec = trail.signed({ principal, op, keyId: facts.keyId, requestDigest: digest, rule: ticket?.decision.rule ?? null }, result);
  } catch (e) {
    release();
    throw new SignerError('AUDIT_UNAVAILABLE', 'denied: the audit record could not be written, so the signature is not released', { cause: e });
  }
  // Counted only now: the signature exists and its record is written.
  if (ticket) policy.commit(ticket);
  if (approval) approvals.consumed(approval, { result, signer: facts, rule: approval.rule, keyId: facts.keyId, principal });
  // The new counters/approvals, sealed — one seal for every signature committed in this turn of
  // the event loop — and stored by the parent before it releases the signature.
  if (!changed) return { result: result as JsonLike, signer: facts, audit: [rec.bytes] };
  const committedIn = durable.epoch;
  const sealed = await durable.sealSoon();
  // Fleet scope: a take-over between the commit and the seal replaced the state this signature
  // was counted in; the record would not include it, so it is not released.
  if (durable.epoch !== committedIn) throw withAuditRecord(staleUnderRequest(), rec);
  return { result: result as JsonLike, signer: facts, audit: [rec.bytes], ...(sealed ? d.sealedMembers(sealed) : {}) };
}

/**
 * The answer of an approval used here, given again for the identical request (ApprovalsGate
 * .replayable): on the chain again (a new record of the same result), sealed with the state that
 * holds the use, so the parent stores the use this time before it releases the answer.
 */
async function answerAgain(d: Decisions, answer: UsedAnswer, facts: { principal: string; op: string; keyId: string; requestDigest: Uint8Array }) {
  let rec;
  try {
    rec = d.trail.signed({ ...facts, rule: answer.rule }, answer.result);
  } catch (e) {
    throw new SignerError('AUDIT_UNAVAILABLE', 'denied: the audit record could not be written, so the signature is not released', { cause: e });
  }
  const sealed = await d.durable.sealSoon();
  return { result: answer.result as JsonLike, signer: answer.signer, audit: [rec.bytes], ...(sealed ? d.sealedMembers(sealed) : {}) };
}
