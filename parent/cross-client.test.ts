/**
 * Review of the parent's request handling (one client's input must fail that request only, and
 * say what was wrong): findings that need the real parent. The IPC flow-control finding is in
 * ipc-flow.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { rpc, startRig, waitFor, type Rig } from './test-helpers.js';

vi.setConfig({ testTimeout: 30_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-xclient-'));
let r: Rig;
let address: string;

beforeAll(async () => {
  // Signing takes a while: requests are still in flight when their client goes.
  r = await startRig({ dir, enclave: { signDelayMs: 1500 } });
  address = (await rpc(r.socket, 'signer_createKey', {})).result.address;
});
afterAll(async () => {
  await r.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `data` on a fresh connection and collects what comes back until the server closes or `ms` pass. */
function raw(data: string, ms = 2000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ path: r.socket });
    let out = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve(out);
    }, ms);
    s.on('data', (d) => (out += d));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(t);
      resolve(out);
    });
    s.on('connect', () => s.write(data));
  });
}

describe('HTTP header fields past the cap (review finding)', () => {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_accounts' });
  const request = (extra: number) =>
    `POST / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: extra }, (_, i) => `X-Filler-${i}: a\r\n`).join('')}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

  it('a request with more header fields than node keeps is refused for that, not for a field node dropped (it said 415)', async () => {
    const out = await raw(request(200), 1000);
    // Node 20 drops the fields past maxHeadersCount without a word, and http.ts answers 431; the
    // pinned Node 22's parser refuses such a request itself (server.ts's clientError: 400). Either
    // way the request is refused for its headers — never served, never a 415.
    const status = /^HTTP\/1\.1 (\d{3}) /.exec(out)?.[1];
    expect(['431', '400']).toContain(status);
    if (status === '431') expect(out).toContain('more than 99 header fields');
    expect(out).not.toContain('Content-Type must be');
  });

  it('just under the cap is served, and the parent keeps serving', async () => {
    const out = await raw(request(95), 1000);
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    expect((await rpc(r.socket, 'eth_accounts')).result).toEqual([address]);
  });
});

describe('a client that disconnects (review finding, not fixed)', () => {
  // A function: `address` is known only once beforeAll has run.
  const sign = () => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'personal_sign', params: ['0x6869', address] });

  /** Sends `data`, waits until the enclave has the sign request, then drops the connection. */
  async function sendAndLeave(data: string): Promise<void> {
    const signs = () => r.enclave!.calls.get('sign') ?? 0;
    const before = signs();
    const s = connect({ path: r.socket });
    s.on('error', () => {});
    await new Promise((res) => s.once('connect', res));
    s.write(data);
    await waitFor(() => signs() > before, 5_000, 'the sign request to reach the enclave');
    s.destroy();
  }

  it('HTTP: its request is cancelled in the enclave', async () => {
    const before = r.enclave!.cancelled;
    await sendAndLeave(`POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${sign().length}\r\n\r\n${sign()}`);
    await waitFor(() => r.enclave!.cancelled > before, 1_000, 'the enclave job to be cancelled');
  });

  // Known gap (reported): docs/parent.md says "A client that disconnects cancels its requests in
  // the enclave", but for raw IPC the server socket is allowHalfOpen (a client may shut down its
  // side and still read its answers), so a client's EOF only means "no more requests": the
  // connection's cancellation fires on 'close', which comes after the answer is written. A client
  // that is gone still gets its request decided and signed (it counts in the policy's windows).
  // Telling "gone" from "half-closed" needs a write or a policy decision (geth treats EOF as
  // gone). Flip to it() once decided and fixed.
  it.fails('raw IPC: its request is cancelled in the enclave', async () => {
    const before = r.enclave!.cancelled;
    await sendAndLeave(sign());
    await waitFor(() => r.enclave!.cancelled > before, 1_000, 'the enclave job to be cancelled');
  });
});
