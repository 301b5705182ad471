/**
 * Review of time and arithmetic of limits inside the enclave (windows, approvals, the clock).
 * Each test names what a requester or host would gain if it failed.
 */
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createApprovalsGate } from './approvals-gate.js';
import { buildIntent } from './build-intent.js';
import { signRequest } from '../../common/auth/client-signer.js';
import { ReplayCache } from '../auth/replay-cache.js';
import { SealedStateStore } from '../auth/sealed-state.js';
import { AUDIENCE, errorCode, p256KeyInTwoForms, testPrincipals } from '../auth/test-helpers.js';
import { RequestVerifier } from '../auth/verify-request.js';
import { emptyEnclaveState } from '../auth/enclave-state.js';
import { createDurableState } from './durable.js';
import { createPolicyGate } from './gate.js';
import { compilePolicy } from './document.js';
import { ALICE_ADDR, KEY_1, maxUint256, policy, PRINCIPALS, tx } from './test-fixtures.js';
import { checkWindowState, emptyWindowState, recordWindow, windowUsage } from './windows.js';

const T0 = 1_800_000_000;
const DAY = 86_400;

describe('window sums and the sealed record', () => {
  // A window that caps only the count leaves each signature's value (and an erc20 rule's amount)
  // unbounded up to 2^256-1. Summed into one entry (same second) or one compacted bucket, 863 of
  // them pass 80 decimal digits — and checkWindowState refused every value longer than 80 digits,
  // so the enclave sealed a record it could not restore: after a restart nothing signed until the
  // host handed back an older record or none (fresh counters), and in fleet scope every other
  // instance refused to take the record over (no decisions fleet-wide until the bucket aged out).
  it('a count-only window full of 2^256-1 values seals a record the next life restores', () => {
    const rules = [{ id: 'payouts', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [ALICE_ADDR], window: { seconds: DAY, maxCount: 2000 } }];
    const P = policy(rules);
    const keyring = new Uint8Array(randomBytes(32));
    const gate = createPolicyGate(P, { source: 'file', now: () => T0 });
    const durable = createDurableState(gate, createApprovalsGate(gate));
    durable.attach(keyring.slice(), 'kr-1', true);
    durable.restore(null);
    const intent = buildIntent('eth_signTransaction', tx({ value: maxUint256 }), { keyId: KEY_1 });
    for (let i = 0; i < 900; i++) gate.commit(gate.authorize(intent, 'host'));
    const record = durable.seal()!;

    const gate2 = createPolicyGate(P, { source: 'file', now: () => T0 + 1 });
    const durable2 = createDurableState(gate2, createApprovalsGate(gate2));
    durable2.attach(keyring.slice(), 'kr-1', false);
    expect(() => durable2.restore(record)).not.toThrow();
    // And it still counts all 900: 1,100 more fit, not 2,000.
    expect(windowUsage(gate2.windows(), 'payouts', KEY_1.toLowerCase(), DAY, T0 + 1).count).toBe(900);
  });

  it('sums above every limit stay above every limit (decisions unchanged) and the state stays valid', () => {
    let s = emptyWindowState();
    for (let i = 0; i < 1000; i++) s = recordWindow(s, 'r', 'k', { t: T0, value: maxUint256.toString(), amount: maxUint256.toString() }, DAY);
    const back = checkWindowState(JSON.parse(JSON.stringify(s)));
    const u = windowUsage(back, 'r', 'k', DAY, T0);
    expect(u.count).toBe(1000);
    expect(u.value > maxUint256).toBe(true);
    expect(u.amount > maxUint256).toBe(true);
  });
});

describe('a sealed record whose window state does not check', () => {
  // The record authenticates (it is the enclave's own), but its windows member is refused by
  // checkWindowState (a PolicyDocumentError, not a SealedStateError): restore threw without
  // marking the state refused, so the host could call state.restore again with no record and get
  // fresh counters — as withholding it would — instead of the enclave stopping for an operator
  // (docs/principals.md: a malformed record refuses signing until it is resolved).
  it('is refused (SEALED_STATE_MALFORMED), and the enclave stays refused for an operator', () => {
    const keyring = new Uint8Array(randomBytes(32));
    const P = policy([{ id: 'msgs', effect: 'allow', ops: ['personal_sign'], window: { seconds: 3600, maxCount: 2 } }]);
    const gate = createPolicyGate(P, { source: 'file', now: () => T0 });
    const durable = createDurableState(gate, createApprovalsGate(gate));
    durable.attach(keyring.slice(), 'kr-1', false);
    const state = { ...emptyEnclaveState('off', T0), windows: { windows: { version: 2, rules: {} }, intents: {} } };
    const record = new SealedStateStore(keyring.slice(), 'kr-1').sealJson(state);
    let first: unknown;
    try {
      durable.restore(record);
    } catch (e) {
      first = e;
    }
    expect((first as { code?: string }).code).toBe('SEALED_STATE_MALFORMED');
    expect(() => durable.check()).toThrow(/window/);
  });
});

