/**
 * The enclave's request handler without KMS: validation of every request,
 * the policy point (deny, fail closed), the audit gate, attestation with the
 * caller's nonce. Uses the real worker pool and the simulated NSM.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cborToJson, jsonToCbor } from '../common/cbor-json.js';
import { verifyAttestation } from '../attestation/verify.js';
import { createDevCa, type DevCa } from '../dev/ca/index.js';
import { createSimulatedNsm } from './nsm/simulated.js';
import { builtinPolicy, type Policy } from './policy.js';
import { createEnclaveService, type EnclaveService } from './service.js';
import { createWorkerPool } from './worker-pool.js';

const PINNED = 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000001';
let ca: DevCa;
const services: EnclaveService[] = [];

function service(policy: Policy, audit?: () => void): EnclaveService {
  const s = createEnclaveService({
    nsm: createSimulatedNsm({ ca }),
    pool: createWorkerPool(1),
    policy,
    kms: { region: 'us-east-1', dial: () => Promise.reject(new Error('no KMS in this test')), allowedKeyArns: [PINNED] },
    ...(audit ? { audit } : {}),
  });
  services.push(s);
  return s;
}

async function call(s: EnclaveService, method: string, params: unknown) {
  return cborToJson(await s.handler(method, jsonToCbor(params), { signal: new AbortController().signal, id: 1 })) as Record<string, unknown>;
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected a failure');
}

const key = { keyId: 'k1', kind: 'secp256k1', keyringId: 'kr', publicKey: '02' + '11'.repeat(32), blob: new Uint8Array(61) };

beforeAll(() => {
  ca = createDevCa();
});
afterAll(async () => {
  for (const s of services) await s.close();
});

describe('enclave service', () => {
  it('attests with the caller nonce', async () => {
    const s = service(builtinPolicy());
    const nonce = new Uint8Array(32).fill(5);
    const { document } = await call(s, 'attest', { nonce });
    const r = verifyAttestation(document as Uint8Array, { root: ca.trustRoot, expectedNonce: nonce });
    expect(r.checks).toContain('nonce');
  });

  it('refuses unknown methods and malformed params, naming the field', async () => {
    const s = service(builtinPolicy());
    expect((await failure(call(s, 'exportKey', {}))).code).toBe('METHOD_NOT_FOUND');
    expect((await failure(call(s, '__proto__', {}))).code).toBe('METHOD_NOT_FOUND');
    expect((await failure(call(s, 'attest', { nonce: new Uint8Array(4) }))).message).toMatch(/nonce/);
    expect((await failure(call(s, 'attest', { nonce: new Uint8Array(32), extra: 1 }))).message).toMatch(/extra/);
    expect((await failure(call(s, 'key.create', { kind: 'rsa' }))).message).toMatch(/kind/);
    expect((await failure(call(s, 'sign', { op: 'eth_exportKey', key, request: {} }))).message).toMatch(/op/);
    expect((await failure(call(s, 'sign', { op: 'personal_sign', key: { ...key, blob: 'x' }, request: {} }))).message).toMatch(/key\.blob/);
    expect((await failure(call(s, 'credentials.set', { accessKeyId: 'a' }))).message).toMatch(/secretAccessKey/);
  });

  it('a policy denial stops the request before any key is touched', async () => {
    const s = service(builtinPolicy({ denyOps: ['personal_sign'] }));
    const e = await failure(call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } }));
    expect(e.code).toBe('POLICY_DENIED');
    expect(e.message).toMatch(/^denied/);
  });

  it('fails closed when the policy cannot be evaluated', async () => {
    const s = service(() => {
      throw new Error('rules store unreachable');
    });
    const e = await failure(call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } }));
    expect(e.code).toBe('POLICY_UNAVAILABLE');
    const s2 = service((() => undefined) as unknown as Policy);
    expect((await failure(call(s2, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } }))).code).toBe('POLICY_UNAVAILABLE');
  });

  it('does not sign when the audit record cannot be written', async () => {
    const s = service(builtinPolicy(), () => {
      throw new Error('disk full');
    });
    const e = await failure(call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } }));
    expect(e.code).toBe('AUDIT_UNAVAILABLE');
  });

  it('without an unlocked keyring nothing signs and no key can be created', async () => {
    const s = service(builtinPolicy());
    expect((await failure(call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } }))).code).toBe('KEYRING_LOCKED');
    expect((await failure(call(s, 'key.create', { kind: 'secp256k1' }))).code).toBe('KEYRING_LOCKED');
    expect((await failure(call(s, 'keyring.create', { kmsKeyId: 'k' }))).code).toBe('KMS_NO_CREDENTIALS');
  });

  it('reports its status', async () => {
    const s = service(builtinPolicy());
    expect(await call(s, 'status', {})).toMatchObject({ nsm: 'simulated', keyringId: null, workers: 1 });
  });
});
