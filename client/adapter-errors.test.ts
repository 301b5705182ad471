/**
 * The adapters' error types for every refusal class, against a stand-in
 * signer that answers each signing call with one configured JSON-RPC error
 * (a locked keyring cannot be produced on demand by the dev stack;
 * test/e2e/adapters.test.ts covers an unknown address and a real policy
 * denial against the appliance).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BaseError } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnclaveSigner } from './ethers.js';
import { EnclaveSignerViemError, enclaveAccount } from './viem.js';

const ADDRESS = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
let server: Server;
let dir: string;
let answer: { code: number; message: string; data: Record<string, string> };
const connections = new Set<Socket>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'es-adapter-errors-'));
  server = createServer((s: Socket) => {
    connections.add(s);
    let buf = '';
    s.setEncoding('utf8').on('data', (c: string) => {
      buf += c;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const req = JSON.parse(buf.slice(0, nl)) as { id: unknown };
        buf = buf.slice(nl + 1);
        s.write(`${JSON.stringify({ jsonrpc: '2.0', id: req.id, error: answer })}\n`);
      }
    });
  });
  await new Promise<void>((r) => server.listen(join(dir, 's.sock'), r));
});
afterAll(async () => {
  for (const s of connections) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

const CASES: { name: string; error: { code: number; message: string; data: Record<string, string> }; rule: string }[] = [
  { name: 'a locked keyring', error: { code: -32002, message: 'keyring not unlocked: locked', data: { code: 'PARENT_KEYRING_LOCKED', hint: 'unlock it' } }, rule: 'PARENT_KEYRING_LOCKED' },
  { name: 'a policy denial naming its rule', error: { code: 4001, message: 'denied: transfer to a non-KYC address', data: { code: 'POLICY_DENIED', rule: 'kyc-allowlist' } }, rule: 'kyc-allowlist' },
  { name: 'an unknown address', error: { code: -32602, message: 'invalid params: from: no secp256k1 key with this address', data: { code: 'PARENT_INVALID_PARAMS', field: 'from' } }, rule: 'PARENT_INVALID_PARAMS' },
];

describe('adapter errors carry the JSON-RPC code and rule', () => {
  for (const c of CASES) {
    it(`${c.name}: viem BaseError subclass; ethers makeError (${c.error.code === 4001 ? 'ACTION_REJECTED' : 'UNKNOWN_ERROR'})`, async () => {
      answer = c.error;
      const socket = join(dir, 's.sock');
      const v = await enclaveAccount({ socket, address: ADDRESS }).signTransaction({ chainId: 1, to: ADDRESS, nonce: 0, gas: 21000n, gasPrice: 1n }).catch((x: unknown) => x);
      expect(v).toBeInstanceOf(BaseError);
      expect(v).toBeInstanceOf(EnclaveSignerViemError);
      expect(v).toMatchObject({ code: c.error.code, rule: c.rule, data: c.error.data });
      const e = await new EnclaveSigner({ socket, address: ADDRESS }).signTransaction({ chainId: 1, to: ADDRESS, nonce: 0, gasLimit: 21000n, gasPrice: 1n }).catch((x: unknown) => x);
      if (c.error.code === 4001) expect(e).toMatchObject({ code: 'ACTION_REJECTED', action: 'signTransaction', reason: 'rejected', info: { error: { code: 4001, data: c.error.data }, rule: c.rule } });
      else expect(e).toMatchObject({ code: 'UNKNOWN_ERROR', error: { code: c.error.code, data: c.error.data }, rule: c.rule });
    });
  }
});
