/**
 * The attestation gate against impostor enclaves: each one is never ready,
 * /readyz says why (503), signing requests get "enclave not attested", and
 * the impostor sees nothing but `attest` — no credentials, no key blobs, no
 * signing request.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { privateKeyToAccount } from 'viem/accounts';
import { createDevCa } from '../dev/ca/index.js';
import { instancePcr, simulatedImagePcrs } from '../enclave/nsm/simulated.js';
import { isSignerError } from '../common/errors.js';
import { openKeystore } from './keystore.js';
import { startParent } from './main.js';
import { devManifest, httpRequest, rpc, startRig, waitFor, type Rig, type RigOptions } from './test-helpers.js';

vi.setConfig({ testTimeout: 30_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-gate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
});

let ksN = 0;
const account = privateKeyToAccount(`0x${'11'.repeat(32)}`);

/** A keystore that already holds a keyring and a key, so signing requests get as far as the gate. */
async function seededKeystore(): Promise<string> {
  const path = join(dir, `seeded-${++ksN}.db`);
  const ks = await openKeystore(path);
  await ks.putKeyring({ format: 'enclave-signer/keyring', version: 1, keyringId: '0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c6b', kmsKeyId: 'arn:aws:kms:us-east-1:0:key/x', dataKeyCiphertext: new Uint8Array(64), createdAt: new Date().toISOString() });
  await ks.putKey({ keyId: '6f1c1a52-8d4e-4a5b-9c3d-2e7f0a1b2c3d', kind: 'secp256k1', keyringId: '0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c6b', publicKey: '02'.padEnd(66, '0'), address: account.address, blob: new Uint8Array(61).fill(7) });
  await ks.close();
  return path;
}

async function impostor(o: Partial<RigOptions>): Promise<Rig> {
  const r = await startRig({ dir, waitReady: false, ...o, parent: { keystore: await seededKeystore(), ...o.parent } });
  rigs.push(r);
  return r;
}

/** Waits for at least two failed attestations (so a reconnect happened too) and checks everything a client can see. */
async function expectNeverReady(r: Rig, code: RegExp): Promise<void> {
  await waitFor(() => r.parent.state().counters.attestationsFailed >= 2, 10_000, 'two failed attestations');
  const s = r.parent.state();
  expect(s.ready).toBe(false);
  expect(s.counters.attestationsOk).toBe(0);
  expect(s.lastFailure?.code).toMatch(code);

  const ready = await httpRequest(r.socket, { method: 'GET', path: '/readyz' });
  expect(ready.status).toBe(503);
  const body = JSON.parse(ready.body);
  expect(body.ready).toBe(false);
  expect(body.reason).toMatch(/^enclave not attested: /);
  expect(body.reason).toMatch(code);

  const tx = { from: account.address, to: account.address, chainId: 1, nonce: 0, gas: '0x5208', maxFeePerGas: '0x1', maxPriorityFeePerGas: '0x1' };
  for (const [method, params] of [
    ['eth_signTransaction', [tx]],
    ['personal_sign', ['0x00', account.address]],
    ['signer_signDigest', { keyId: '6f1c1a52-8d4e-4a5b-9c3d-2e7f0a1b2c3d', digest: `0x${'00'.repeat(32)}` }],
    ['signer_createKey', {}],
    ['signer_attest', { nonce: `0x${'00'.repeat(32)}` }],
  ] as const) {
    const res = await rpc(r.socket, method, params);
    expect(res.error?.code, method).toBe(-32002);
    expect(res.error?.message, method).toMatch(/^enclave not attested: /);
    expect(res.error?.data?.code).toBe('PARENT_NOT_ATTESTED');
  }
  // eth_accounts reads only the keystore: it works, and proves the key was there to be misused.
  expect((await rpc(r.socket, 'eth_accounts')).result).toEqual([account.address]);

  // The impostor was only ever asked to attest.
  expect([...r.enclave!.calls.keys()]).toEqual(['attest']);
}

describe('impostor enclaves are never trusted', () => {
  it('a document from another CA (not the configured root)', async () => {
    const r = await impostor({ parent: { root: createDevCa().trustRoot } });
    await expectNeverReady(r, /ATTEST_UNTRUSTED_ROOT|ATTEST_CHAIN/);
  });

  it('a dev-CA document when the root is AWS (the default)', async () => {
    const r = await impostor({ parent: { root: 'aws' } });
    await expectNeverReady(r, /ATTEST_UNTRUSTED_ROOT|ATTEST_CHAIN/);
    expect(r.parent.state().lastFailure?.reason).toMatch(/\(chain\)/);
  });

  it('PCRs that differ from the signed manifest (another image)', async () => {
    const pcrs = new Map([[2, new Uint8Array(randomBytes(48))]]);
    const r = await impostor({ enclave: { pcrs } });
    await expectNeverReady(r, /ATTEST_PCR_MISMATCH/);
    expect(r.parent.state().lastFailure?.reason).toContain('PCR2');
  });

  it('a document that does not carry our nonce', async () => {
    const r = await impostor({ enclave: { attestNonce: 'random' } });
    await expectNeverReady(r, /ATTEST_NONCE_MISMATCH/);
  });

  it('an extra pinned PCR (instance id) that does not match', async () => {
    const r = await impostor({ parent: { expectedPcrs: { 4: instancePcr('i-0123456789abcdef0') } } });
    await expectNeverReady(r, /ATTEST_PCR_MISMATCH/);
  });

  it('a manifest signed by an untrusted key is refused at startup', async () => {
    const other = devManifest();
    const m = devManifest();
    await expect(
      startParent({ enclave: 'unix:/nonexistent.sock', socket: join(dir, 'x.sock'), keystore: join(dir, 'x.db'), manifest: { signed: m.signed, trustedKeys: [other.publicKeyPem] }, log: () => {} }),
    ).rejects.toSatisfy((e) => isSignerError(e) && e.code === 'PARENT_CONFIG' && /manifest/.test(e.message));
  });

  it('no manifest and no --allow-any-pcrs: refuses to start', async () => {
    await expect(startParent({ enclave: 'unix:/nonexistent.sock', socket: join(dir, 'y.sock'), keystore: join(dir, 'y.db'), log: () => {} })).rejects.toSatisfy(
      (e) => isSignerError(e) && e.code === 'PARENT_CONFIG' && e.hint !== undefined && /--manifest/.test(e.hint),
    );
  });
});