describe('the enclave clock never runs backwards within a life', () => {
  // Nitro's clock comes from the hypervisor, but a dev or VM clock can be stepped back. The
  // replay cache forgets an entry only once its expiry passed (when full); a clock that was ahead
  // then stepped back made that request unexpired again, and it was accepted a second time.
  it('a signed request pruned while the clock was ahead is not accepted again after the clock steps back', () => {
    const { keys, registry } = testPrincipals();
    const clock = { t: T0 };
    const gate = createPolicyGate(policy([]), { source: 'file', now: () => clock.t });
    // As the service wires it: the verifier reads the gate's clock.
    const verifier = new RequestVerifier({ principals: registry, audience: AUDIENCE, now: gate.now, replayCache: new ReplayCache({ maxEntries: 2 }) });
    const params = [{ to: ALICE_ADDR, value: '0x1' }];
    const sign = (id: string, now: number) => signRequest({ key: keys.backend, principal: 'backend', audience: AUDIENCE, method: 'eth_signTransaction', params, now, requestId: id, ttlSeconds: 300 }).auth;
    const first = sign('request-0001', T0);
    verifier.verify('eth_signTransaction', params, first);
    clock.t = T0 + 400; // ahead: the first request's entry expires and is pruned when the cache fills
    verifier.verify('eth_signTransaction', params, sign('request-0002', clock.t));
    verifier.verify('eth_signTransaction', params, sign('request-0003', clock.t));
    clock.t = T0 + 10; // stepped back
    expect(errorCode(() => verifier.verify('eth_signTransaction', params, first))).toBe('AUTH_EXPIRED');
  });

  it('the gate clock holds at its high-water mark; an unusable clock is passed on for the verifier to refuse', () => {
    const clock = { t: T0 };
    const gate = createPolicyGate(policy([]), { source: 'file', now: () => clock.t });
    expect(gate.now()).toBe(T0);
    clock.t = T0 - 100;
    expect(gate.now()).toBe(T0);
    clock.t = T0 + 5;
    expect(gate.now()).toBe(T0 + 5);
    clock.t = Number.NaN;
    expect(gate.now()).toBeNaN();
    clock.t = T0 + 1;
    expect(gate.now()).toBe(T0 + 5);
  });
});

describe('approvers are counted by name, so a key names one principal', () => {
  // The book and the evaluator count names: a policy that declared one public key under two names
  // let its holder approve twice towards a threshold, or — as "backend" and "ops" — approve its own
  // request. The host cannot do this (the policy is measured); the validator refuses it.
  it('a policy that declares one key under two principal names is refused', () => {
    const shared = PRINCIPALS.alice.publicKey;
    expect(() => compilePolicy({
      policyVersion: 1, name: 'dup-key',
      principals: { ...PRINCIPALS, 'alice-laptop': { alg: 'ecdsa-p256', publicKey: shared } },
      rules: [{ id: 'treasury', effect: 'allow', ops: ['personal_sign'], approvals: { threshold: 2, from: ['alice', 'alice-laptop', 'bob'] } }],
    })).toThrow(/principals\.alice-laptop\.publicKey.*the same key as principal "alice"/);
  });

  it('also when the P-256 key is written once uncompressed and once compressed (two SPKI forms of one key)', () => {
    const { uncompressed, compressed } = p256KeyInTwoForms();
    const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => compilePolicy({
      policyVersion: 1, name: 'dup-key-forms',
      principals: { alice: { alg: 'ecdsa-p256', publicKey: pem(uncompressed) }, 'alice-laptop': { alg: 'ecdsa-p256', publicKey: pem(compressed) } },
      rules: [{ id: 'treasury', effect: 'allow', ops: ['personal_sign'], approvals: { threshold: 2, from: ['alice', 'alice-laptop'] } }],
    })).toThrow(/the same key as principal "alice"/);
  });

  it('an Ed25519 key that is a small-order point (the all-zero placeholder) is refused: anyone could sign for it', () => {
    const zero = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.alloc(32).toString('base64url') }, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
    expect(() => compilePolicy({
      policyVersion: 1, name: 'placeholder-key',
      principals: { mallory: { alg: 'ed25519', publicKey: zero } },
      rules: [{ id: 'r', effect: 'allow', ops: ['personal_sign'], principals: ['mallory'] }],
    })).toThrow(/principals\.mallory\.publicKey.*small-order/);
  });
});
