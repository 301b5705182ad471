/**
 * Hostile input at the request level: a JSON number too large to be an exact
 * integer. eth_signTypedData_v4 with message.amount 18446744078004518912
 * (2^64 + 2^32, an exact double) used to be encoded by the parent modulo
 * 2^64, so the enclave signed amount = 4294967296. Now the request gets a
 * clear -32602 that says to send the integer as a string, nothing reaches
 * the enclave, no signature comes back, and the connection keeps serving.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { rpc, startRig, type Rig } from './test-helpers.js';

vi.setConfig({ testTimeout: 30_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-bigint-'));
let r: Rig;
let address: string;

beforeAll(async () => {
  r = await startRig({ dir });
  address = (await rpc(r.socket, 'signer_createKey', {})).result.address;
});
afterAll(async () => {
  await r.close();
  rmSync(dir, { recursive: true, force: true });
});

const typedData = (amount: unknown) => ({
  types: {
    EIP712Domain: [
      { name: 'name', type: 'string' },
      { name: 'chainId', type: 'uint256' },
    ],
    Transfer: [
      { name: 'to', type: 'address' },
      { name: 'amount', type: 'uint256' },
    ],
  },
  primaryType: 'Transfer',
  domain: { name: 'T', chainId: 1 },
  message: { to: `0x${'11'.repeat(20)}`, amount },
});

/** 2^64 + 2^32 written as a JSON number literal (JSON.stringify of the double would print …520000). */
const HUGE = '18446744078004518912';
const request = (id: number, amount: string) => `{"jsonrpc":"2.0","id":${id},"method":"eth_signTypedData_v4","params":["${address}",${JSON.stringify(typedData(0)).replace('"amount":0', `"amount":${amount}`)}]}\n`;

/** One IPC connection; each call writes one request and waits for its one answer line. */
function ipcSession(path: string): Promise<{ call(line: string): Promise<any>; close(): void }> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect({ path });
    let buf = '';
    let waiting: ((line: string) => void) | undefined;
    s.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl !== -1 && waiting) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const w = waiting;
        waiting = undefined;
        w(line);
      }
    });
    s.on('error', reject);
    s.on('connect', () =>
      resolve({
        call: (line) =>
          new Promise((res, rej) => {
            const t = setTimeout(() => rej(new Error(`no answer to ${line.slice(0, 80)}`)), 10_000);
            waiting = (l) => {
              clearTimeout(t);
              res(JSON.parse(l));
            };
            s.write(line);
          }),
        close: () => s.destroy(),
      }),
    );
  });
}

const signCalls = () => r.enclave!.calls.get('sign') ?? 0;

describe('a typed-data amount past 2^53 sent as a JSON number', () => {
  it('is refused with a clear -32602 and no signature; the same connection then signs the amount sent as a string', async () => {
    const s = await ipcSession(r.socket);
    try {
      const before = signCalls();
      const bad = await s.call(request(1, HUGE));
      expect(bad.id).toBe(1);
      expect(bad.result).toBeUndefined();
      expect(bad.error).toMatchObject({ code: -32602, data: { code: 'PARENT_INVALID_PARAMS' } });
      expect(bad.error.message).toMatch(/read as 18446744078004518912\) is an integer outside ±\(2\^53−1\).*send large integers as decimal or 0x-hex strings/);
      expect(signCalls()).toBe(before); // refused in the parent: the enclave never saw it

      const good = await s.call(request(2, `"${HUGE}"`));
      expect(good.error).toBeUndefined();
      expect(good.result).toMatch(/^0x[0-9a-f]{130}$/);
      // And it is not the signature of the value the old encoder sent (2^64 + 2^32 mod 2^64).
      const wrapped = await s.call(request(3, '"4294967296"'));
      expect(wrapped.result).toMatch(/^0x[0-9a-f]{130}$/);
      expect(wrapped.result).not.toBe(good.result);
      expect(signCalls()).toBe(before + 2);
    } finally {
      s.close();
    }
  });

  it('the same over HTTP, for typed data given as a JSON string and other out-of-range integers', async () => {
    const before = signCalls();
    const asString = JSON.stringify(typedData(0)).replace('"amount":0', `"amount":${HUGE}`);
    for (const params of [[address, asString], [address, typedData(-(2 ** 64) - 2 ** 33)], [address, typedData(2 ** 53)], [address, typedData(1e300)]]) {
      const res = await rpc(r.socket, 'eth_signTypedData_v4', params);
      expect(res.result, JSON.stringify(params).slice(-60)).toBeUndefined();
      expect(res.error).toMatchObject({ code: -32602, message: expect.stringContaining('send large integers as decimal or 0x-hex strings') });
    }
    expect(signCalls()).toBe(before);
    expect((await rpc(r.socket, 'eth_signTypedData_v4', [address, typedData(Number.MAX_SAFE_INTEGER)])).result).toMatch(/^0x[0-9a-f]{130}$/);
  });
});
