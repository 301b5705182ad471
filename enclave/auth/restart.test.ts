/**
 * The host's best move against durable state, played end to end with the
 * real modules: keep an old sealed record, restart the enclave, hand the old
 * record back, then replay a signed request the enclave accepted after that
 * record was sealed. The rollback itself cannot be refused (documented), but
 * the replay is — by the restart barrier — and the restart is flagged unclean.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signRequest } from '../../common/auth/client-signer.js';
import { checkEnclaveState, emptyEnclaveState, forCleanShutdown, onBoot } from './enclave-state.js';
import { ReplayCache } from './replay-cache.js';
import { SealedStateStore } from './sealed-state.js';
import { AUDIENCE, testPrincipals, errorCode } from './test-helpers.js';
import { DEFAULT_MAX_EXPIRY_SECONDS, RequestVerifier } from './verify-request.js';

const { keys, registry } = testPrincipals();
const KEY = new Uint8Array(randomBytes(32));
const T0 = 1_800_000_000;
const PARAMS = ['0x68656c6c6f', '0x' + '11'.repeat(20)];

const code = errorCode;

describe('restart: a host rolling sealed state back cannot replay signed requests', () => {
  it('hostile host: old sealed record + restart + replay of a later request → AUTH_BEFORE_RESTART; restart flagged unclean', () => {
    let now = T0;
    const store = new SealedStateStore(KEY, 'kr-1');
    const cache = new ReplayCache();
    const v1 = new RequestVerifier({ principals: registry, audience: AUDIENCE, now: () => now, replayCache: cache });
    const oldRecord = store.sealJson(emptyEnclaveState('unclean', now)); // the host keeps this one
    const auth = signRequest({ key: keys.backend, principal: 'backend', audience: AUDIENCE, method: 'personal_sign', params: PARAMS, now, ttlSeconds: 300 }).auth;
    v1.verify('personal_sign', PARAMS, auth);
    store.sealJson({ ...emptyEnclaveState('unclean', now), replay: cache.export(now) }); // the newest, which the host drops

    // Enclave restarts 10 s later; the host hands back the old record.
    now = T0 + 10;
    const booted = onBoot(checkEnclaveState(new SealedStateStore(KEY, 'kr-1').unsealJson(oldRecord).value), {
      newKeyring: false,
      guard: 'unclean',
      now,
      maxExpirySeconds: DEFAULT_MAX_EXPIRY_SECONDS,
    });
    expect(booted.unclean).toBe(true);
    expect(booted.state.lifecycle.restartGuardPending).toBe(true);
    const v2 = new RequestVerifier({ principals: registry, audience: AUDIENCE, now: () => now, replayCache: ReplayCache.restore(booted.state.replay, now), ...(booted.restartBarrier !== undefined ? { restartBarrier: booted.restartBarrier } : {}) });
    expect(code(() => v2.verify('personal_sign', PARAMS, auth))).toBe('AUTH_BEFORE_RESTART');
    // Without the barrier, the rolled-back replay cache would have let it through: this is what the barrier is for.
    const noBarrier = new RequestVerifier({ principals: registry, audience: AUDIENCE, now: () => now, replayCache: ReplayCache.restore(booted.state.replay, now) });
    expect(noBarrier.verify('personal_sign', PARAMS, auth).principal).toBe('backend');
    // A client that signs afresh after the restart is served.
    now = T0 + 11;
    const fresh = signRequest({ key: keys.backend, principal: 'backend', audience: AUDIENCE, method: 'personal_sign', params: PARAMS, now, ttlSeconds: 300 }).auth;
    expect(v2.verify('personal_sign', PARAMS, fresh).principal).toBe('backend');
  });

  it('after a clean shutdown the restored replay cache alone refuses the replay (no barrier needed)', () => {
    let now = T0;
    const store = new SealedStateStore(KEY, 'kr-1');
    const cache = new ReplayCache();
    const v1 = new RequestVerifier({ principals: registry, audience: AUDIENCE, now: () => now, replayCache: cache });
    const auth = signRequest({ key: keys.backend, principal: 'backend', audience: AUDIENCE, method: 'personal_sign', params: PARAMS, now }).auth;
    v1.verify('personal_sign', PARAMS, auth);
    const last = store.sealJson(forCleanShutdown({ ...emptyEnclaveState('unclean', now), replay: cache.export(now) }, now));
    now = T0 + 5;
    const booted = onBoot(checkEnclaveState(new SealedStateStore(KEY, 'kr-1').unsealJson(last).value), { newKeyring: false, guard: 'unclean', now, maxExpirySeconds: 300 });
    expect(booted).toMatchObject({ unclean: false, restartBarrier: undefined });
    const v2 = new RequestVerifier({ principals: registry, audience: AUDIENCE, now: () => now, replayCache: ReplayCache.restore(booted.state.replay, now) });
    expect(code(() => v2.verify('personal_sign', PARAMS, auth))).toBe('AUTH_REPLAYED');
  });
});
