import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { signApproval } from '../../common/auth/client-signer.js';
import { ApprovalBook } from './approvals.js';
import { checkEnclaveState, clearRestartGuard, emptyEnclaveState, forCleanShutdown, onBoot, staleAgainstAudit, type EnclaveState } from './enclave-state.js';
import { SealedStateStore, sealRecord, sealedStateKey, unsealRecord } from './sealed-state.js';
import { testPrincipals, errorCode } from './test-helpers.js';

const KEY = new Uint8Array(randomBytes(32));
const T0 = 1_800_000_000;
const code = errorCode;
function state(windows: unknown = { 'eth-small': { k1: { count: 3, valueWei: '3000' } } }): EnclaveState {
  return { ...emptyEnclaveState('unclean', T0), windows: windows as never, replay: [['backend', 'req-00000001', T0 + 60]], auditHead: { sequence: 7, hash: 'c'.repeat(64) } };
}

describe('sealed enclave state', () => {
  it('round-trips the state; every seal has a higher sequence and a fresh nonce', () => {
    const store = new SealedStateStore(KEY, 'kr-1');
    const a = store.sealJson(state());
    const b = store.sealJson(state());
    expect([a.sequence, b.sequence]).toEqual([1, 2]);
    expect(a.nonce).not.toBe(b.nonce);
    const fresh = new SealedStateStore(KEY, 'kr-1');
    expect(checkEnclaveState(fresh.unsealJson(b).value)).toEqual(state());
    expect(fresh.sequence).toBe(2);
    expect(fresh.sealJson(state()).sequence).toBe(3);
  });

  it('the sealing key is derived (HKDF, labelled), never the keyring key, and differs per keyring id', () => {
    expect(Buffer.from(sealedStateKey(KEY, 'kr-1')).equals(Buffer.from(KEY))).toBe(false);
    expect(Buffer.from(sealedStateKey(KEY, 'kr-1')).equals(sealedStateKey(KEY, 'kr-2'))).toBe(false);
    expect(code(() => sealedStateKey(new Uint8Array(16), 'kr-1'))).toBe('SEALED_STATE_KEY');
  });

  it('hostile host: any flipped bit in nonce or ciphertext → SEALED_STATE_TAMPERED', () => {
    const rec = new SealedStateStore(KEY, 'kr-1').sealJson(state());
    fc.assert(
      fc.property(fc.constantFrom<'nonce' | 'ciphertext'>('nonce', 'ciphertext'), fc.nat(), fc.integer({ min: 0, max: 7 }), (field, at, bit) => {
        const b = Buffer.from(rec[field], 'base64url');
        b[at % b.length]! ^= 1 << bit;
        expect(code(() => new SealedStateStore(KEY, 'kr-1').unseal({ ...rec, [field]: b.toString('base64url') }))).toBe('SEALED_STATE_TAMPERED');
      }),
      { numRuns: 50 },
    );
  });

  it('hostile host: a record relabelled with a higher sequence (to pass the rollback check) → SEALED_STATE_TAMPERED', () => {
    const rec = new SealedStateStore(KEY, 'kr-1').sealJson(state());
    expect(code(() => new SealedStateStore(KEY, 'kr-1').unseal({ ...rec, sequence: rec.sequence + 100 }))).toBe('SEALED_STATE_TAMPERED');
  });

  it('hostile host: another keyring’s record → SEALED_STATE_WRONG_KEYRING; relabelled as ours → SEALED_STATE_TAMPERED', () => {
    const other = new SealedStateStore(KEY, 'kr-2').sealJson(state());
    expect(code(() => new SealedStateStore(KEY, 'kr-1').unseal(other))).toBe('SEALED_STATE_WRONG_KEYRING');
    expect(code(() => new SealedStateStore(KEY, 'kr-1').unseal({ ...other, keyringId: 'kr-1' }))).toBe('SEALED_STATE_TAMPERED');
    const otherKey = new SealedStateStore(new Uint8Array(randomBytes(32)), 'kr-1').sealJson(state());
    expect(code(() => new SealedStateStore(KEY, 'kr-1').unseal(otherKey))).toBe('SEALED_STATE_TAMPERED');
  });

  it('hostile host: an older record than this enclave already saw in its life → SEALED_STATE_ROLLBACK', () => {
    const store = new SealedStateStore(KEY, 'kr-1');
    const old = store.sealJson(state({ counts: 1 }));
    const newer = store.sealJson(state({ counts: 2 }));
    expect(store.unsealJson(newer).sequence).toBe(2);
    expect(code(() => store.unseal(old))).toBe('SEALED_STATE_ROLLBACK');
    expect(store.sequence).toBe(2);
  });

  it('honest limit: across a restart an old genuine record IS accepted (the enclave has no memory) — documented, detected by the audit chain', () => {
    const store = new SealedStateStore(KEY, 'kr-1');
    const old = store.sealJson(state({ counts: 1 }));
    store.sealJson(state({ counts: 2 }));
    const restarted = new SealedStateStore(KEY, 'kr-1');
    const restored = checkEnclaveState(restarted.unsealJson(old).value);
    expect(restored.windows).toEqual({ counts: 1 });
    // The audit chain (issue 10) has records past the restored head: the rollback is visible.
    expect(staleAgainstAudit(restored, { sequence: 9 })).toBe(true);
    expect(staleAgainstAudit(restored, { sequence: 7 })).toBe(false);
  });

  it('malformed records → SEALED_STATE_MALFORMED, never an empty state', () => {
    const rec = new SealedStateStore(KEY, 'kr-1').sealJson(state());
    for (const bad of [null, [], 'x', { ...rec, v: 2 }, { ...rec, extra: 1 }, { ...rec, sequence: 0 }, { ...rec, sequence: 1.5 }, { ...rec, nonce: 'AAAA' }, { ...rec, ciphertext: 'AA' }, { ...rec, nonce: rec.nonce + '=' }]) {
      expect(code(() => new SealedStateStore(KEY, 'kr-1').unseal(bad)), JSON.stringify(bad)).toBe('SEALED_STATE_MALFORMED');
    }
    // Authenticated but not a valid state (a bug upstream) still fails closed.
    const k = sealedStateKey(KEY, 'kr-1');
    const junk = sealRecord(k, 'kr-1', 1, new TextEncoder().encode('{"v":1}'));
    expect(code(() => checkEnclaveState(JSON.parse(new TextDecoder().decode(unsealRecord(k, 'kr-1', junk).plaintext))))).toBe('SEALED_STATE_MALFORMED');
  });

  it('approval state survives seal → restart → unseal: the second approval completes the quorum', () => {
    const { keys, registry } = testPrincipals();
    const book = new ApprovalBook({ principals: registry, now: () => T0 });
    const digest = 'd'.repeat(64);
    const a = book.authorize({ requestDigest: digest, rule: 'treasury', threshold: 2, approvers: ['alice', 'bob'], requester: 'backend', ttlSeconds: 600, request: { method: 'eth_signTransaction', params: [{ to: '0x01' }] } });
    book.approve(a.approvalId, 'alice', signApproval({ key: keys.alice, approver: 'alice', approvalId: a.approvalId, requestDigest: digest, requester: 'backend', rule: 'treasury', decision: 'approve' }).signature);
    const rec = new SealedStateStore(KEY, 'kr-1').sealJson({ ...state(), approvals: book.export() });
    const restored = checkEnclaveState(new SealedStateStore(KEY, 'kr-1').unsealJson(JSON.parse(JSON.stringify(rec))).value);
    const book2 = new ApprovalBook({ principals: registry, now: () => T0 + 60 }, restored.approvals);
    book2.approve(a.approvalId, 'bob', signApproval({ key: keys.bob, approver: 'bob', approvalId: a.approvalId, requestDigest: digest, requester: 'backend', rule: 'treasury', decision: 'approve' }).signature);
    expect(book2.status(a.approvalId)).toBe('approved');
  });
});

