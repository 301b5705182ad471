/**
 * Principal-signed requests from the adapters, end to end against the real
 * appliance (`enclave-signer dev --policy FILE`; issue 9 §4 proofs, issue 12
 * §3): a request signed as `backend` by the viem or ethers adapter is signed
 * where the same unauthenticated request (`host`) is denied with 4001 and
 * data.rule; a host that alters a signed request's params is refused
 * (4100 AUTH_BAD_SIGNATURE), and one that replays it too (AUTH_REPLAYED).

 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transaction } from 'ethers';
import { recoverMessageAddress, type Hex } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ipcExchange, startDevStack, type DevStack } from '../test/e2e/dev-stack.js';
import { ipcRelay } from '../test/e2e/ipc-relay.js';
import { createSignerClient, type SignerClient } from './client.js';
import { EnclaveSignerRpcError } from './errors.js';
import { EnclaveSigner } from './ethers.js';
import { EnclaveSignerViemError, enclaveAccount } from './viem.js';

const ALLOWED = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8';
const backendKey = generateKeyPairSync('ed25519');
const opsKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const spki = (k: { publicKey: { export(o: { type: 'spki'; format: 'pem' }): string | Buffer } }) => String(k.publicKey.export({ type: 'spki', format: 'pem' }));
const BACKEND = { name: 'backend', key: backendKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
const OPS = { name: 'ops', key: opsKey.privateKey };

const POLICY = {
  policyVersion: 1,
  name: 'e2e-principals',
  principals: { backend: { alg: 'ed25519', publicKey: spki(backendKey) }, ops: { alg: 'ecdsa-p256', publicKey: spki(opsKey) } },
  rules: [
    { id: 'host-no-messages', effect: 'deny', ops: ['personal_sign'], principals: ['host'] },
    { id: 'host-no-payments', effect: 'deny', ops: ['eth_signTransaction'], principals: ['host'] },
    { id: 'create', effect: 'allow', ops: ['signer_createKey'] },
    { id: 'backend-messages', effect: 'allow', ops: ['personal_sign'], principals: ['backend'] },
    { id: 'backend-payments', effect: 'allow', ops: ['eth_signTransaction'], principals: ['backend'], chainIds: [1], to: [ALLOWED], maxValueWei: '1000000000000000000' },
  ],
};

const dir = mkdtempSync(join(tmpdir(), 'es-e2e-principal-'));
let stack: DevStack;
let host: SignerClient;
let address: Hex;
const servers: Server[] = [];

describe('signed principals end to end', () => {
  beforeAll(async () => {
    const policyFile = join(dir, 'policy.json');
    writeFileSync(policyFile, JSON.stringify(POLICY));
    stack = await startDevStack({ dataDir: join(dir, 'data'), args: ['--policy', policyFile] });
    host = createSignerClient({ socket: stack.socket });
    address = (await host.createKey()).address as Hex;
  }, 120_000);
  afterAll(async () => {
    host?.close();
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('viem: signMessage signed as backend succeeds (policy hash from signer_status); unauthenticated it is 4001 with data.rule host-no-messages', async () => {
    const denied = await enclaveAccount({ socket: stack.socket, address }).signMessage({ message: 'hello' }).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(EnclaveSignerViemError);
    expect(denied).toMatchObject({ code: 4001, rule: 'host-no-messages', data: { code: 'POLICY_DENIED' } });
    const signed = enclaveAccount({ socket: stack.socket, address, principal: BACKEND });
    const signature = await signed.signMessage({ message: 'hello' });
    expect(await recoverMessageAddress({ message: 'hello', signature })).toBe(address);
  });

  it('ethers: signTransaction signed as backend (pinned policy hash) succeeds; unauthenticated, and as another principal, it is 4001', async () => {
    const policyHash = ((await host.status()).policy as { hash: string }).hash;
    const tx = { chainId: 1, type: 2, to: ALLOWED, value: 10n ** 15n, nonce: 0, gasLimit: 21000n, maxFeePerGas: 10n ** 9n, maxPriorityFeePerGas: 1n };
    const denied = await new EnclaveSigner({ socket: stack.socket, address }).signTransaction(tx).catch((e: unknown) => e);
    expect(denied).toMatchObject({ code: 'ACTION_REJECTED', info: { error: { code: 4001 }, rule: 'host-no-payments' } });
    const raw = await new EnclaveSigner({ socket: stack.socket, address, principal: BACKEND, policyHash }).signTransaction(tx);
    expect(Transaction.from(raw).from).toBe(address);
    // ops authenticates (no 4100) but no rule allows it: refused by default.
    const other = await new EnclaveSigner({ socket: stack.socket, address, principal: OPS, policyHash }).signTransaction(tx).catch((e: unknown) => e);
    expect(other).toMatchObject({ code: 'ACTION_REJECTED', info: { error: { code: 4001, data: { rule: null } } } });
  });

  it('a host that alters the params of a signed request is refused: 4100 AUTH_BAD_SIGNATURE', async () => {
    const r = await ipcRelay(stack.socket, join(dir, 'alter.sock'), (req) => {
      if (req.method === 'personal_sign') (req.params as string[])[0] = '0x6576696c'; // "evil"
    });
    servers.push(r.server);
    const c = createSignerClient({ socket: join(dir, 'alter.sock'), principal: BACKEND });
    const e = await c.personalSign(address, '0x6869').catch((x: unknown) => x);
    c.close();
    expect(e).toBeInstanceOf(EnclaveSignerRpcError);
    expect(e).toMatchObject({ code: 4100, data: { code: 'AUTH_BAD_SIGNATURE' } });
  });

  it('a host that replays a signed request is refused: 4100 AUTH_REPLAYED', async () => {
    const r = await ipcRelay(stack.socket, join(dir, 'replay.sock'), () => {});
    servers.push(r.server);
    const c = createSignerClient({ socket: join(dir, 'replay.sock'), principal: BACKEND });
    expect(await c.personalSign(address, '0x6869')).toMatch(/^0x[0-9a-f]{130}$/);
    c.close();
    const captured = r.seen.find((b) => b.method === 'personal_sign')!;
    const { answers } = await ipcExchange(stack.socket, `${JSON.stringify(captured)}\n`, 1);
    expect((answers[0] as { error?: unknown }).error).toMatchObject({ code: 4100, data: { code: 'AUTH_REPLAYED' } });
  });
});
