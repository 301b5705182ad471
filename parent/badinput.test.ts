/**
 * The bad-input matrix, over HTTP and raw IPC on the same socket: every bad
 * request gets the right JSON-RPC error, nothing unknown reaches the
 * enclave, oversized input is refused without unbounded buffering, and the
 * parent keeps serving afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { httpRequest, ipcExchange, rpc, startRig, type Rig } from './test-helpers.js';

vi.setConfig({ testTimeout: 30_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-bad-'));
let r: Rig;
let address: string;
let keyId: string;
let seedId: string;

beforeAll(async () => {
  r = await startRig({ dir });
  const k = (await rpc(r.socket, 'signer_createKey', {})).result;
  address = k.address;
  keyId = k.keyId;
  seedId = (await rpc(r.socket, 'signer_createKey', { kind: 'bip32-seed' })).result.keyId;
});
afterAll(async () => {
  await r.close();
  rmSync(dir, { recursive: true, force: true });
});

const MiB = 1024 * 1024;

async function post(body: string | Buffer, headers?: Record<string, string>) {
  const res = await httpRequest(r.socket, { body, ...(headers ? { headers } : {}) });
  return { status: res.status, json: res.body.length > 0 ? JSON.parse(res.body) : undefined };
}

function snapshotCalls(): string {
  return JSON.stringify([...r.enclave!.calls].sort());
}

describe('envelope errors (HTTP)', () => {
  it('malformed JSON and invalid UTF-8 are -32700 with id null', async () => {
    for (const body of ['{"jsonrpc":"2.0","id":1,"method":', '{"a":}', 'nul', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]) {
      const { status, json } = await post(body);
      expect(status).toBe(200);
      expect(json).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32700, message: expect.stringMatching(/^parse error/) } });
    }
  });

  it('wrong JSON-RPC shapes are -32600, with the id when it could be read', async () => {
    const cases: [unknown, unknown][] = [
      [1, null],
      ['eth_accounts', null],
      [{}, null],
      [{ jsonrpc: '1.0', id: 3, method: 'eth_accounts' }, 3],
      [{ id: 4, method: 'eth_accounts' }, 4],
      [{ jsonrpc: '2.0', id: 5, method: 7 }, 5],
      [{ jsonrpc: '2.0', id: 6, method: '' }, 6],
      [{ jsonrpc: '2.0', id: 7, method: 'eth_accounts', params: 'x' }, 7],
      [{ jsonrpc: '2.0', id: 8, method: 'eth_accounts', extra: true }, 8],
      [{ jsonrpc: '2.0', id: { a: 1 }, method: 'eth_accounts' }, null],
      [{ jsonrpc: '2.0', id: 9, method: 'x'.repeat(200) }, 9],
    ];
    for (const [req, id] of cases) {
      const { json } = await post(JSON.stringify(req));
      expect(json, JSON.stringify(req)).toEqual({ jsonrpc: '2.0', id, error: { code: -32600, message: expect.stringMatching(/^invalid request/) } });
    }
    expect((await post('[]')).json.error.code).toBe(-32600);
    const big = Array.from({ length: 101 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'eth_accounts' }));
    expect((await post(JSON.stringify(big))).json.error).toMatchObject({ code: -32600, message: expect.stringContaining('limit of 100') });
  });

  it('a batch of mixed good and bad requests is answered in order; notifications get nothing', async () => {
    const before = snapshotCalls();
    const { json } = await post(
      JSON.stringify([
        { jsonrpc: '2.0', id: 'a', method: 'eth_accounts' },
        { jsonrpc: '2.0', id: 'b', method: 'eth_chainId' },
        { jsonrpc: '2.0', method: 'personal_sign', params: ['0x00', address] }, // notification: not executed
        { foo: 'bar' },
        { jsonrpc: '2.0', id: 'c', method: 'signer_getKey', params: { keyId: 'nope' } },
        { jsonrpc: '2.0', id: 'd', method: 'personal_sign', params: ['0x68656c6c6f', address] },
      ]),
    );
    expect(json).toHaveLength(5);
    expect(json[0]).toEqual({ jsonrpc: '2.0', id: 'a', result: [address] });
    expect(json[1].error.code).toBe(-32601);
    expect(json[2]).toMatchObject({ id: null, error: { code: -32600 } });
    expect(json[3]).toMatchObject({ id: 'c', error: { code: -32602, message: expect.stringContaining('keyId') } });
    expect(json[4]).toMatchObject({ id: 'd', result: expect.stringMatching(/^0x[0-9a-f]{130}$/) });
    // Exactly one signing request reached the enclave: the notification did not.
    const signs = (snap: string) => (JSON.parse(snap) as [string, number][]).find(([m]) => m === 'sign')?.[1] ?? 0;
    expect(signs(snapshotCalls())).toBe(signs(before) + 1);
  });

  it('a payload of notifications only is answered with 204 and nothing is executed', async () => {
    const before = snapshotCalls();
    const res = await httpRequest(r.socket, { body: JSON.stringify([{ jsonrpc: '2.0', method: 'eth_sign', params: [address, '0x00'] }]) });
    expect(res.status).toBe(204);
    expect(res.body).toBe('');
    expect(snapshotCalls()).toBe(before);
  });

  it('unknown methods are -32601 and never forwarded (including prototype names)', async () => {
    const before = snapshotCalls();
    for (const m of ['eth_chainId', 'eth_sendTransaction', 'eth_getBalance', 'personal_unlockAccount', 'sign', 'key.create', 'constructor', '__proto__', 'hasOwnProperty', 'toString', 'ETH_ACCOUNTS']) {
      const res = await rpc(r.socket, m, []);
      expect(res.error, m).toMatchObject({ code: -32601, message: expect.stringContaining('method not found') });
    }
    expect(snapshotCalls()).toBe(before);
  });

  it('Content-Type other than application/json is 415; a declared or streamed body over 1 MiB is 413', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_accounts' });
    expect((await post(body, { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await post(body, { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(415);
    expect((await post(body, { 'content-type': 'application/json; charset=utf-8' })).status).toBe(200);

    const huge = `{"jsonrpc":"2.0","id":1,"method":"personal_sign","params":["0x${'00'.repeat(MiB / 2 + 10)}","${address}"]}`;
    const declared = await post(huge);
    expect(declared.status).toBe(413);
    expect(declared.json.error.code).toBe(-32600);
    // Chunked (no Content-Length): refused once it passes the cap, answered when the upload ends.
    // (An upload that stalls instead is answered after the drain's idle time: http-refuse.test.ts.)
    const chunked = await new Promise<number>((resolve, reject) => {
      const s = connect({ path: r.socket });
      let out = '';
      s.on('data', (d) => {
        out += d.toString();
        const status = /^HTTP\/1\.1 (\d+)[\s\S]*?\r\n\r\n/.exec(out);
        if (status) {
          resolve(Number(status[1]));
          s.destroy();
        }
      });
      s.on('close', () => resolve(0));
      s.on('error', reject);
      s.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
      const piece = 'a'.repeat(64 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent < 2 * MiB && !s.destroyed) {
          sent += piece.length;
          if (!s.write(`${piece.length.toString(16)}\r\n${piece}\r\n`)) return void s.once('drain', pump);
        }
        if (!s.destroyed) s.write('0\r\n\r\n');
      };
      pump();
    });
    expect(chunked).toBe(413);
    // Still serving.
    expect((await rpc(r.socket, 'eth_accounts')).result).toEqual([address]);
  });
});

describe('parameter errors are -32602 naming the field', () => {
  const cases: [string, unknown, RegExp][] = [
    ['eth_signTransaction', { from: 'x' }, /params: expected an array/],
    ['eth_signTransaction', ['not a tx'], /params\[0\]: expected a transaction object/],
    ['eth_signTransaction', [{ to: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8' }], /from: required/],
    ['eth_signTransaction', [{ from: '0x1234' }], /from: expected a 0x-prefixed 20-byte address/],
    ['eth_signTransaction', [{ from: '0x70997970c51812dc3a010c7d01b50e0d17dc79C8', chainId: 1 }], /from: mixed-case address with a wrong EIP-55 checksum/],
    ['eth_signTransaction', [{ from: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', chainId: 1 }], /from: no secp256k1 key with this address/],
    ['eth_signTransaction', [{ from: '<ADDR>', type: '0x2', maxFeePerGas: '0x1', maxPriorityFeePerGas: '0x1', gas: '0x5208', nonce: '0x0' }], /chainId: required/],
    ['eth_signTransaction', [{ from: '<ADDR>', chainId: 'one' }], /chainId: expected a non-negative integer/],
    ['eth_sign', ['<ADDR>'], /params: expected 2 items/],
    ['eth_sign', ['<ADDR>', '0xzz'], /params\[1\]: expected 0x-prefixed hex/],
    ['eth_sign', ['<ADDR>', '0x123'], /params\[1\]: expected 0x-prefixed hex with an even number of digits/],
    ['eth_sign', ['<ADDR>', 42], /params\[1\]: expected 0x-prefixed hex, got a number/],
    ['personal_sign', ['<ADDR>', '0x68656c6c6f'], /params\[1\]: expected the signing address/],
    ['personal_sign', [{}, '<ADDR>'], /params\[0\]: expected the message/],
    ['eth_signTypedData_v4', ['<ADDR>', '{not json'], /params\[1\]: typed data is not valid JSON/],
    ['eth_signTypedData_v4', ['<ADDR>', [1, 2]], /params\[1\]: expected the EIP-712 typed data/],
    ['signer_getKey', { keyId: 5 }, /keyId: expected a key id string, got a number/],
    ['signer_getKey', { keyId: '00000000-0000-4000-8000-000000000000' }, /keyId: no key with this id/],
    ['signer_getKey', { keyId: 'nope' }, /keyId: not a key id/],
    ['signer_getKey', { keyId: '../etc/passwd' }, /keyId: not a key id/],
    ['signer_getKey', [{ keyId: 'a' }, { keyId: 'b' }], /params: expected one object/],
    ['signer_createKey', { kind: 'ed25519' }, /kind: must be "secp256k1" or "bip32-seed"/],
    ['signer_createKey', { kind: 'secp256k1', colour: 'red' }, /colour: unknown field/],
    ['signer_createKey', { label: '\u0000' }, /label: contains control characters/],
    ['signer_signDigest', { keyId: '<KEY>', digest: `0x${'00'.repeat(31)}` }, /digest: expected 32 bytes, got 31/],
    ['signer_signDigest', { keyId: '<KEY>', digest: `0x${'00'.repeat(32)}`, path: 'm/0' }, /path: only bip32-seed keys/],
    ['signer_signDigest', { keyId: '<SEED>', digest: `0x${'00'.repeat(32)}` }, /path: required for bip32-seed keys/],
    ['signer_signDigest', { keyId: '<SEED>', digest: `0x${'00'.repeat(32)}`, path: 'x/1' }, /path: expected a derivation path/],
    ['signer_deriveKey', { keyId: '<KEY>', path: 'm/0' }, /keyId: signer_deriveKey needs a bip32-seed key/],
    ['signer_signPsbt', { keyId: '<SEED>', psbt: 'not base64!' }, /psbt: expected standard base64/],
    ['signer_signAuthorization', { chainId: 1, address: '<ADDR>', nonce: 0 }, /keyId: give exactly one of keyId or account/],
    ['signer_signAuthorization', { keyId: '<KEY>', address: '<ADDR>', nonce: 0 }, /chainId: required/],
    ['signer_attest', { nonce: '0x00' }, /nonce: expected at least 16 bytes/],
    ['signer_attest', {}, /nonce: required/],
    ['eth_accounts', [1], /params: expected 0 items/],
  ];
  for (const [method, params, want] of cases) {
    it(`${method} ${JSON.stringify(params).slice(0, 70)}`, async () => {
      const before = snapshotCalls();
      const p = JSON.parse(JSON.stringify(params).replaceAll('<ADDR>', address).replaceAll('<KEY>', keyId).replaceAll('<SEED>', seedId));
      const res = await rpc(r.socket, method, p);
      expect(res.error?.code).toBe(-32602);
      expect(res.error?.message).toMatch(want);
      expect(res.error?.data?.code).toBe('PARENT_INVALID_PARAMS');
      expect(snapshotCalls()).toBe(before); // caught before the enclave
    });
  }

  it('what only the enclave can judge comes back as -32602 with its message', async () => {
    const res = await rpc(r.socket, 'eth_signTransaction', [{ from: address, chainId: 1, nonce: 0, gas: '0x5208', gasPrice: '0x1', to: address, colour: 'red' }]);
    expect(res.error).toMatchObject({ code: -32602, message: expect.stringContaining('colour'), data: { code: 'SIGN_INVALID_PARAMS' } });
    const zero = await rpc(r.socket, 'eth_signTransaction', [{ from: address, chainId: 0, nonce: 0, gas: '0x5208', gasPrice: '0x1', to: address }]);
    expect(zero.error).toMatchObject({ code: -32602, message: expect.stringContaining('chainId') });
  });
});

describe('raw IPC on the same socket', () => {
  it('answers back-to-back values (viem style) and newline-separated ones (ethers style), each with one line', async () => {
    const a = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_accounts' });
    const b = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'signer_getKey', params: { keyId } });
    const { lines } = await ipcExchange(r.socket, `${a}${b}\n  \r\n${a.replace('"id":1', '"id":3')}\n`, 3);
    const byId = new Map(lines.map((l) => JSON.parse(l)).map((m) => [m.id, m]));
    expect(byId.get(1).result).toEqual([address]);
    expect(byId.get(2).result.keyId).toBe(keyId);
    expect(byId.get(3).result).toEqual([address]);
  });

  it('a value split across many writes is reassembled', async () => {
    const msg = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 'split', method: 'eth_accounts', params: [] }));
    const res = await new Promise<string>((resolve, reject) => {
      const s = connect({ path: r.socket });
      let out = '';
      s.on('data', (d) => {
        out += d.toString();
        if (out.endsWith('\n')) {
          s.destroy();
          resolve(out);
        }
      });
      s.on('error', reject);
      let i = 0;
      const drip = () => {
        if (i < msg.length) {
          s.write(msg.subarray(i, i + 3));
          i += 3;
          setTimeout(drip, 1);
        }
      };
      s.on('connect', drip);
    });
    expect(JSON.parse(res)).toEqual({ jsonrpc: '2.0', id: 'split', result: [address] });
  });

  it('batches, malformed values and unknown methods over IPC', async () => {
    const { lines } = await ipcExchange(
      r.socket,
      `[{"jsonrpc":"2.0","id":1,"method":"eth_accounts"},{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}]{"a":}{"jsonrpc":"2.0","id":3,"method":"eth_accounts"}`,
      3,
    );
    const parsed = lines.map((l) => JSON.parse(l));
    const batch = parsed.find((p) => Array.isArray(p));
    expect(batch).toEqual([
      { jsonrpc: '2.0', id: 1, result: [address] },
      { jsonrpc: '2.0', id: 2, error: { code: -32601, message: expect.any(String) } },
    ]);
    expect(parsed).toContainEqual({ jsonrpc: '2.0', id: null, error: { code: -32700, message: expect.any(String) } });
    expect(parsed).toContainEqual({ jsonrpc: '2.0', id: 3, result: [address] });
  });

  it('bytes that are not JSON get one parse error and the connection is closed', async () => {
    const { lines, closed } = await ipcExchange(r.socket, '{"jsonrpc":"2.0","id":1,"method":"eth_accounts"} hello', 2, 10_000, true);
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0]!).id).toBe(1);
    expect(JSON.parse(lines[1]!).error.code).toBe(-32700);
    expect(closed).toBe(true);
  });

  it('a message over 1 MiB gets an error and the connection is closed, without waiting for its end', async () => {
    const { lines, closed } = await ipcExchange(r.socket, `{"jsonrpc":"2.0","id":1,"method":"personal_sign","params":["0x${'00'.repeat(MiB)}`, 1, 10_000, true);
    expect(JSON.parse(lines[0]!).error).toMatchObject({ code: -32600, message: expect.stringContaining('larger than 1048576 bytes') });
    expect(closed).toBe(true);
    expect((await rpc(r.socket, 'eth_accounts')).result).toEqual([address]);
  });

  it('a connection that starts with neither HTTP nor JSON is answered with a parse error and closed', async () => {
    const { lines, closed } = await ipcExchange(r.socket, 'hello there\n', 1, 10_000, true);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!).error.code).toBe(-32700);
    expect(closed).toBe(true);
  });

  it('HTTP keep-alive with pipelined requests, and a request line split across writes', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_accounts' });
    const req = `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const out = await new Promise<string>((resolve, reject) => {
      const s = connect({ path: r.socket });
      let text = '';
      s.on('data', (d) => {
        text += d.toString();
        if ((text.match(/HTTP\/1\.1 200/g) ?? []).length === 3 && text.trimEnd().endsWith('}')) {
          s.destroy();
          resolve(text);
        }
      });
      s.on('error', reject);
      s.on('connect', () => {
        s.write('PO');
        setTimeout(() => s.write(`${req.slice(2)}${req}`), 20);
        setTimeout(() => s.write(req), 40);
      });
    });
    expect((out.match(/"result":\["0x[0-9a-fA-F]{40}"\]/g) ?? []).length).toBe(3);
  });
});