describe('boot: clean and unclean restarts, the restart guard', () => {
  const boot = (restored: EnclaveState | undefined, guard: 'off' | 'unclean' | 'always', newKeyring = false) => onBoot(restored, { newKeyring, guard, now: T0 + 1000, maxExpirySeconds: 300 });

  it('a clean shutdown record restores without the guard or a barrier', () => {
    const b = boot(forCleanShutdown(state(), T0), 'unclean');
    expect(b).toMatchObject({ unclean: false, restartBarrier: undefined });
    expect(b.state.lifecycle).toMatchObject({ shutdown: 'running', restartGuardPending: false });
  });

  it('a running record (crash, or the host replaying a mid-life record) is unclean: guard pending, barrier set', () => {
    const b = boot(state(), 'unclean');
    expect(b).toMatchObject({ unclean: true, restartBarrier: T0 + 1300 });
    expect(b.state.lifecycle.restartGuardPending).toBe(true);
    expect(clearRestartGuard(b.state).lifecycle.restartGuardPending).toBe(false);
  });

  it('hostile host: withholding the state of an existing keyring is unclean (counters would reset)', () => {
    const b = boot(undefined, 'unclean');
    expect(b.unclean).toBe(true);
    expect(b.state.lifecycle.restartGuardPending).toBe(true);
    expect(boot(undefined, 'unclean', true)).toMatchObject({ unclean: false, restartBarrier: undefined });
  });

  it('guard "always" applies after every restart (also a clean one); "off" never', () => {
    expect(boot(forCleanShutdown(state(), T0), 'always').state.lifecycle.restartGuardPending).toBe(true);
    expect(boot(state(), 'off').state.lifecycle.restartGuardPending).toBe(false);
  });

  it('a pending guard is not lost by a restart before it was satisfied', () => {
    const s = forCleanShutdown({ ...state(), lifecycle: { ...state().lifecycle, restartGuardPending: true } }, T0);
    expect(boot(s, 'unclean').state.lifecycle.restartGuardPending).toBe(true);
  });
});