describe('re-attestation', () => {
  it('a replayed document fails the next re-attestation: the parent goes not-ready and drops the connection', async () => {
    const r = await startRig({ dir, enclave: { attestNonce: 'replay' }, parent: { reattestIntervalMs: 200 } });
    rigs.push(r);
    expect(r.parent.state().ready).toBe(true); // the first document was honest (and is the one replayed)
    await waitFor(() => r.parent.state().lastFailure?.code === 'ATTEST_NONCE_MISMATCH', 10_000, 'replay detected');
    await waitFor(() => !r.parent.state().ready);
    const res = await rpc(r.socket, 'signer_createKey', {});
    expect(res.error?.code).toBe(-32002);
    expect(res.error?.message).toMatch(/^enclave not attested/);
    expect(r.enclave!.calls.get('key.create')).toBeUndefined();
    // It keeps failing on every reconnect (never ready again).
    await waitFor(() => r.parent.state().counters.attestationsFailed >= 3);
    expect(r.parent.state().ready).toBe(false);
    expect(r.parent.state().reconnects).toBeGreaterThanOrEqual(1);
  });

  it('an honest enclave is re-attested periodically and stays ready', async () => {
    const r = await startRig({ dir, parent: { reattestIntervalMs: 150 } });
    rigs.push(r);
    await waitFor(() => r.parent.state().counters.attestationsOk >= 3, 10_000, 'three attestations');
    expect(r.parent.state().ready).toBe(true);
    expect(r.parent.state().reconnects).toBe(0);
    expect(r.parent.state().attestationAgeSeconds!).toBeLessThan(1);
  });
});

describe('fail closed on KMS', () => {
  it('KMS refusing the enclave (unlock) leaves the parent not ready with the reason; nothing is signed', async () => {
    const ks = await seededKeystore();
    const r = await startRig({ dir, waitReady: false, enclave: { kmsError: { code: 'KMS_ACCESS_DENIED', message: 'KMS refused Decrypt: the key policy does not allow this enclave (PCR0)' } }, parent: { keystore: ks } });
    rigs.push(r);
    await waitFor(() => r.parent.state().keyring.state === 'failed', 10_000, 'keyring failed');
    expect(r.parent.state().gate.state).toBe('ready');
    const ready = await httpRequest(r.socket, { method: 'GET', path: '/readyz' });
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body).reason).toMatch(/^keyring not unlocked: failed: KMS_ACCESS_DENIED: KMS refused Decrypt/);
    const res = await rpc(r.socket, 'personal_sign', ['0x00', account.address]);
    expect(res.error?.code).toBe(-32002);
    expect(res.error?.message).toMatch(/^keyring not unlocked/);
    expect(r.enclave!.calls.get('sign')).toBeUndefined();
  });
});

describe('development mode', () => {
  it('--allow-any-pcrs without a manifest still checks root and nonce, and warns loudly', async () => {
    const logs: string[] = [];
    const r = await startRig({ dir, parent: { manifest: undefined, allowAnyPcrs: true, log: (l) => logs.push(l) } });
    rigs.push(r);
    expect(r.parent.state().attestation?.manifest).toBeUndefined();
    expect(logs.some((l) => l.startsWith('WARNING: no PCR manifest'))).toBe(true);
    expect(logs.some((l) => l.startsWith('WARNING: attestation root is'))).toBe(true);
    // The rig's bridge is a unix: socket, which nothing binds to the enclave (docs/threat-model.md).
    expect(logs.some((l) => l.startsWith('WARNING: the enclave bridge is unix:'))).toBe(true);
    // Another image is still fine in this mode, but a wrong nonce is not.
    const r2 = await impostor({ parent: { manifest: undefined, allowAnyPcrs: true }, enclave: { attestNonce: 'random', pcrs: new Map([[0, simulatedImagePcrs('other').get(0)!]]) } });
    await waitFor(() => r2.parent.state().lastFailure?.code === 'ATTEST_NONCE_MISMATCH');
  });
});
