/**
 * Hostile host vs signed principals (issue 9 §4). The host owns the bridge: these tests drive a
 * real enclave (bridge, simulated NSM, signing workers, attested KMS through the parent's byte
 * pipe to the KMS emulator) directly, as a host process would, with whatever params it likes.
 *
 * What they show: a request a principal signed is read by the enclave from the params the
 * principal signed — the host cannot swap the key, add its own translation, move the request to
 * another method or alter it; and an enclave holding a keyring decides nothing until the host has
 * handed back the keyring's sealed state, so skipping it does not reset limits; after a restart,
 * requests that may have been signed before it are refused.
 */
import { verifyMessage, type Hex } from 'viem';
import { describe, expect, it, vi } from 'vitest';
import { parseRecord } from '../../common/audit/record.js';
import { signRequest } from '../../common/auth/client-signer.js';
import type { BridgePeer } from '../../common/bridge/index.js';
import { cborToJson, jsonToCbor } from '../../common/cbor-json.js';
import { testPrincipals } from '../../enclave/auth/test-helpers.js';
import { compilePolicy } from '../../enclave/policy/document.js';
import { policyHash } from '../../enclave/policy/policy-hash.js';
import { realEnclaves } from '../real-enclaves.js';

vi.setConfig({ testTimeout: 60_000 });

const CREDS = { accessKeyId: 'AKIAPRINCIPALSHOST01', secretAccessKey: 'principals-hostile-secret-not-real', principalArn: 'arn:aws:iam::111122223333:role/parent' };
const IMAGE = 'enclave-signer-hostile-principals';
const P = testPrincipals();
const POLICY = compilePolicy({
  policyVersion: 1,
  name: 'hostile-principals',
  principals: P.document,
  rules: [
    { id: 'create', effect: 'allow', ops: ['signer_createKey'] },
    { id: 'backend-messages', effect: 'allow', ops: ['personal_sign', 'signer_signDigest'], principals: ['backend'] },
  ],
});
const AUDIENCE = policyHash(POLICY);

const enclaves = realEnclaves({ image: IMAGE, credentials: CREDS, policy: POLICY, description: 'hostile principals' });

async function call(peer: BridgePeer, method: string, params: unknown): Promise<Record<string, unknown>> {
  return cborToJson(await peer.request(method, jsonToCbor(params))) as Record<string, unknown>;
}
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e as { code: string; message: string; data?: unknown },
  );

/** An enclave life: boots, takes credentials, opens the audit log (as the parent's boot does). */
async function boot(name: string): Promise<BridgePeer> {
  return (await enclaves.boot(name)).peer;
}

type KeyRec = { keyId: string; kind: string; keyringId: string; publicKey: string; address: string; blob: Uint8Array };
const keyOf = (r: Record<string, unknown>): KeyRec => {
  const { audit: _a, sealed: _s, ...k } = r;
  return k as unknown as KeyRec;
};
const signed = (method: string, params: unknown, o: { ttlSeconds?: number } = {}) => ({ method, params, signerAuth: signRequest({ key: P.keys.backend, principal: 'backend', audience: AUDIENCE, method, params, ...o }).auth });

let peer: BridgePeer;
let keyringRecord: Record<string, unknown>;
let sealedRecord: unknown;
let A: KeyRec;
let B: KeyRec;

