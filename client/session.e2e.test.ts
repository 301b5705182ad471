/**
 * Principal sessions end to end against the real appliance (`enclave-signer dev --policy FILE`;
 * docs/principals.md "Sessions"): the client signs one signer_openSession with the principal's
 * key, then authenticates requests with an HMAC. What it shows: MAC'd requests get exactly what
 * the principal's signed requests get (and the host still gets its denial); no request after the
 * opening carries a signature; the opening is on the audit chain; a host that alters, replays or
 * swaps the enclave's key in the answer gets nothing signed; a principal without `sessions` in
 * the policy cannot open one; after a restart the client opens a new session on its own.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recoverMessageAddress, type Hex } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toBase64Url } from '../common/auth/request.js';
import { newX25519KeyPair } from '../common/auth/session.js';
import { storedRecords } from '../test/audit-chain.js';
import { ipcExchange, startDevStack, type DevStack } from '../test/e2e/dev-stack.js';
import { ipcRelay, type RelayedBody as Body } from '../test/e2e/ipc-relay.js';
import { createSignerClient, type SignerClient } from './client.js';
import { enclaveAccount } from './viem.js';

const ALLOWED = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8';
const backendKey = generateKeyPairSync('ed25519');
const opsKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const spki = (k: { publicKey: { export(o: { type: 'spki'; format: 'pem' }): string | Buffer } }) => String(k.publicKey.export({ type: 'spki', format: 'pem' }));
const BACKEND = { name: 'backend', key: backendKey.privateKey };
const OPS = { name: 'ops', key: opsKey.privateKey };

const POLICY = {
  policyVersion: 1,
  name: 'e2e-sessions',
  principals: {
    backend: { alg: 'ed25519', publicKey: spki(backendKey), sessions: { maxSeconds: 900 } },
    ops: { alg: 'ecdsa-p256', publicKey: spki(opsKey) },
  },
  rules: [
    { id: 'host-no-messages', effect: 'deny', ops: ['personal_sign'], principals: ['host'] },
    { id: 'create', effect: 'allow', ops: ['signer_createKey'] },
    { id: 'backend-messages', effect: 'allow', ops: ['personal_sign'], principals: ['backend'] },
    { id: 'ops-messages', effect: 'allow', ops: ['personal_sign'], principals: ['ops'] },
    { id: 'backend-payments', effect: 'allow', ops: ['eth_signTransaction'], principals: ['backend'], chainIds: [1], to: [ALLOWED], maxValueWei: '1000000000000000000' },
  ],
};

const dir = mkdtempSync(join(tmpdir(), 'es-e2e-session-'));
const policyFile = join(dir, 'policy.json');
let stack: DevStack;
let host: SignerClient;
let address: Hex;
const servers: Server[] = [];
const clients: SignerClient[] = [];
const tx = (nonce: number) => ({ from: address, to: ALLOWED, value: '0x38d7ea4c68000', nonce: `0x${nonce.toString(16)}`, gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1', type: '0x2' });

async function through(edit: (req: Body) => void, answer?: (req: Body, res: Record<string, unknown>) => void, name = `r${servers.length}.sock`) {
  const r = await ipcRelay(stack.socket, join(dir, name), edit, answer);
  servers.push(r.server);
  const c = createSignerClient({ socket: join(dir, name), principal: BACKEND, session: true });
  clients.push(c);
  return { client: c, seen: r.seen };
}

describe('principal sessions end to end', () => {
  beforeAll(async () => {
    writeFileSync(policyFile, JSON.stringify(POLICY));
    stack = await startDevStack({ dataDir: join(dir, 'data'), args: ['--policy', policyFile] });
    host = createSignerClient({ socket: stack.socket });
    address = (await host.createKey()).address as Hex;
  }, 120_000);
  afterAll(async () => {
    for (const c of [host, ...clients]) c?.close();
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one signed opening, then MAC’d requests get what backend’s signed requests get; the host is still denied; the opening is on the chain', async () => {
    const { client, seen } = await through(() => {});
    for (let i = 0; i < 5; i++) {
      const message = `0x${Buffer.from(`hello ${i}`).toString('hex')}`;
      const sig = (await client.personalSign(address, message)) as Hex;
      expect(await recoverMessageAddress({ message: { raw: message as Hex }, signature: sig })).toBe(address);
    }
    expect(await client.signTransaction(tx(0))).toMatch(/^0x02/);
    const opens = seen.filter((b) => b.method === 'signer_openSession');
    expect(opens).toHaveLength(1);
    expect(opens[0]!.signer_auth).toHaveProperty('signature');
    const macd = seen.filter((b) => b.method !== 'signer_openSession' && b.method !== 'signer_status');
    expect(macd).toHaveLength(6);
    for (const b of macd) {
      expect(b.signer_auth).not.toHaveProperty('signature');
      expect(b.signer_auth).toMatchObject({ principal: 'backend', session: expect.any(String), seq: expect.any(Number), mac: expect.any(String) });
    }
    expect(new Set(macd.map((b) => b.signer_auth!.seq)).size).toBe(6);
    // The host, unauthenticated, is still refused what backend gets.
    await expect(host.personalSign(address, '0x6869')).rejects.toMatchObject({ code: 4001 });
    const rec = storedRecords(join(dir, 'data', 'keystore.sqlite'));
    expect(rec.filter((r) => r.kind === 'session.open' && r.decision === 'done').map((r) => r.principal)).toEqual(['backend']);
    expect(rec.filter((r) => r.kind === 'sign' && r.decision === 'allowed' && r.principal === 'backend')).toHaveLength(6);
    // signer_status counts the open sessions (never shows an id or a key).
    expect(((await host.status()).enclave as { sessions: unknown }).sessions).toEqual({ open: 1 });
  });

  it('64 concurrent requests in one session: one opening, every request signed (out-of-order arrival within the window)', async () => {
    const { client, seen } = await through(() => {});
    const sigs = await Promise.all(Array.from({ length: 64 }, (_, i) => client.personalSign(address, `0x${(i + 1).toString(16).padStart(2, '0')}`)));
    expect(new Set(sigs).size).toBe(64);
    expect(seen.filter((b) => b.method === 'signer_openSession')).toHaveLength(1);
  });

  it('viem: the adapter’s session option signs through a session', async () => {
    const account = enclaveAccount({ socket: stack.socket, address, principal: BACKEND, session: { ttlSeconds: 120 } });
    const signature = await account.signMessage({ message: 'via viem' });
    expect(await recoverMessageAddress({ message: 'via viem', signature })).toBe(address);
  });

  it('hostile host: altering a MAC’d request’s params → 4100 AUTH_BAD_SIGNATURE, nothing signed', async () => {
    const { client } = await through((req) => {
      if (req.method === 'personal_sign') (req.params as string[])[0] = '0x6576696c'; // "evil"
    });
    await expect(client.personalSign(address, '0x6869')).rejects.toMatchObject({ code: 4100, data: { code: 'AUTH_BAD_SIGNATURE' } });
  });

  it('hostile host: replaying a MAC’d request → 4100 AUTH_REPLAYED', async () => {
    const { client, seen } = await through(() => {});
    expect(await client.personalSign(address, '0x6869')).toMatch(/^0x[0-9a-f]{130}$/);
    const captured = seen.find((b) => b.method === 'personal_sign')!;
    const { answers } = await ipcExchange(stack.socket, `${JSON.stringify(captured)}\n`, 1);
    expect((answers[0] as { error?: unknown }).error).toMatchObject({ code: 4100, data: { code: 'AUTH_REPLAYED' } });
  });

  it('hostile host: swapping the enclave’s public key in the opening’s answer gets nothing signed (4100 AUTH_BAD_SIGNATURE)', async () => {
    const swapped = toBase64Url(newX25519KeyPair().publicKey);
    const { client } = await through(
      () => {},
      (req, res) => {
        if (req.method === 'signer_openSession' && res.result) (res.result as Record<string, unknown>).enclavePublicKey = swapped;
      },
    );
    await expect(client.personalSign(address, '0x6869')).rejects.toMatchObject({ code: 4100, data: { code: 'AUTH_BAD_SIGNATURE' } });
  });

  it('a principal the policy gives no sessions cannot open one: 4100 AUTH_SESSIONS_NOT_ALLOWED, on the chain as denied', async () => {
    const c = createSignerClient({ socket: stack.socket, principal: OPS, session: true });
    clients.push(c);
    await expect(c.personalSign(address, '0x6869')).rejects.toMatchObject({ code: 4100, data: { code: 'AUTH_SESSIONS_NOT_ALLOWED' } });
    // Its signed requests are unaffected.
    const signed = createSignerClient({ socket: stack.socket, principal: OPS });
    clients.push(signed);
    expect(await signed.personalSign(address, '0x6869')).toMatch(/^0x[0-9a-f]{130}$/);
    const denied = storedRecords(join(dir, 'data', 'keystore.sqlite')).filter((r) => r.kind === 'session.open' && r.decision === 'denied');
    expect(denied.map((r) => r.rule)).toContain('error:AUTH_SESSIONS_NOT_ALLOWED');
  });

  it('after a restart the enclave knows no session; the client opens a new one by itself and signs', async () => {
    const c = createSignerClient({ socket: stack.socket, principal: BACKEND, session: true });
    clients.push(c);
    expect(await c.personalSign(address, '0x01')).toMatch(/^0x[0-9a-f]{130}$/);
    await stack.stop();
    stack = await startDevStack({ dataDir: join(dir, 'data'), args: ['--policy', policyFile] });
    expect(await c.personalSign(address, '0x02')).toMatch(/^0x[0-9a-f]{130}$/);
    const opens = storedRecords(join(dir, 'data', 'keystore.sqlite')).filter((r) => r.kind === 'session.open' && r.decision === 'done');
    expect(opens.length).toBeGreaterThanOrEqual(3);
  }, 120_000);
});
