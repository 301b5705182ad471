/**
 * Fleet scope, enclave side (durable.ts handIn, fleet-lineage.ts): two enclaves of one keyring
 * share one sealed record. Each takes over what the other stored; a hostile host that hands an
 * enclave an older record, a forked one or an altered one changes nothing it decides on.
 */
import { sign as edSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { approvalMessage, toBase64Url } from '../../common/auth/request.js';
import { createApprovalsGate } from './approvals-gate.js';
import { createDurableState, type DurableState } from './durable.js';
import { decideHandIn } from './fleet-lineage.js';
import { createPolicyGate, type PolicyGate } from './gate.js';
import type { Intent } from './intent.js';
import { KEY_1, policy } from './test-fixtures.js';
import { errorCode } from '../auth/test-helpers.js';

const KEYRING = new Uint8Array(randomBytes(32));
const T0 = 1_800_000_000;
const RULES = [{ id: 'msgs', effect: 'allow', ops: ['personal_sign'], window: { seconds: 3600, maxCount: 2 } }];
const intent = { op: 'personal_sign', keyId: KEY_1, message: { length: 2, hex: '0x6869', text: 'hi' } } as unknown as Intent;

const GUARD = { when: 'unclean', rules: ['msgs'], approvals: { threshold: 1, from: ['alice', 'bob'] } };

function enclave(scope: 'fleet' | 'instance' = 'fleet', o: { guard?: boolean; newKeyring?: boolean } = {}): { gate: PolicyGate; durable: DurableState } {
  const gate = createPolicyGate(policy(RULES, { stateScope: scope, ...(o.guard ? { restartGuard: GUARD } : {}) }), { source: 'file', now: () => T0 });
  const durable = createDurableState(gate, createApprovalsGate(gate), { scope, ...(o.guard ? { restartGuard: 'unclean' as const } : {}) });
  durable.attach(KEYRING.slice(), 'kr-1', o.newKeyring === true);
  return { gate, durable };
}

/** Signs one message as the service does: reserve, count, seal. */
function signOne(e: { gate: PolicyGate; durable: DurableState }) {
  const t = e.gate.authorize(intent, 'host');
  e.gate.commit(t);
  return e.durable.seal()!;
}

const code = errorCode;

describe('fleet scope: one window for two enclaves', () => {
  it('each enclave takes over the record the other stored, so the window is shared', () => {
    const one = enclave();
    const two = enclave();
    const boot = one.durable.restore(null).record;
    two.durable.restore(boot);
    expect(one.durable.lineage?.base).toBeNull();
    expect(two.durable.lineage?.base).toEqual({ sequence: boot.sequence, nonce: boot.nonce });

    const r1 = signOne(one);
    two.durable.handIn(r1);
    expect(two.durable.lineage?.base).toEqual({ sequence: r1.sequence, nonce: r1.nonce });
    const r2 = signOne(two);
    one.durable.handIn(r2);
    // Two signed in the fleet: the third is refused on either enclave.
    expect(code(() => one.gate.authorize(intent, 'host'))).toBe('POLICY_DENIED');
    expect(code(() => two.gate.authorize(intent, 'host'))).toBe('POLICY_DENIED');
  });

  it('without the hand-in each enclave counts alone (what the parent\'s compare-and-swap then refuses to store)', () => {
    const one = enclave();
    const two = enclave();
    two.durable.restore(one.durable.restore(null).record);
    signOne(one);
    signOne(one);
    expect(code(() => two.gate.authorize(intent, 'host'))).toBeUndefined();
  });

  it('hostile host: an older record after a newer one is refused (SEALED_STATE_STALE) and changes nothing', () => {
    const one = enclave();
    const two = enclave();
    two.durable.restore(one.durable.restore(null).record);
    const r1 = signOne(one);
    const r2 = signOne(one);
    two.durable.handIn(r2);
    expect(code(() => two.durable.handIn(r1))).toBe('SEALED_STATE_STALE');
    expect(code(() => two.gate.authorize(intent, 'host'))).toBe('POLICY_DENIED');
  });

  it('hostile host: a second record for a sequence already handed in (a fork) is refused', () => {
    const one = enclave();
    const two = enclave();
    const three = enclave();
    const boot = one.durable.restore(null).record;
    three.durable.restore(boot);
    const a = signOne(one); // both continue from the boot record: two records for one sequence
    const b = two.durable.restore(boot).record;
    expect(a.sequence).toBe(b.sequence);
    three.durable.handIn(a);
    expect(code(() => three.durable.handIn(b))).toBe('SEALED_STATE_STALE');
  });

  it('hostile host: an altered or foreign record is refused and nothing is taken over', () => {
    const one = enclave();
    const two = enclave();
    two.durable.restore(one.durable.restore(null).record);
    const r1 = signOne(one);
    const ct = r1.ciphertext;
    const flipped = { ...r1, ciphertext: (ct[0] === 'A' ? 'B' : 'A') + ct.slice(1) };
    const epoch = two.durable.epoch;
    expect(code(() => two.durable.handIn(flipped))).toBe('SEALED_STATE_TAMPERED');
    expect(code(() => two.durable.handIn({ ...r1, sequence: r1.sequence + 5 }))).toBe('SEALED_STATE_TAMPERED');
    expect(code(() => two.durable.handIn({ nope: 1 }))).toBe('SEALED_STATE_MALFORMED');
    expect(two.durable.epoch).toBe(epoch);
    // Another keyring's record: refused as such.
    const other = createDurableState(two.gate, createApprovalsGate(two.gate), { scope: 'fleet' });
    other.attach(new Uint8Array(randomBytes(32)), 'kr-2', true);
    other.restore(null);
    for (let i = 0; i < 5; i++) other.seal();
    expect(code(() => two.durable.handIn(other.seal()))).toBe('SEALED_STATE_WRONG_KEYRING');
  });

  it('a take-over bumps the epoch (reservations made before it are not counted by the service); the same record does not', () => {
    const one = enclave();
    const two = enclave();
    two.durable.restore(one.durable.restore(null).record);
    const r1 = signOne(one);
    const e0 = two.durable.epoch;
    two.durable.handIn(r1);
    expect(two.durable.epoch).toBe(e0 + 1);
    two.durable.handIn(r1);
    expect(two.durable.epoch).toBe(e0 + 1);
    // Its own newest seal handed back: nothing to take over.
    const own = signOne(two);
    two.durable.handIn(own);
    expect(two.durable.epoch).toBe(e0 + 1);
  });

  it('hostile host: a record from an enclave it started on the side (fresh counters, sequence pushed past ours) arms the restart guard here', () => {
    const one = enclave('fleet', { guard: true, newKeyring: true });
    one.durable.restore(null);
    signOne(one);
    signOne(one);
    expect(one.durable.guardPending()).toBe(false);
    expect(code(() => one.gate.authorize(intent, 'host'))).toBe('POLICY_DENIED');
    // The side enclave boots without the fleet's record (unclean), and seals until its sequence is ahead.
    const side = enclave('fleet', { guard: true });
    side.durable.restore(null);
    for (let i = 0; i < 10; i++) side.durable.seal();
    expect(side.durable.guardPending()).toBe(true);
    one.durable.handIn(side.durable.seal());
    // Its empty window is taken over (the host can do that), but not silently: the guard now holds
    // the first request of the guarded rule for approval, as after an unclean restart.
    expect(one.durable.guardPending()).toBe(true);
  });

  it('its own earlier seal handed back (a parent that forgot what it saw) is not taken over: what was sealed since stays', () => {
    const one = enclave();
    one.durable.restore(null);
    const first = signOne(one);
    signOne(one); // the window (2) is now full in this enclave
    const e0 = one.durable.epoch;
    one.durable.handIn(first);
    expect(one.durable.epoch).toBe(e0);
    expect(code(() => one.gate.authorize(intent, 'host'))).toBe('POLICY_DENIED');
  });

  it('hostile host: another enclave\'s record that never saw our signatures does not empty our window (released, record dropped, older state handed in)', () => {
    // Found in review: a take-over REPLACED the counters. The host let A fill its window, took the
    // signatures, and handed A any later seal of B (state.restore again re-seals B's stale state
    // with a higher sequence): A's window was empty again, round after round (10 signed against 2).
    const a = enclave('fleet', { newKeyring: true });
    const b = enclave();
    b.durable.restore(a.durable.restore(null).record);
    let signed = 0;
    for (let round = 0; round < 5; round++) {
      while (code(() => a.gate.release(a.gate.authorize(intent, 'host'))) === undefined) {
        signOne(a);
        signed++;
      }
      b.durable.restore(null);
      a.durable.handIn(b.durable.restore(null).record);
    }
    expect(signed).toBe(2);
    expect(code(() => a.gate.authorize(intent, 'host'))).toBe('POLICY_DENIED');
  });

  it('hostile host: our own early seal, pushed out of the seals we remember (4,097 state.restore calls), does not empty our window', () => {
    const a = enclave('fleet', { newKeyring: true });
    a.durable.restore(null);
    let signed = 0;
    for (let round = 0; round < 3; round++) {
      const low = a.durable.restore(null).record; // a seal of the window as it is now
      while (code(() => a.gate.release(a.gate.authorize(intent, 'host'))) === undefined) {
        signOne(a);
        signed++;
      }
      for (let i = 0; i < 4097; i++) a.durable.restore(null);
      a.durable.handIn(low);
    }
    expect(signed).toBe(2);
  });

  it('take-overs count exactly: a record that counts our signatures is not counted twice', () => {
    const three = RULES.map((r) => ({ ...r, window: { seconds: 3600, maxCount: 3 } }));
    const mk = () => {
      const gate = createPolicyGate(policy(three, { stateScope: 'fleet' }), { source: 'file', now: () => T0 });
      const durable = createDurableState(gate, createApprovalsGate(gate), { scope: 'fleet' });
      durable.attach(KEYRING.slice(), 'kr-1', false);
      return { gate, durable };
    };
    const one = mk();
    const two = mk();
    two.durable.restore(one.durable.restore(null).record);
    two.durable.handIn(signOne(one)); // one's signature, counted once in two
    one.durable.handIn(signOne(two)); // two's record counts one's signature: one does not add it again
    expect(one.gate.windows().rules.msgs?.[KEY_1.toLowerCase()]?.reduce((n, e) => n + (e.n ?? 1), 0)).toBe(2);
    signOne(one); // the third of three
    expect(code(() => one.gate.authorize(intent, 'host'))).toBe('POLICY_DENIED');
  });

  it('a record that misses one of our signatures (its seal lost the store\'s race) keeps it counted: more, never less', () => {
    const one = enclave();
    const two = enclave();
    two.durable.restore(one.durable.restore(null).record);
    signOne(one); // its record is never stored (honestly withheld, or released and dropped: the enclave cannot tell)
    one.durable.handIn(signOne(two));
    // Both count: the window of two is full on `one`.
    expect(code(() => one.gate.authorize(intent, 'host'))).toBe('POLICY_DENIED');
  });

  it('per instance (the default), a request carrying state is refused: SEALED_STATE_SCOPE', () => {
    const one = enclave('instance');
    const rec = one.durable.restore(null).record;
    expect(one.durable.lineage).toBeUndefined();
    expect(code(() => one.durable.handIn(rec))).toBe('SEALED_STATE_SCOPE');
  });
});

describe('sealSoon: one seal per event-loop turn', () => {
  it('every change committed in the turn is in the one record the callers share; the next turn seals anew', async () => {
    for (const scope of ['instance', 'fleet'] as const) {
      const one = enclave(scope);
      const boot = one.durable.restore(null).record;
      const t1 = one.gate.authorize(intent, 'host');
      one.gate.commit(t1);
      const a = one.durable.sealSoon();
      const t2 = one.gate.authorize(intent, 'host');
      one.gate.commit(t2);
      const b = one.durable.sealSoon();
      const [ra, rb] = await Promise.all([a, b]);
      expect(ra).toBe(rb);
      expect(ra!.sequence).toBe(boot.sequence + 1);
      // The shared record holds both signatures: an enclave restored from it has a full window (2).
      const two = enclave(scope);
      two.durable.restore(ra);
      expect(code(() => two.gate.authorize(intent, 'host'))).toBe('POLICY_DENIED');
      expect((await one.durable.sealSoon())!.sequence).toBe(boot.sequence + 2);
    }
  });
});

describe('decideHandIn', () => {
  const r = (sequence: number, nonce: string) => ({ sequence, nonce });
  it('same, stale, fork and adopt', () => {
    // The enclave's own seals: 6/'w' and its newest, 7/'x'.
    const own = (x: { sequence: number; nonce: string }) => (x.sequence === 6 && x.nonce === 'w') || (x.sequence === 7 && x.nonce === 'x');
    expect(decideHandIn(r(5, 'a'), r(5, 'a'), own).kind).toBe('same');
    expect(decideHandIn(r(7, 'x'), r(5, 'a'), own).kind).toBe('same');
    expect(decideHandIn(r(6, 'w'), r(5, 'a'), own).kind).toBe('same');
    expect(decideHandIn(r(4, 'b'), r(5, 'a'), own).kind).toBe('stale');
    expect(decideHandIn(r(5, 'b'), r(5, 'a'), own).kind).toBe('stale');
    expect(decideHandIn(r(6, 'c'), r(5, 'a'), own).kind).toBe('adopt');
    expect(decideHandIn(r(1, 'c'), undefined, () => false).kind).toBe('adopt');
  });
});

describe('fleet scope: a take-over never makes a used approval usable again', () => {
  it('hostile host: an older seal of ours with the approval approved but unused, handed in after it was used, signs nothing', () => {
    const bob = generateKeyPairSync('ed25519');
    const principals = { bob: { alg: 'ed25519', publicKey: bob.publicKey.export({ type: 'spki', format: 'pem' }) as string } };
    const rules = [{ id: 'pay', effect: 'allow', ops: ['personal_sign'], approvals: { threshold: 1, from: ['bob'] } }];
    const gate = createPolicyGate(policy(rules, { stateScope: 'fleet', principals }), { source: 'file', now: () => T0 });
    const approvals = createApprovalsGate(gate);
    const durable = createDurableState(gate, approvals, { scope: 'fleet' });
    approvals.restartGuard = { pending: () => durable.guardPending(), clear: () => durable.clearGuard() };
    durable.attach(KEYRING.slice(), 'kr-1', true);
    durable.restore(null);
    const req = { op: 'personal_sign' as const, keyId: KEY_1, request: { message: 'hi' }, intent, principal: 'host' };
    let id = '';
    let digest = '';
    try {
      approvals.authorize(req);
    } catch (e) {
      ({ approvalId: id, requestDigest: digest } = (e as { wireData: { approvalId: string; requestDigest: string } }).wireData);
    }
    const signature = toBase64Url(edSign(null, approvalMessage({ approvalId: id, approver: 'bob', decision: 'approve', requestDigest: digest, requester: 'host', rule: 'pay' }), bob.privateKey));
    approvals.approve({ approvalId: id, approver: 'bob', signature }, 'approve');
    const low = durable.restore(null).record; // state.restore again: a seal with the approval approved, unused
    const { ticket, approval } = approvals.authorize(req);
    gate.commit(ticket);
    approvals.consumed(approval!);
    durable.seal();
    for (let i = 0; i < 4097; i++) durable.restore(null); // `low` leaves the seals this enclave remembers
    durable.handIn(low);
    // Found in review: the take-over replaced the book, and the same approval signed a second time.
    expect(() => approvals.authorize(req)).toThrow(/approval required/);
    expect(approvals.view(id).status).toBe('consumed');
  });

  it('the identical request after a take-over that does not show our use gets the same answer again, nothing signed or used again (a lost race the parent decides again)', () => {
    const bob = generateKeyPairSync('ed25519');
    const principals = { bob: { alg: 'ed25519', publicKey: bob.publicKey.export({ type: 'spki', format: 'pem' }) as string } };
    const mk = (window: boolean) => {
      const rules = [{ id: 'pay', effect: 'allow', ops: ['personal_sign'], approvals: { threshold: 1, from: ['bob'] }, ...(window ? { window: { seconds: 3600, maxCount: 5 } } : {}) }];
      const gate = createPolicyGate(policy(rules, { stateScope: 'fleet', principals }), { source: 'file', now: () => T0 });
      const approvals = createApprovalsGate(gate);
      const durable = createDurableState(gate, approvals, { scope: 'fleet' });
      approvals.restartGuard = { pending: () => durable.guardPending(), clear: () => durable.clearGuard() };
      durable.attach(KEYRING.slice(), 'kr-1', false);
      return { gate, approvals, durable };
    };
    for (const window of [false, true]) {
      const a = mk(window);
      const b = mk(window);
      b.durable.restore(a.durable.restore(null).record);
      const req = { op: 'personal_sign' as const, keyId: KEY_1, request: { message: 'hi' }, intent, principal: 'host' };
      let id = '';
      let digest = '';
      try {
        a.approvals.authorize(req);
      } catch (e) {
        ({ approvalId: id, requestDigest: digest } = (e as { wireData: { approvalId: string; requestDigest: string } }).wireData);
      }
      const signature = toBase64Url(edSign(null, approvalMessage({ approvalId: id, approver: 'bob', decision: 'approve', requestDigest: digest, requester: 'host', rule: 'pay' }), bob.privateKey));
      a.approvals.approve({ approvalId: id, approver: 'bob', signature }, 'approve');
      b.durable.handIn(a.durable.seal()!); // the fleet's record: approved, unused
      const { ticket, approval } = a.approvals.authorize(req);
      a.gate.commit(ticket);
      const answer = { result: { signature: '0x01' }, signer: { keyId: KEY_1 }, rule: 'pay', keyId: KEY_1, principal: 'host' };
      a.approvals.consumed(approval!, answer);
      a.durable.seal(); // lost the store's race: never stored
      a.durable.handIn(b.durable.seal()!); // the record the parent then hands in: the approval unused
      expect(a.approvals.view(id).status).toBe('consumed'); // kept: the host may have released it
      const again = a.approvals.replayable({ op: req.op, keyId: req.keyId, request: req.request, principal: 'host' });
      if (window) expect(again).toBeUndefined(); // decided on counters since added to: approval again
      else expect(again).toBe(answer);
      expect(a.approvals.replayable({ op: req.op, keyId: req.keyId, request: { message: 'other' }, principal: 'host' })).toBeUndefined();
      expect(a.approvals.replayable({ op: req.op, keyId: req.keyId, request: req.request, principal: 'other' })).toBeUndefined();
      // Once a record that shows the use is taken over, the request is answered as any used approval's.
      b.durable.handIn(a.durable.seal()!);
      a.durable.handIn(b.durable.seal()!);
      expect(a.approvals.replayable({ op: req.op, keyId: req.keyId, request: req.request, principal: 'host' })).toBeUndefined();
    }
  });
});