describe('hostile host vs signed principals', () => {
  it('finding S1: with a keyring unlocked, nothing is decided until the host hands back the sealed state (skipping state.restore does not reset limits)', async () => {
    peer = await boot('first');
    keyringRecord = (await call(peer, 'keyring.create', { kmsKeyId: enclaves.real.cmk })).record as Record<string, unknown>;
    // The host skips state.restore and asks at once: refused, and the refusal is on the chain.
    const early = await refusal(call(peer, 'key.create', { kind: 'secp256k1' }));
    expect(early.code).toBe('SEALED_STATE_NOT_RESTORED');
    expect(parseRecord((early.data as Map<string, unknown>).get('audit') as Uint8Array).body).toMatchObject({ decision: 'denied', principal: 'host', op: 'signer_createKey', keyId: null, rule: 'error:SEALED_STATE_NOT_RESTORED' });
    const restored = await call(peer, 'state.restore', { record: null });
    sealedRecord = restored.record;
    A = keyOf(await call(peer, 'key.create', { kind: 'secp256k1' }));
    B = keyOf(await call(peer, 'key.create', { kind: 'secp256k1' }));
    const s = await call(peer, 'sign', { key: A, ...{ auth: signed('personal_sign', ['0x01', A.address]) } });
    expect(await verifyMessage({ address: A.address as Hex, message: { raw: '0x01' }, signature: (s.result as { signature: Hex }).signature })).toBe(true);
    expect(parseRecord((s.audit as Uint8Array[])[0]!).body).toMatchObject({ decision: 'allowed', principal: 'backend', rule: 'backend-messages' });
  });

  it('finding S2: the host cannot swap the key of a signed request, by address or by key id', async () => {
    const byAddress = await refusal(call(peer, 'sign', { key: B, auth: signed('personal_sign', ['0x02', A.address]) }));
    expect(byAddress.code).toBe('SIGN_KEY_MISMATCH');
    expect(byAddress.message).toMatch(/params\[1\]: the signed request names/);
    const byId = await refusal(call(peer, 'sign', { key: B, auth: signed('signer_signDigest', { keyId: A.keyId, digest: `0x${'22'.repeat(32)}` }) }));
    expect(byId.code).toBe('SIGN_KEY_MISMATCH');
    // Each refusal is on the chain, naming the principal.
    const wire = byId.data as Map<string, unknown>;
    expect(parseRecord(wire.get('audit') as Uint8Array).body).toMatchObject({ decision: 'denied', principal: 'backend', rule: 'error:SIGN_KEY_MISMATCH' });
  });

  it('a key record the host broke under a signed request is refused and on the chain; the same request then signs once', async () => {
    // Found in review: `sign` read the host's key record before the audit log was asked, so a
    // principal's request refused for it left no record.
    const auth = signed('personal_sign', ['0x0b', A.address]);
    const r = await refusal(call(peer, 'sign', { key: { ...A, blob: 'not bytes' }, auth }));
    expect(r.code).toBe('INVALID_PARAMS');
    expect(r.message).toMatch(/^key\.blob/);
    expect(parseRecord((r.data as Map<string, unknown>).get('audit') as Uint8Array).body).toMatchObject({ decision: 'denied', principal: 'host', op: 'sign', keyId: null, rule: 'error:INVALID_PARAMS' });
    // Refused before the request was verified: its id was not spent.
    expect((await call(peer, 'sign', { key: A, auth })).result).toMatchObject({ signature: expect.stringMatching(/^0x/) });
    // The host's own malformed call asked nothing of the policy: refused, no record.
    const own = await refusal(call(peer, 'sign', { key: { ...A, blob: 'not bytes' }, op: 'personal_sign', request: { message: '0x0b' } }));
    expect(own.code).toBe('INVALID_PARAMS');
    expect((own.data as Map<string, unknown> | undefined)?.get('audit')).toBeUndefined();
  });

  it('a signed key.create the host altered is refused and on the chain, like a refused signature', async () => {
    // Found in review: key.create authenticated before the audit log was asked, so this refusal
    // left no record (and a KEYRING_LOCKED after the policy allowed one left none either).
    const auth = { ...signed('signer_createKey', { kind: 'secp256k1' }), params: { kind: 'bip32-seed' } };
    const r = await refusal(call(peer, 'key.create', { auth }));
    expect(r.code).toBe('AUTH_BAD_SIGNATURE');
    const wire = r.data as Map<string, unknown>;
    expect(parseRecord(wire.get('audit') as Uint8Array).body).toMatchObject({ decision: 'denied', op: 'signer_createKey', rule: 'error:AUTH_BAD_SIGNATURE' });
  });

  it('finding S3: the host cannot add its own translation, move the request to another method, or alter it', async () => {
    const auth = signed('personal_sign', ['0x03', A.address]);
    // Its own op/request next to the signed one: the enclave takes only one form.
    expect((await refusal(call(peer, 'sign', { key: A, auth, op: 'personal_sign', request: { message: 'other' } }))).code).toBe('INVALID_PARAMS');
    // The same signature presented for another method: the digest covers the method.
    expect((await refusal(call(peer, 'sign', { key: A, auth: { ...auth, method: 'eth_sign', params: [A.address, '0x03'] } }))).code).toBe('AUTH_BAD_SIGNATURE');
    // A signed key creation presented to `sign`, and a signed signature presented to key.create.
    expect((await refusal(call(peer, 'sign', { key: A, auth: signed('signer_createKey', {}) }))).code).toBe('INVALID_PARAMS');
    expect((await refusal(call(peer, 'key.create', { auth }))).code).toBe('INVALID_PARAMS');
    // Altered params.
    expect((await refusal(call(peer, 'sign', { key: A, auth: { ...auth, params: ['0x04', A.address] } }))).code).toBe('AUTH_BAD_SIGNATURE');
    // The untouched request still signs, once.
    expect((await call(peer, 'sign', { key: A, auth })).result).toMatchObject({ signature: expect.stringMatching(/^0x/) });
    expect((await refusal(call(peer, 'sign', { key: A, auth }))).code).toBe('AUTH_REPLAYED');
  });

  it('finding S4: after a restart the host cannot replay a request signed before it, whatever sealed state it hands back', async () => {
    const early = signed('personal_sign', ['0x05', A.address], { ttlSeconds: 120 });
    const next = await boot('second');
    await call(next, 'keyring.unlock', { record: keyringRecord });
    const restored = await call(next, 'state.restore', { record: sealedRecord as Record<string, unknown> });
    expect(restored.unclean).toBe(true);
    const e = await refusal(call(next, 'sign', { key: A, auth: early }));
    expect(e.code).toBe('AUTH_BEFORE_RESTART');
    const after = (e.data as Map<string, unknown>).get('expiresAfter') as number;
    expect(after).toBeGreaterThan(early.signerAuth.expiresAt - 1);
    // Signed to expire past the barrier, it is accepted at once.
    const fresh = { method: 'personal_sign', params: ['0x05', A.address], signerAuth: signRequest({ key: P.keys.backend, principal: 'backend', audience: AUDIENCE, method: 'personal_sign', params: ['0x05', A.address], expiresAt: after + 1 }).auth };
    expect((await call(next, 'sign', { key: A, auth: fresh })).result).toMatchObject({ signature: expect.stringMatching(/^0x/) });
  });

  it('a host that asks before handing back the sealed state gets nothing, and every such request is on the chain', async () => {
    // Found in review: `sign` refused SEALED_STATE_NOT_RESTORED before the audit log was asked,
    // so the chain did not show a host signing around the restore; and an approval before the
    // restore was answered from an empty book (APPROVAL_UNKNOWN for an approval that exists).
    const third = await boot('third');
    await call(third, 'keyring.unlock', { record: keyringRecord });
    const bodyOf = (e: { data?: unknown }) => parseRecord((e.data as Map<string, unknown>).get('audit') as Uint8Array).body;
    const bySigned = await refusal(call(third, 'sign', { key: A, auth: signed('personal_sign', ['0x0c', A.address]) }));
    expect(bySigned.code).toBe('SEALED_STATE_NOT_RESTORED');
    expect(bodyOf(bySigned)).toMatchObject({ decision: 'denied', principal: 'host', op: 'sign', keyId: A.keyId, rule: 'error:SEALED_STATE_NOT_RESTORED' });
    const byHost = await refusal(call(third, 'sign', { key: A, op: 'signer_signDigest', request: { digest: `0x${'0c'.repeat(32)}` } }));
    expect(byHost.code).toBe('SEALED_STATE_NOT_RESTORED');
    expect(bodyOf(byHost)).toMatchObject({ decision: 'denied', principal: 'host', op: 'signer_signDigest', keyId: A.keyId, rule: 'error:SEALED_STATE_NOT_RESTORED' });
    const approval = await refusal(call(third, 'approval.approve', { approvalId: 'a'.repeat(64), approver: 'alice', signature: `0x${'00'.repeat(65)}` }));
    expect(approval.code).toBe('SEALED_STATE_NOT_RESTORED');
    // The records are consecutive on this life's chain: nothing was skipped.
    expect(bodyOf(byHost).seq).toBe((bodyOf(bySigned).seq as number) + 1);
    await call(third, 'state.restore', { record: sealedRecord as Record<string, unknown> });
  });
});
