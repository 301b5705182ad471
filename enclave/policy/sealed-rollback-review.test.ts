/**
 * Review (sealed state, rollback and restarts): the hostile host chooses which sealed record to
 * hand in, when to restart the enclave, and how to race fleet instances. Each test plays that host
 * and fails if it gets more signed than the policy allows, or leaves the enclave stuck.
 *
 * Pieces are the real ones (policy gate, approvals gate and book, durable state, sealed-state store,
 * request verifier), wired as enclave/service.ts wires them; an "enclave life" is a fresh set of them
 * on the same keyring key (a restart).
 */
import { sign as edSign, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { approvalMessage, requestDigest, requestSignatureMessage, toBase64Url } from '../../common/auth/request.js';
import { createApprovalsGate, type ApprovalsGate } from './approvals-gate.js';
import { createDurableState, type DurableState } from './durable.js';
import { createPolicyGate, type PolicyGate } from './gate.js';
import type { Intent } from './intent.js';
import { KEY_1, KEY_2, policy } from './test-fixtures.js';
import { RequestVerifier } from '../auth/verify-request.js';
import { SealedStateStore } from '../auth/sealed-state.js';
import { errorCode } from '../auth/test-helpers.js';

const KEYRING = new Uint8Array(randomBytes(32));
const T0 = 1_800_000_000;

const bob = generateKeyPairSync('ed25519');
const alice = generateKeyPairSync('ed25519');
const edPem = (k: ReturnType<typeof generateKeyPairSync>) => k.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const PRINCIPALS = {
  bob: { alg: 'ed25519', publicKey: edPem(bob) },
  alice: { alg: 'ed25519', publicKey: edPem(alice) },
};

const keyOf = (text: string) => (text.startsWith('pay') ? KEY_2 : KEY_1);
const msg = (text: string) => ({ op: 'personal_sign', keyId: keyOf(text), message: { length: text.length, hex: `0x${Buffer.from(text).toString('hex')}`, text } }) as unknown as Intent;

interface Life {
  gate: PolicyGate;
  approvals: ApprovalsGate;
  durable: DurableState;
}

/**
 * One enclave life. `msgs`: a window of 2 signatures (guarded by the restart guard); `pay`: needs
 * bob's approval, also guarded. Guard approvals come from bob.
 */
function life(o: { scope?: 'instance' | 'fleet'; newKeyring?: boolean; now?: () => number } = {}): Life {
  const scope = o.scope ?? 'instance';
  const rules = [
    { id: 'pay', effect: 'allow', ops: ['personal_sign'], keys: [KEY_2], approvals: { threshold: 1, from: ['bob'] }, window: { seconds: 3600, maxCount: 10 } },
    { id: 'msgs', effect: 'allow', ops: ['personal_sign'], keys: [KEY_1], window: { seconds: 3600, maxCount: 2 } },
  ];
  const guard = { when: 'unclean', rules: ['msgs', 'pay'], approvals: { threshold: 1, from: ['bob'], ttlSeconds: 3600 } };
  const gate = createPolicyGate(policy(rules, { stateScope: scope, principals: PRINCIPALS, restartGuard: guard }), { source: 'file', now: o.now ?? (() => T0) });
  const approvals = createApprovalsGate(gate);
  const durable = createDurableState(gate, approvals, { scope, restartGuard: 'unclean' });
  approvals.restartGuard = { pending: () => durable.guardPending(), clear: () => durable.clearGuard() };
  durable.attach(KEYRING.slice(), 'kr-1', o.newKeyring === true);
  return { gate, approvals, durable };
}

const req = (text: string) => ({ op: 'personal_sign' as const, keyId: keyOf(text), request: { message: text }, intent: msg(text), principal: 'host' });

type Outcome = { kind: 'signed' } | { kind: 'pending'; approvalId: string; requestDigest: string; rule: string } | { kind: 'refused'; code: string };

/** The service's sign path, minus the worker: authorize, then commit and consume, then seal. */
function trySign(l: Life, text: string): Outcome {
  let out;
  try {
    out = l.approvals.authorize(req(text));
  } catch (e) {
    const w = (e as { wireData?: { approvalId?: string; requestDigest?: string; rule?: string } }).wireData;
    const code = (e as { code?: string }).code ?? 'INTERNAL';
    if (code === 'APPROVAL_REQUIRED' && w?.approvalId) return { kind: 'pending', approvalId: w.approvalId, requestDigest: w.requestDigest!, rule: w.rule! };
    return { kind: 'refused', code };
  }
  l.gate.commit(out.ticket);
  if (out.approval) l.approvals.consumed(out.approval);
  l.durable.seal();
  return { kind: 'signed' };
}

/** bob's approval signature, as the host sees it pass through the parent. */
function bobApproves(p: { approvalId: string; requestDigest: string; rule: string }): string {
  return toBase64Url(edSign(null, approvalMessage({ approvalId: p.approvalId, approver: 'bob', decision: 'approve', requestDigest: p.requestDigest, requester: 'host', rule: p.rule }), bob.privateKey));
}

const code = errorCode;

describe('restart guard against an older record handed back after a restart', () => {
  /**
   * Life 1 restarted unclean: its first guarded request (A) waited for bob, bob approved it, and
   * the parent stored the record sealed with that approval (`approved`) before A signed. The host
   * keeps that record, lets life 1 spend its window, restarts the enclave and hands `approved`
   * back. It must not get the window again without a fresh approval.
   */
  function lifeOneWithGuardApproval() {
    const one = life();
    one.durable.restore(null); // an existing keyring with its record withheld: unclean, guard armed
    expect(one.durable.guardPending()).toBe(true);
    const asked = trySign(one, 'A');
    expect(asked.kind).toBe('pending');
    const p = asked as Extract<Outcome, { kind: 'pending' }>;
    expect(p.rule).toBe('restart-guard');
    const signature = bobApproves(p);
    const pendingRec = one.durable.seal()!; // what the parent stored with the -32010
    one.approvals.approve({ approvalId: p.approvalId, approver: 'bob', signature }, 'approve');
    const approvedRec = one.durable.seal()!; // stored with bob's approval (decideApproval: withSealed)
    expect(trySign(one, 'A').kind).toBe('signed'); // A signs; the guard is satisfied
    expect(one.durable.guardPending()).toBe(false);
    expect(trySign(one, 'B').kind).toBe('signed'); // the window (2) is now full
    expect(trySign(one, 'C')).toEqual({ kind: 'refused', code: 'POLICY_DENIED' });
    return { pendingRec, approvedRec, approval: p, signature };
  }

  it('hostile host: a record holding an approved, unused restart-guard approval does not satisfy the guard of a later life', () => {
    const { approvedRec } = lifeOneWithGuardApproval();
    const two = life();
    const boot = two.durable.restore(approvedRec);
    expect(boot.unclean).toBe(true);
    expect(two.durable.guardPending()).toBe(true);
    // The host resubmits A (unsigned: no barrier). Its guard approval is from the previous life and
    // was used there; the rolled-back record shows it unused. It must not clear this life's guard.
    const again = trySign(two, 'A');
    expect(again.kind).toBe('pending');
    expect(two.durable.guardPending()).toBe(true);
    expect(trySign(two, 'D').kind).toBe('pending');
  });

  it('hostile host: a record with the guard approval still pending, plus the approver signature seen in the old life, does not satisfy the guard either', () => {
    const { pendingRec, approval, signature } = lifeOneWithGuardApproval();
    const two = life();
    two.durable.restore(pendingRec);
    expect(two.durable.guardPending()).toBe(true);
    // bob's approval message names the approval id, digest, requester and rule: no time, no life.
    expect(code(() => two.approvals.approve({ approvalId: approval.approvalId, approver: 'bob', signature }, 'approve'))).not.toBeUndefined();
    expect(trySign(two, 'A').kind).toBe('pending');
    expect(two.durable.guardPending()).toBe(true);
  });

  it('hostile host: a rolled-back approval of a guarded rule does not clear the guard as well (the documented double-sign of that request, not the window)', () => {
    const one = life({ newKeyring: true });
    one.durable.restore(null);
    expect(one.durable.guardPending()).toBe(false);
    const asked = trySign(one, 'pay 1');
    expect(asked.kind).toBe('pending');
    one.approvals.approve({ approvalId: (asked as { approvalId: string }).approvalId, approver: 'bob', signature: bobApproves(asked as Extract<Outcome, { kind: 'pending' }>) }, 'approve');
    const approvedRec = one.durable.seal()!;
    expect(trySign(one, 'pay 1').kind).toBe('signed');
    expect(trySign(one, 'x').kind).toBe('signed');
    expect(trySign(one, 'y').kind).toBe('signed');
    // Restart with the record from before "pay 1" was used: the guard is armed.
    const two = life();
    two.durable.restore(approvedRec);
    expect(two.durable.guardPending()).toBe(true);
    trySign(two, 'pay 1');
    // Whatever became of "pay 1", the guard must still hold the next guarded request for approvers.
    expect(two.durable.guardPending()).toBe(true);
    expect(trySign(two, 'x').kind).toBe('pending');
  });

  it('fleet: restoring a low record and then handing in one with an approved restart-guard approval does not clear the guard', () => {
    const one = life({ scope: 'fleet' });
    const low = one.durable.restore(null).record;
    const asked = trySign(one, 'A') as Extract<Outcome, { kind: 'pending' }>;
    expect(asked.rule).toBe('restart-guard');
    one.approvals.approve({ approvalId: asked.approvalId, approver: 'bob', signature: bobApproves(asked) }, 'approve');
    const approvedRec = one.durable.seal()!;
    expect(trySign(one, 'A').kind).toBe('signed');
    expect(trySign(one, 'B').kind).toBe('signed');
    // Restart: the oldest record first (the floor), then the one with the approval, which is newer.
    const two = life({ scope: 'fleet' });
    two.durable.restore(low);
    expect(two.durable.guardPending()).toBe(true);
    two.durable.handIn(approvedRec);
    expect(trySign(two, 'A').kind).toBe('pending');
    expect(two.durable.guardPending()).toBe(true);
  });

  it('fleet, honest: a guard approval one instance opened after the guard was armed, approved through another instance, still clears the guard', () => {
    // The first version of the fix spent every guarded approval an instance took over without
    // holding it: bob's answer reaching B, not A, then found the approval "used", and no approval
    // routed through another instance could ever clear the guard.
    const clock = { t: T0 };
    const now = () => clock.t;
    const a = life({ scope: 'fleet', now });
    const first = a.durable.restore(null).record; // unclean: the guard is armed (A learns of it at T0)
    clock.t = T0 + 5;
    const b = life({ scope: 'fleet', now });
    b.durable.restore(first); // B boots too, armed since T0 + 5
    clock.t = T0 + 10;
    const asked = trySign(a, 'A') as Extract<Outcome, { kind: 'pending' }>;
    expect(asked.rule).toBe('restart-guard');
    const opened = a.durable.seal()!; // the fleet record with A's new approval (created at T0 + 10)
    clock.t = T0 + 20;
    b.durable.handIn(opened);
    // bob's answer is routed to B: it counts there.
    expect(b.approvals.approve({ approvalId: asked.approvalId, approver: 'bob', signature: bobApproves(asked) }, 'approve')).toMatchObject({ status: 'approved' });
    const approved = b.durable.seal()!;
    clock.t = T0 + 30;
    a.durable.handIn(approved);
    expect(trySign(a, 'A').kind).toBe('signed');
    expect(a.durable.guardPending()).toBe(false);
  });

  it('an honest guard flow still works after the fix: a guard approval asked for and given in this life clears the guard', () => {
    for (const scope of ['instance', 'fleet'] as const) {
      const one = life({ scope });
      one.durable.restore(null);
      const asked = trySign(one, 'A') as Extract<Outcome, { kind: 'pending' }>;
      one.approvals.approve({ approvalId: asked.approvalId, approver: 'bob', signature: bobApproves(asked) }, 'approve');
      expect(trySign(one, 'A').kind).toBe('signed');
      expect(one.durable.guardPending()).toBe(false);
      expect(trySign(one, 'B').kind).toBe('signed');
      expect(trySign(one, 'C')).toEqual({ kind: 'refused', code: 'POLICY_DENIED' });
    }
  });
});

describe('restore: twice, in the middle of a signature, refused records', () => {
  it('state.restore again in the same life re-seals the current state (no rollback, no reset of the guard)', () => {
    const one = life();
    one.durable.restore(null);
    const old = one.durable.seal()!;
    const asked = trySign(one, 'A') as Extract<Outcome, { kind: 'pending' }>;
    one.approvals.approve({ approvalId: asked.approvalId, approver: 'bob', signature: bobApproves(asked) }, 'approve');
    expect(trySign(one, 'A').kind).toBe('signed');
    expect(trySign(one, 'B').kind).toBe('signed');
    const again = one.durable.restore(old); // the old record is ignored: state is already restored
    expect(again.restored).toBe(false);
    expect(again.record.sequence).toBeGreaterThan(old.sequence);
    expect(trySign(one, 'C')).toEqual({ kind: 'refused', code: 'POLICY_DENIED' });
    expect(one.durable.restore(null).restored).toBe(false);
    expect(trySign(one, 'C')).toEqual({ kind: 'refused', code: 'POLICY_DENIED' });
  });

  it('state.restore while a signature holds its reservation: the reservation is still counted once committed', () => {
    const one = life({ newKeyring: true });
    one.durable.restore(null);
    const t1 = one.approvals.authorize(req('x')).ticket;
    const t2 = one.approvals.authorize(req('y')).ticket;
    expect(code(() => one.approvals.authorize(req('z')))).toBe('POLICY_DENIED'); // both slots reserved
    one.durable.restore(null); // mid-signature
    one.gate.commit(t1);
    one.gate.commit(t2);
    const sealed = one.durable.seal()!;
    expect(code(() => one.approvals.authorize(req('z')))).toBe('POLICY_DENIED');
    const two = life();
    two.durable.restore(sealed);
    // Counted in the record too (the guard is armed in the new life; the window decides first).
    expect(two.gate.evaluate(msg('z'), 'host').outcome).not.toBe('signed');
  });

  it('a refused record (tampered, another keyring\'s) stops the enclave; restoring again with none does not unstick it', () => {
    const one = life();
    const rec = one.durable.restore(null).record;
    const flipped = { ...rec, ciphertext: (rec.ciphertext[0] === 'A' ? 'B' : 'A') + rec.ciphertext.slice(1) };
    const two = life();
    expect(code(() => two.durable.restore(flipped))).toBe('SEALED_STATE_TAMPERED');
    two.durable.restore(null);
    expect(code(() => two.durable.check())).toBe('SEALED_STATE_TAMPERED');
    const other = new SealedStateStore(new Uint8Array(randomBytes(32)), 'kr-2');
    const three = life();
    expect(code(() => three.durable.restore(other.sealJson({})))).toBe('SEALED_STATE_WRONG_KEYRING');
    three.durable.restore(null);
    expect(code(() => three.durable.check())).toBe('SEALED_STATE_WRONG_KEYRING');
    // Relabelled as this keyring: fails authentication.
    const four = life();
    expect(code(() => four.durable.restore({ ...other.sealJson({}), keyringId: 'kr-1' }))).toBe('SEALED_STATE_TAMPERED');
  });

  it('state.restore with no record after a life that had state is unclean: barrier and guard', () => {
    const one = life();
    one.durable.restore(null);
    const two = life();
    const boot = two.durable.restore(null);
    expect(boot.unclean).toBe(true);
    expect(boot.restartBarrier).toBe(T0 + 300);
    expect(two.durable.guardPending()).toBe(true);
  });

  it('sequences: a relabelled sequence fails authentication; past 2^53 − 1 nothing is sealed or accepted', () => {
    const store = new SealedStateStore(KEYRING, 'kr-1');
    const r = store.sealJson({ a: 1 });
    for (const sequence of [r.sequence + 1, 0, -1, 2 ** 53, Number.MAX_SAFE_INTEGER, 1.5]) {
      const c = code(() => new SealedStateStore(KEYRING, 'kr-1').unsealJson({ ...r, sequence }));
      expect(['SEALED_STATE_TAMPERED', 'SEALED_STATE_MALFORMED']).toContain(c);
    }
  });
});

describe('fleet: handing instance B an older record than A used', () => {
  it('hostile host: B restored from an older record than A spent on counts alone (at most its own window), and A keeps its own', () => {
    const a = life({ scope: 'fleet', newKeyring: true });
    const boot = a.durable.restore(null).record;
    expect(trySign(a, 'x').kind).toBe('signed');
    expect(trySign(a, 'y').kind).toBe('signed');
    const b = life({ scope: 'fleet' }); // B boots (unclean: an existing keyring) on the boot record, before A's spending
    b.durable.restore(boot);
    // B's guard holds its first guarded request for approvers: the host cannot spend B's window silently.
    expect(trySign(b, 'x').kind).toBe('pending');
    // Whatever B's record, A does not lose what it signed.
    const bRec = b.durable.seal()!;
    for (let i = 0; i < 5; i++) b.durable.seal();
    a.durable.handIn(b.durable.seal()!);
    expect(trySign(a, 'z').kind).not.toBe('signed');
    void bRec;
  });
});

describe('the restart barrier', () => {
  const backend = generateKeyPairSync('ed25519');
  const principals = { backend: { alg: 'ed25519', publicKey: edPem(backend) } };
  const pol = policy([{ id: 'msgs', effect: 'allow', ops: ['personal_sign'], principals: ['backend'] }], { principals });
  const gateAt = (t: number) => createPolicyGate(pol, { source: 'file', now: () => t });

  function signed(expiresAt: number) {
    const params = [{ message: 'hi' }];
    const requestId = randomUUID();
    const digest = requestDigest(createPolicyGate(pol, { source: 'file' }).hash, 'personal_sign', params);
    const signature = toBase64Url(edSign(null, requestSignatureMessage({ requestDigest: digest, principal: 'backend', requestId, expiresAt }), backend.privateKey));
    return { params, auth: { v: 1, principal: 'backend', requestId, expiresAt, signature } };
  }

  it('a request accepted before a restart is refused after it, whatever was handed back (restart one second later)', () => {
    const g1 = gateAt(T0);
    const v1 = new RequestVerifier({ principals: createApprovalsGate(g1).principals, audience: g1.hash, now: g1.now });
    v1.setRestartBarrier(T0 + 300);
    const r = signed(T0 + 301); // the client signs just past data.expiresAfter, as the library does
    v1.verify('personal_sign', r.params, r.auth);
    const g2 = gateAt(T0 + 1);
    const v2 = new RequestVerifier({ principals: createApprovalsGate(g2).principals, audience: g2.hash, now: g2.now });
    v2.setRestartBarrier(T0 + 1 + 300);
    expect(code(() => v2.verify('personal_sign', r.params, r.auth))).toBe('AUTH_BEFORE_RESTART');
  });
});
