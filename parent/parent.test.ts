/**
 * The parent end to end against a fake enclave built from the real bridge
 * server, the real simulated NSM (dev CA) and the real signers: boot
 * sequence, routing of every method, results that verify with viem,
 * operational endpoints, restart against the same keystore.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { parseTransaction, recoverTransactionAddress, verifyMessage, verifyTypedData, type Hex } from 'viem';
import { recoverAuthorizationAddress } from 'viem/utils';
import * as btc from '@scure/btc-signer';
import { verifyAttestation } from '../attestation/verify.js';
import { openKeystore } from './keystore.js';
import { httpRequest, rpc, startRig, waitFor, type Rig } from './test-helpers.js';

vi.setConfig({ testTimeout: 30_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-parent-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
});

async function rig(o: Parameters<typeof startRig>[0] extends infer T ? Partial<T> : never = {}): Promise<Rig> {
  const r = await startRig({ dir, ...o });
  rigs.push(r);
  return r;
}

const typedData = {
  types: {
    EIP712Domain: [
      { name: 'name', type: 'string' },
      { name: 'version', type: 'string' },
      { name: 'chainId', type: 'uint256' },
      { name: 'verifyingContract', type: 'address' },
    ],
    Mail: [
      { name: 'from', type: 'string' },
      { name: 'contents', type: 'string' },
    ],
  },
  primaryType: 'Mail',
  domain: { name: 'Ether Mail', version: '1', chainId: 1, verifyingContract: '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC' },
  message: { from: 'Cow', contents: 'Hello, Bob!' },
} as const;

describe('boot sequence', () => {
  it('attests, hands over credentials, creates and stores the keyring, then reports ready', async () => {
    const r = await rig();
    const s = r.parent.state();
    expect(s.gate.state).toBe('ready');
    expect(s.keyring.state).toBe('unlocked');
    expect(s.attestation?.manifest?.image.name).toBe('enclave-signer');
    expect(s.attestation?.pcrs['0']).toMatch(/^[0-9a-f]{96}$/);
    expect(r.enclave!.credentials).toEqual({ accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret-not-real' });
    expect(r.enclave!.calls.get('keyring.create')).toBe(1);
    // The record is in the keystore (a second reader sees it: WAL, committed).
    const ks = await openKeystore(join(dir, `keystore-${r.socket.match(/signer-(\d+)/)![1]}.db`), { readonly: true });
    expect((await ks.activeKeyring())?.keyringId).toBe(r.enclave!.keyringId);
    await ks.close();
    // Order: attest before anything else.
    expect(r.logs.findIndex((l) => l.startsWith('enclave gate: ready'))).toBeLessThan(r.logs.findIndex((l) => l.startsWith('keyring: unlocked')));
    // No secret in the logs.
    expect(r.logs.join('\n')).not.toContain('test-secret-not-real');
    // Socket mode 0600.
    expect(statSync(r.socket).mode & 0o777).toBe(0o600);
  });

  it('a restart against the same keystore unlocks the stored keyring (no new one) and keeps the keys', async () => {
    const r = await rig();
    const created = await rpc(r.socket, 'signer_createKey', { label: 'hot wallet' });
    const address = created.result.address as string;
    const ksPath = join(dir, `keystore-${r.socket.match(/signer-(\d+)/)![1]}.db`);
    await r.parent.close();
    const { startParent } = await import('./main.js');
    const logs: string[] = [];
    const p2 = await startParent({
      enclave: r.enclaveUri,
      socket: join(dir, 'restart.sock'),
      keystore: ksPath,
      root: r.ca.trustRoot,
      manifest: { signed: r.manifest.signed, trustedKeys: [r.manifest.publicKeyPem] },
      reconnect: { minMs: 20, maxMs: 200 },
      log: (l) => logs.push(l),
    });
    try {
      await waitFor(() => p2.state().ready, 10_000, 'restarted parent ready');
      expect(r.enclave!.calls.get('keyring.create')).toBe(1);
      expect(r.enclave!.calls.get('keyring.unlock')).toBe(1);
      expect((await rpc(p2.socketPath, 'eth_accounts', [])).result).toEqual([address]);
      const sig = await rpc(p2.socketPath, 'personal_sign', ['0x68656c6c6f', address]);
      expect(await verifyMessage({ address: address as Hex, message: 'hello', signature: sig.result })).toBe(true);
    } finally {
      await p2.close();
    }
  });

  it('without a keyring and without a CMK it stays not ready and says how to fix it', async () => {
    const r = await rig({ parent: { kmsKeyId: undefined }, waitReady: false });
    await waitFor(() => r.parent.state().keyring.state === 'absent');
    const ready = await httpRequest(r.socket, { method: 'GET', path: '/readyz' });
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body).reason).toMatch(/keyring not unlocked: absent: .*--kms-key-id/);
    const res = await rpc(r.socket, 'signer_createKey', {});
    expect(res.error?.code).toBe(-32002);
    expect(res.error?.message).toMatch(/^keyring not unlocked/);
    expect(r.enclave!.calls.get('key.create')).toBeUndefined();
  });
});

describe('methods', () => {
  it('eth_accounts, signer_createKey, signer_listKeys, signer_getKey: public data only', async () => {
    const r = await rig();
    expect((await rpc(r.socket, 'eth_accounts')).result).toEqual([]);
    const a = (await rpc(r.socket, 'signer_createKey', [{ kind: 'secp256k1', label: 'ops' }])).result;
    expect(a).toMatchObject({ kind: 'secp256k1', label: 'ops', keyringId: r.enclave!.keyringId });
    expect(a.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(a.publicKey).toMatch(/^0[23][0-9a-f]{64}$/);
    expect(a).not.toHaveProperty('blob');
    const b = (await rpc(r.socket, 'signer_createKey', { kind: 'bip32-seed' })).result;
    expect(b.xpub).toMatch(/^xpub/);
    expect(b.fingerprint).toMatch(/^[0-9a-f]{8}$/);
    expect(b).not.toHaveProperty('address');
    expect((await rpc(r.socket, 'eth_accounts', [])).result).toEqual([a.address]);
    const list = (await rpc(r.socket, 'signer_listKeys')).result;
    expect(list.map((k: { keyId: string }) => k.keyId).sort()).toEqual([a.keyId, b.keyId].sort());
    expect(JSON.stringify(list)).not.toContain('blob');
    expect((await rpc(r.socket, 'signer_listKeys', { kind: 'bip32-seed' })).result).toHaveLength(1);
    expect((await rpc(r.socket, 'signer_getKey', { keyId: b.keyId })).result).toEqual(b);
  });

  it('eth_signTransaction returns a raw transaction that recovers to the key, for every transaction type', async () => {
    const r = await rig();
    const from = (await rpc(r.socket, 'signer_createKey', {})).result.address as Hex;
    const base = { from, to: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', value: '0xde0b6b3a7640000', nonce: '0x7', gas: '0x5208', chainId: '0x1' };
    for (const tx of [
      { ...base, maxFeePerGas: '0x77359400', maxPriorityFeePerGas: '0x3b9aca00' },
      { ...base, type: '0x0', gasPrice: '0x4a817c800' },
      { ...base, type: '0x1', gasPrice: '0x4a817c800', accessList: [] },
    ]) {
      const res = await rpc(r.socket, 'eth_signTransaction', [tx]);
      expect(res.error).toBeUndefined();
      const raw = res.result as Hex;
      expect(await recoverTransactionAddress({ serializedTransaction: raw as never })).toBe(from);
      const parsed = parseTransaction(raw);
      expect(parsed.chainId).toBe(1);
      expect(parsed.nonce).toBe(7);
    }
  });

  it('eth_sign, personal_sign and eth_signTypedData_v4 (string and object) verify with viem', async () => {
    const r = await rig();
    const address = (await rpc(r.socket, 'signer_createKey', {})).result.address as Hex;
    const ethSig = await rpc(r.socket, 'eth_sign', [address, '0xdeadbeef']);
    expect(await verifyMessage({ address, message: { raw: '0xdeadbeef' }, signature: ethSig.result })).toBe(true);
    const pSig = await rpc(r.socket, 'personal_sign', ['0x48656c6c6f', address]);
    expect(await verifyMessage({ address, message: 'Hello', signature: pSig.result })).toBe(true);
    const textSig = await rpc(r.socket, 'personal_sign', ['plain text', address]);
    expect(await verifyMessage({ address, message: 'plain text', signature: textSig.result })).toBe(true);
    for (const td of [typedData, JSON.stringify(typedData)]) {
      const s = await rpc(r.socket, 'eth_signTypedData_v4', [address, td]);
      const { EIP712Domain: _domainType, ...types } = typedData.types;
      expect(await verifyTypedData({ address, domain: typedData.domain, types, primaryType: 'Mail', message: typedData.message, signature: s.result })).toBe(true);
    }
  });

  it('signer_signAuthorization, signer_signDigest, signer_deriveKey (bip32) work and verify', async () => {
    const r = await rig();
    const key = (await rpc(r.socket, 'signer_createKey', {})).result;
    const auth = await rpc(r.socket, 'signer_signAuthorization', { keyId: key.keyId, chainId: 1, address: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', nonce: 3 });
    expect(auth.error).toBeUndefined();
    const recovered = await recoverAuthorizationAddress({ authorization: { chainId: 1, address: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', nonce: 3, r: auth.result.r, s: auth.result.s, yParity: auth.result.yParity } });
    expect(recovered).toBe(key.address);
    const byAccount = await rpc(r.socket, 'signer_signAuthorization', { account: key.address, chainId: '0x1', contractAddress: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', nonce: '0x3' });
    expect(byAccount.result.signer).toBe(key.address);

    const digest = `0x${'ab'.repeat(32)}`;
    const d = await rpc(r.socket, 'signer_signDigest', { keyId: key.keyId, digest });
    expect(d.result.r).toMatch(/^0x[0-9a-f]{64}$/);

    const seed = (await rpc(r.socket, 'signer_createKey', { kind: 'bip32-seed' })).result;
    const child = await rpc(r.socket, 'signer_deriveKey', { keyId: seed.keyId, path: "m/44'/60'/0'/0/0" });
    expect(child.result.xpub).toMatch(/^xpub/);
    const childSig = await rpc(r.socket, 'signer_signDigest', { keyId: seed.keyId, digest, path: "m/44'/60'/0'/0/0" });
    expect(childSig.error).toBeUndefined();
    const schnorr = await rpc(r.socket, 'signer_signSchnorr', { keyId: seed.keyId, message: digest, path: "m/86'/0'/0'/0/0" });
    expect(schnorr.result.signature).toMatch(/^0x[0-9a-f]{128}$/);
  });

  it('signer_signPsbt signs the P2WPKH input that names the seed; the result finalizes', async () => {
    const r = await rig();
    const seed = (await rpc(r.socket, 'signer_createKey', { kind: 'bip32-seed' })).result;
    const path = "m/84'/0'/0'/0/0";
    const child = (await rpc(r.socket, 'signer_deriveKey', { keyId: seed.keyId, path })).result;
    const pub = new Uint8Array(Buffer.from(child.publicKey.slice(2), 'hex'));
    const tx = new btc.Transaction();
    tx.addInput({
      txid: new Uint8Array(32).fill(0xa1),
      index: 0,
      witnessUtxo: { script: btc.p2wpkh(pub).script, amount: 50_000n },
      bip32Derivation: [[pub, { fingerprint: parseInt(seed.fingerprint, 16), path: btc.bip32Path(path) }]],
    });
    tx.addOutput({ script: btc.p2wpkh(pub).script, amount: 49_000n });
    const res = await rpc(r.socket, 'signer_signPsbt', { keyId: seed.keyId, psbt: Buffer.from(tx.toPSBT()).toString('base64') });
    expect(res.error).toBeUndefined();
    expect(res.result.signedInputs).toEqual([0]);
    const signed = btc.Transaction.fromPSBT(Buffer.from(res.result.psbt, 'base64'));
    signed.finalize();
    expect(signed.isFinal).toBe(true);
  });

  it('signer_attest returns a fresh document for the caller\'s nonce that verifies independently', async () => {
    const r = await rig();
    const nonce = `0x${'5a'.repeat(32)}`;
    const res = await rpc(r.socket, 'signer_attest', { nonce });
    expect(res.result.verifiedByParent.ok).toBe(true);
    const doc = new Uint8Array(Buffer.from(res.result.document, 'base64'));
    const v = verifyAttestation(doc, { root: r.ca.trustRoot, expectedNonce: Buffer.from('5a'.repeat(32), 'hex') });
    expect(v.document.moduleId).toBe(r.parent.state().attestation!.moduleId);
  });

  it('signer_status reports gate, keyring, attestation, the enclave\'s own status and the key count', async () => {
    const r = await rig();
    await rpc(r.socket, 'signer_createKey', {});
    const s = (await rpc(r.socket, 'signer_status')).result;
    expect(s).toMatchObject({ ready: true, gate: { state: 'ready' }, keyring: { state: 'unlocked' }, keys: 1, enclave: { nsm: 'simulated', keyringId: r.enclave!.keyringId } });
    expect(s.attestation.pcrs['0']).toMatch(/^[0-9a-f]{96}$/);
  });

  it('a denial by the enclave\'s policy is code 4001 with "denied" in the message', async () => {
    const r = await rig({ enclave: { denyOps: ['eth_sign'] } });
    const address = (await rpc(r.socket, 'signer_createKey', {})).result.address;
    const res = await rpc(r.socket, 'eth_sign', [address, '0x00']);
    expect(res.error?.code).toBe(4001);
    expect(res.error?.message).toMatch(/denied/);
    expect(res.error?.data?.code).toBe('POLICY_DENIED');
  });
});

describe('operational endpoints', () => {
  it('/healthz, /readyz and /metrics', async () => {
    const r = await rig();
    const h = await httpRequest(r.socket, { method: 'GET', path: '/healthz' });
    expect(h.status).toBe(200);
    const ready = await httpRequest(r.socket, { method: 'GET', path: '/readyz' });
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toMatchObject({ ready: true, gate: { state: 'ready' }, keyring: { state: 'unlocked' } });
    await rpc(r.socket, 'eth_accounts');
    await rpc(r.socket, 'eth_chainId');
    const m = await httpRequest(r.socket, { method: 'GET', path: '/metrics' });
    expect(m.status).toBe(200);
    expect(m.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(m.body).toContain('enclave_signer_parent_requests_total{method="eth_accounts",outcome="ok"} 1');
    expect(m.body).toContain('enclave_signer_parent_requests_total{method="unknown",outcome="not_found"} 1');
    expect(m.body).toContain('enclave_signer_parent_gate_state{state="ready"} 1');
    expect(m.body).toContain('enclave_signer_parent_ready 1');
    expect(m.body).toMatch(/enclave_signer_parent_attestation_age_seconds \d/);
    expect(m.body).toMatch(/enclave_signer_parent_request_duration_seconds_bucket\{method="eth_accounts",le="\+Inf"\} 1/);
    expect((await httpRequest(r.socket, { method: 'GET', path: '/nope' })).status).toBe(404);
    expect((await httpRequest(r.socket, { method: 'GET', path: '/' })).status).toBe(405);
    expect((await httpRequest(r.socket, { method: 'POST', path: '/readyz', body: '{}' })).status).toBe(405);
  });

  it('close() removes the socket file', async () => {
    const r = await rig();
    await r.parent.close();
    expect(() => statSync(r.socket)).toThrow();
  });
});
