/**
 * Bad input and bad days against the real appliance (`enclave-signer dev`
 * as a child process):
 *
 *   - malformed JSON, wrong JSON-RPC shapes, unknown methods, wrong param
 *     types, invalid hex, unknown key ids, oversized bodies — over HTTP and
 *     raw IPC on the same socket — get the documented error codes, and the
 *     stack keeps serving;
 *   - the enclave is SIGKILLed while requests are in flight: clients get a
 *     clear -32002, the dev supervisor restarts the enclave, the parent
 *     reconnects and re-attests, /readyz is 200 again and signing works;
 *   - the keystore is write-locked by another process, or opened read-only
 *     by a second parent: clear -32002 errors, signing goes on, nothing is lost;
 *   - no secret material in the dev process's output, in RPC answers, or in
 *     plaintext in the keystore's blobs.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { HDKey } from '@scure/bip32';
import * as btc from '@scure/btc-signer';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recoverAddress, type Hex } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_CREDENTIALS } from '../../dev/stack.js';
import { childProcesses } from '../../bench/proc.js';
import { call, httpUnix, ipcExchange, isAlive, rpc, startDevStack, startParentCli, waitFor, waitReady, type DevStack, type RpcAnswer } from './dev-stack.js';
import { storedRecords } from '../audit-chain.js';
import { within } from '../../parent/test-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'es-e2e-bad-'));
let stack: DevStack;
let address: Hex;
let keyId: string;
let seedId: string;
/** Every answer a createKey/listKeys/getKey gave, checked for blobs at the end. */
const keyAnswers: unknown[] = [];

beforeAll(async () => {
  stack = await startDevStack({ dataDir: join(dir, 'data') });
  const k = await call(stack.socket, 'signer_createKey', { label: 'e2e-bad' });
  const s = await call(stack.socket, 'signer_createKey', { kind: 'bip32-seed' });
  keyAnswers.push(k, s);
  ({ address, keyId } = k);
  seedId = s.keyId;
});
afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const MiB = 1024 * 1024;
const digest = (n: number) => `0x${n.toString(16).padStart(64, '0')}` as Hex;

async function post(body: string | Buffer, headers?: Record<string, string>): Promise<{ status: number; json: unknown }> {
  const r = await httpUnix(stack.socket, { body, ...(headers ? { headers } : {}) });
  return { status: r.status, json: r.body.trim().length > 0 ? JSON.parse(r.body) : undefined };
}

const req = (method: string, params?: unknown, id: unknown = 1) => JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });

/** The stack still answers, and still signs correctly. */
async function stillServing(): Promise<void> {
  expect((await httpUnix(stack.socket, { path: '/readyz' })).status).toBe(200);
  const d = digest(0xfeed);
  const sig = await call(stack.socket, 'signer_signDigest', { keyId, digest: d });
  expect(await recoverAddress({ hash: d, signature: sig.signature })).toBe(address);
  expect(isAlive(stack.pid)).toBe(true);
}

describe('envelope errors', () => {
  it('malformed JSON and invalid UTF-8: -32700 with id null (HTTP)', async () => {
    for (const body of ['{"jsonrpc":"2.0","id":1,"method":', '{"a":}', 'nul', '{"jsonrpc":"2.0",}', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])]) {
      const { status, json } = await post(body);
      expect(status).toBe(200);
      expect(json).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32700, message: expect.stringMatching(/^parse error/) } });
    }
  });

  it('raw IPC: a malformed value is -32700 and the connection keeps serving; non-JSON bytes get one error and a close', async () => {
    const { answers, closed } = await ipcExchange(stack.socket, `{"a":}\n${req('eth_accounts', [], 2)}\n`, 2);
    expect(answers).toEqual([
      { jsonrpc: '2.0', id: null, error: { code: -32700, message: expect.stringMatching(/^parse error/) } },
      { jsonrpc: '2.0', id: 2, result: [address] },
    ]);
    expect(closed).toBe(false);

    const garbage = await ipcExchange(stack.socket, 'hello signer\n', 1, 5_000, true);
    expect(garbage.answers).toEqual([{ jsonrpc: '2.0', id: null, error: { code: -32700, message: expect.stringMatching(/^parse error/) } }]);
    expect(garbage.closed).toBe(true);

    // In-sync bytes, then garbage between values: the value already read is answered, then one error and a close.
    const late = await ipcExchange(stack.socket, `${req('eth_accounts', [], 3)} xyz`, 2, 5_000, true);
    expect(late.answers).toContainEqual({ jsonrpc: '2.0', id: 3, result: [address] });
    expect(late.answers).toContainEqual({ jsonrpc: '2.0', id: null, error: { code: -32700, message: expect.stringMatching(/closing the connection/) } });
    expect(late.closed).toBe(true);
  });

  it('wrong JSON-RPC shapes: -32600, with the id when it could be read', async () => {
    const cases: [unknown, unknown][] = [
      [42, null],
      ['eth_accounts', null],
      [{}, null],
      [{ jsonrpc: '1.0', id: 3, method: 'eth_accounts' }, 3],
      [{ id: 4, method: 'eth_accounts' }, 4],
      [{ jsonrpc: '2.0', id: 5, method: 7 }, 5],
      [{ jsonrpc: '2.0', id: 6, method: 'eth_accounts', params: 'x' }, 6],
      [{ jsonrpc: '2.0', id: 7, method: 'eth_accounts', extra: 1 }, 7],
      [{ jsonrpc: '2.0', id: [1], method: 'eth_accounts' }, null],
    ];
    for (const [body, id] of cases) {
      const { json } = await post(JSON.stringify(body));
      expect(json, JSON.stringify(body)).toEqual({ jsonrpc: '2.0', id, error: { code: -32600, message: expect.stringMatching(/^invalid request/) } });
    }
    expect(await post('[]')).toMatchObject({ json: { error: { code: -32600 } } });
    const tooMany = Array.from({ length: 101 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'eth_accounts' }));
    expect(await post(JSON.stringify(tooMany))).toMatchObject({ json: { error: { code: -32600, message: expect.stringContaining('limit of 100') } } });
  });

  it('unknown methods: -32601 and never forwarded; an unknown notification gets no answer', async () => {
    for (const m of ['eth_sendTransaction', 'eth_chainId', 'eth_sendRawTransaction', 'signer_exportKey', 'admin_peers', '__proto__', 'constructor']) {
      const a = await rpc(stack.socket, m, []);
      expect(a.error, m).toMatchObject({ code: -32601, message: expect.stringContaining('method not found') });
    }
    const note = await httpUnix(stack.socket, { body: JSON.stringify({ jsonrpc: '2.0', method: 'eth_sendTransaction', params: [] }) });
    expect([note.status, note.body]).toEqual([204, '']);
  });

  it('HTTP: wrong content type 415, wrong verb 405, unknown path 404', async () => {
    expect((await httpUnix(stack.socket, { body: req('eth_accounts'), headers: { 'content-type': 'application/x-www-form-urlencoded' } })).status).toBe(415);
    expect((await httpUnix(stack.socket, { body: req('eth_accounts'), headers: { 'content-type': 'text/plain' } })).status).toBe(415);
    expect((await httpUnix(stack.socket, { method: 'GET', path: '/' })).status).toBe(405);
    expect((await httpUnix(stack.socket, { method: 'POST', path: '/readyz', body: '{}' })).status).toBe(405);
    expect((await httpUnix(stack.socket, { path: '/admin' })).status).toBe(404);
  });
});

describe('params', () => {
  /** -32602 naming the field: in data.field, for parent-side checks and enclave-side refusals alike. */
  const expectInvalid = (a: RpcAnswer, field: string | RegExp, code = 'PARENT_INVALID_PARAMS') => {
    expect(a.error, JSON.stringify(a)).toMatchObject({ code: -32602, message: expect.stringMatching(/^invalid params: /), data: { code } });
    const named = a.error!.data!.field ?? a.error!.message.replace(/^invalid params: /, '').split(':')[0];
    if (typeof field === 'string') expect(named).toBe(field);
    else expect(named).toMatch(field);
    if (code === 'PARENT_INVALID_PARAMS') expect(a.error!.data!.field).toBe(named);
  };

  it('wrong param types and shapes: -32602 naming the field', async () => {
    const s = stack.socket;
    expectInvalid(await rpc(s, 'signer_signDigest', { keyId, digest: 123 }), 'digest');
    expectInvalid(await rpc(s, 'signer_signDigest', { keyId: 7, digest: digest(1) }), 'keyId');
    expectInvalid(await rpc(s, 'signer_signDigest', { keyId, digest: digest(1), extra: true }), 'extra');
    expectInvalid(await rpc(s, 'signer_signDigest', [{ keyId, digest: digest(1) }, 'second']), 'params');
    expectInvalid(await rpc(s, 'signer_createKey', { kind: 'ed25519' }), 'kind');
    expectInvalid(await rpc(s, 'signer_createKey', { label: 'x'.repeat(129) }), 'label');
    expectInvalid(await rpc(s, 'eth_accounts', [1]), 'params');
    expectInvalid(await rpc(s, 'eth_signTransaction', ['0x']), 'params[0]');
    expectInvalid(await rpc(s, 'eth_signTypedData_v4', [address, '{not json']), 'params[1]');
    expectInvalid(await rpc(s, 'personal_sign', [address, 'hello']), 'params[1]'); // eth_sign order given to personal_sign
    expectInvalid(await rpc(s, 'signer_deriveKey', { keyId: seedId, path: "m/84'/0'/x" }), 'path');
    expectInvalid(await rpc(s, 'signer_signDigest', { keyId, digest: digest(1), path: 'm/0' }), 'path'); // plain keys take no path
    expectInvalid(await rpc(s, 'signer_signPsbt', { keyId, psbt: 'cHNidP8=' }), 'keyId'); // a secp256k1 key cannot sign PSBTs
  });

  it('invalid hex: -32602', async () => {
    const s = stack.socket;
    expectInvalid(await rpc(s, 'signer_signDigest', { keyId, digest: `0x${'zz'.repeat(32)}` }), 'digest');
    expectInvalid(await rpc(s, 'signer_signDigest', { keyId, digest: `0x${'a'.repeat(63)}` }), 'digest'); // odd length
    expectInvalid(await rpc(s, 'signer_signDigest', { keyId, digest: 'ab'.repeat(32) }), 'digest'); // no 0x
    expectInvalid(await rpc(s, 'signer_signDigest', { keyId, digest: `0x${'ab'.repeat(31)}` }), 'digest'); // 31 bytes
    expectInvalid(await rpc(s, 'eth_sign', [address, '0x123']), 'params[1]');
    expectInvalid(await rpc(s, 'personal_sign', ['0x68656c6c6f', `0x${'g'.repeat(40)}`]), 'params[1]');
    // A mixed-case address with a wrong EIP-55 checksum is refused, not normalised.
    const bad = address.slice(0, 2) + [...address.slice(2)].map((c) => (/[a-f]/.test(c) ? c.toUpperCase() : /[A-F]/.test(c) ? c.toLowerCase() : c)).join('');
    if (bad !== address.toLowerCase() && bad !== `0x${address.slice(2).toUpperCase()}`) expectInvalid(await rpc(s, 'personal_sign', ['0x68656c6c6f', bad]), 'params[1]');
  });

  it('unknown key ids and addresses: -32602', async () => {
    const s = stack.socket;
    expectInvalid(await rpc(s, 'signer_signDigest', { keyId: 'no-such-key', digest: digest(1) }), 'keyId');
    expectInvalid(await rpc(s, 'signer_getKey', { keyId: '00000000-0000-4000-8000-000000000000' }), 'keyId');
    expectInvalid(await rpc(s, 'signer_getKey', { keyId: '../../etc/passwd' }), 'keyId');
    expectInvalid(await rpc(s, 'personal_sign', ['0x68656c6c6f', '0x000000000000000000000000000000000000dEaD']), 'params[1]');
    expectInvalid(
      await rpc(s, 'eth_signTransaction', [{ from: '0x000000000000000000000000000000000000dEaD', to: address, chainId: '0x1', nonce: '0x0', gas: '0x5208', gasPrice: '0x1' }]),
      'from',
    );
  });

  it("the enclave's own validation reaches the client as -32602 with its code and field", async () => {
    const s = stack.socket;
    const tx = { from: address, to: address, chainId: '0x1', nonce: '0x0', gas: '0x5208', maxFeePerGas: '0x10', maxPriorityFeePerGas: '0x1' };
    expectInvalid(await rpc(s, 'eth_signTransaction', [{ ...tx, chainId: undefined }]), 'chainId'); // never defaulted
    expectInvalid(await rpc(s, 'eth_signTransaction', [{ ...tx, maxFeePerGass: '0x10' }]), /maxFeePerGass/, 'SIGN_INVALID_PARAMS'); // typo refused, not ignored
    expectInvalid(await rpc(s, 'eth_signTransaction', [{ ...tx, maxPriorityFeePerGas: '0x11' }]), /maxPriorityFeePerGas/, 'SIGN_INVALID_PARAMS');
    expectInvalid(await rpc(s, 'eth_signTransaction', [{ ...tx, value: '100' }]), 'value', 'SIGN_INVALID_PARAMS'); // decimal strings refused
    expectInvalid(await rpc(s, 'eth_signTransaction', [{ ...tx, type: '0x3', blobVersionedHashes: [`0x02${'11'.repeat(31)}`], maxFeePerBlobGas: '0x1' }]), /blobVersionedHashes/, 'SIGN_INVALID_PARAMS');

    // A PSBT with no input of ours; a PSBT naming our fingerprint with a key the path does not derive.
    const seed = (await call(s, 'signer_getKey', { keyId: seedId })) as { fingerprint: string };
    keyAnswers.push(seed);
    const other = secp256k1.getPublicKey(new Uint8Array(32).fill(9));
    const psbt = (fingerprint: number) => {
      const t = new btc.Transaction();
      t.addInput({
        txid: new Uint8Array(32).fill(1),
        index: 0,
        witnessUtxo: { script: btc.p2wpkh(other).script, amount: 10_000n },
        bip32Derivation: [[other, { fingerprint, path: btc.bip32Path("m/84'/0'/0'/0/0") }]],
      });
      t.addOutput({ script: btc.p2wpkh(other).script, amount: 9_000n });
      return Buffer.from(t.toPSBT()).toString('base64');
    };
    const notOurs = await rpc(s, 'signer_signPsbt', { keyId: seedId, psbt: psbt((parseInt(seed.fingerprint, 16) ^ 1) >>> 0) });
    expect(notOurs.error).toMatchObject({ code: -32602, data: { code: 'SIGN_PSBT_NOT_OURS' } });
    const mismatch = await rpc(s, 'signer_signPsbt', { keyId: seedId, psbt: psbt(parseInt(seed.fingerprint, 16)) });
    expect(mismatch.error).toMatchObject({ code: -32602, data: { code: 'SIGN_PSBT_DERIVATION_MISMATCH' } });
    expect((await rpc(s, 'signer_signPsbt', { keyId: seedId, psbt: 'bm90IGEgcHNidA==' })).error).toMatchObject({ code: -32602, message: expect.stringMatching(/PSBT/), data: { code: 'SIGN_PSBT_INVALID' } });
    expectInvalid(await rpc(s, 'signer_signPsbt', { keyId: seedId, psbt: '***' }), 'psbt');
  });

  // Known gap (reported): the enclave's SigningError.field does not cross the
  // bridge (common/bridge/peer.ts toWireError sends code, message, hint only)
  // and parent/rpc-errors.ts reads `field`/`hint` off the error object, not
  // off BridgeRemoteError.data — so enclave-side refusals lack data.field (and
  // data.hint). docs/signers.md promises the field. Flip to it() once fixed.
  it('enclave-side refusals carry data.field like parent-side ones', async () => {
    const tx = { from: address, to: address, chainId: '0x1', nonce: '0x0', gas: '0x5208', maxFeePerGas: '0x10', maxPriorityFeePerGas: '0x11' };
    const a = await rpc(stack.socket, 'eth_signTransaction', [tx]);
    expect(a.error).toMatchObject({ code: -32602, data: { code: 'SIGN_INVALID_PARAMS', field: 'maxPriorityFeePerGas' } });
  });

  it('error messages never echo what was sent', async () => {
    const marker = '0xc0ffee' + 'ab'.repeat(29);
    const answers = [
      await rpc(stack.socket, 'signer_signDigest', { keyId, digest: `${marker}zz` }),
      await rpc(stack.socket, 'eth_signTransaction', [{ from: address, to: address, chainId: '0x1', nonce: '0x0', gas: '0x5208', gasPrice: '0x1', data: `${marker}z` }]),
    ];
    for (const a of answers) {
      expect(a.error).toBeDefined();
      expect(JSON.stringify(a)).not.toContain('c0ffee');
    }
  });
});

describe('oversized input', () => {
  it('HTTP: a body over 1 MiB is 413 / -32600 (declared or streamed); the stack keeps serving', async () => {
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'personal_sign', params: ['a'.repeat(MiB + 10), address] });
    const r = await post(big);
    expect(r.status).toBe(413);
    expect(r.json).toMatchObject({ error: { code: -32600, message: expect.stringContaining('larger than 1048576') } });
    // Just under the cap passes the transport, then the method's own limit refuses it.
    const under = await post(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'personal_sign', params: ['a'.repeat(600 * 1024), address] }));
    expect(under.status).toBe(200);
    expect(under.json).toMatchObject({ error: { code: -32602 } });
    await stillServing();
  });

  it('IPC: a message over 1 MiB gets -32600 and the connection is closed; the stack keeps serving', async () => {
    const { answers, closed } = await ipcExchange(stack.socket, `{"jsonrpc":"2.0","id":1,"method":"personal_sign","params":["${'b'.repeat(MiB + 10)}"`, 1, 10_000, true);
    expect(answers).toEqual([{ jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.stringContaining('larger than 1048576') } }]);
    expect(closed).toBe(true);
    await stillServing();
  });
});

describe('keystore trouble', () => {
  // Issue 10 changed this test: "signing goes on" was the bug — a signature whose audit record
  // cannot be stored is withheld (docs/audit.md); signing resumes once the lock is gone.
  it('write-locked by another process: signer_createKey is a clear -32002, no signature is released unrecorded, nothing is lost', async () => {
    const before = await call(stack.socket, 'signer_listKeys', {});
    const db = new Database(join(stack.dataDir, 'keystore.sqlite'), { timeout: 0 });
    try {
      db.exec('BEGIN IMMEDIATE'); // holds the write lock (WAL: readers go on)
      const a = await rpc(stack.socket, 'signer_createKey', { label: 'while-locked' });
      expect(a.error).toMatchObject({ code: -32002, message: expect.stringContaining('keystore write failed'), data: { code: 'KEYSTORE_UNAVAILABLE', hint: expect.stringContaining('lock') } });
      // Reads do not need the write lock; a signature does (its audit record).
      expect(await call(stack.socket, 'signer_listKeys', {})).toEqual(before);
      const s = await rpc(stack.socket, 'signer_signDigest', { keyId, digest: digest(0xbeef) });
      expect(s.result).toBeUndefined();
      expect(s.error).toMatchObject({ code: -32002, message: expect.stringContaining('audit record could not be stored'), data: { code: 'PARENT_AUDIT_UNAVAILABLE', hint: expect.stringContaining('lock') } });
    } finally {
      db.exec('ROLLBACK');
      db.close();
    }
    await stillServing();
    const created = await call(stack.socket, 'signer_createKey', { label: 'after-lock' });
    keyAnswers.push(created);
    const after = await call(stack.socket, 'signer_listKeys', {});
    keyAnswers.push(after);
    expect(after).toEqual([...before, created]); // nothing lost, and no half-stored key from the failed call
  });

  // Issue 10 changed this test: a read-only keystore cannot hold audit records, so it no longer releases signatures.
  it('opened read-only by a second parent (`enclave-signer parent --keystore-readonly`) on the same enclave: serves reads, refuses new keys and signatures with -32002', async () => {
    const creds = join(dir, 'creds.json');
    writeFileSync(creds, JSON.stringify(DEV_CREDENTIALS), { mode: 0o600 });
    const ro = await startParentCli(stack, {
      enclave: `unix:${join(stack.dataDir, 'run', 'enclave.sock')}`,
      socket: join(dir, 'ro.sock'),
      keystore: join(stack.dataDir, 'keystore.sqlite'),
      credentialsFile: creds,
      extra: ['--keystore-readonly'],
    });
    try {
      await waitReady(ro.socket, 20_000);
      const a = await rpc(ro.socket, 'signer_createKey', {});
      expect(a.error).toMatchObject({ code: -32002, message: expect.stringContaining('read-only'), data: { code: 'KEYSTORE_UNAVAILABLE', hint: expect.any(String) } });
      expect(await call(ro.socket, 'eth_accounts', [])).toEqual(await call(stack.socket, 'eth_accounts', []));
      const sig = await rpc(ro.socket, 'signer_signDigest', { keyId, digest: digest(0xabc) });
      expect(sig.result).toBeUndefined();
      expect(sig.error).toMatchObject({ code: -32002, message: expect.stringContaining('audit record could not be stored'), data: { code: 'PARENT_AUDIT_UNAVAILABLE' } });
    } finally {
      expect(await ro.stop()).toEqual({ code: 0, signal: null });
    }
    expect(ro.output()).toMatch(/enclave gate: ready/);
    expect(ro.output()).not.toContain(DEV_CREDENTIALS.secretAccessKey);
    await stillServing(); // the dev parent was not disturbed
  });
});

describe('enclave killed mid-request', () => {
  it('in-flight requests fail with a clear -32002; the supervisor restarts the enclave; the parent re-attests; signing works again', async () => {
    const s = stack.socket;
    const before = await call(s, 'signer_status', {});
    expect(before.ready).toBe(true);
    const oldPid = childProcesses(stack.pid).find((p) => / enclave /.test(p.cmdline))?.pid;
    expect(oldPid).toBeDefined();

    // A slow batch over HTTP and a stream of single requests over IPC. The IPC
    // answers arrive one by one: the first few prove the work is under way.
    const batch = Array.from({ length: 100 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'signer_signDigest', params: { keyId, digest: digest(i + 1) } }));
    const batchDone = httpUnix(s, { body: JSON.stringify(batch) });
    const stream = Array.from({ length: 150 }, (_, i) => req('signer_signDigest', { keyId, digest: digest(1000 + i) }, 1000 + i)).join('\n');
    const ipcAnswers: { id: number; result?: { signature: Hex }; error?: { code: number; message: string; data?: { code?: string } } }[] = [];
    // The enclave is killed in the same turn as the fifth IPC answer arrives, not after a timer: on
    // a loaded box a polling timer ran late enough for all 250 signatures to finish first (CI,
    // session 17), and then nothing was in flight to fail.
    let answeredAtKill: number | undefined;
    let killed: () => void = () => {};
    const killedNow = new Promise<void>((r) => (killed = r));
    const ipcDone = new Promise<void>((resolve, reject) => {
      import('node:net').then(({ connect }) => {
        const sock = connect(s);
        let buf = '';
        sock.setEncoding('utf8');
        sock.on('data', (chunk: string) => {
          buf += chunk;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            ipcAnswers.push(JSON.parse(buf.slice(0, i)));
            buf = buf.slice(i + 1);
          }
          if (answeredAtKill === undefined && ipcAnswers.length >= 5) {
            answeredAtKill = ipcAnswers.length;
            process.kill(oldPid!, 'SIGKILL');
            killed();
          }
          if (ipcAnswers.length === 150) {
            sock.end();
            resolve();
          }
        });
        sock.on('error', reject);
        sock.write(`${stream}\n`);
      }, reject);
    });
    expect((await within(killedNow, 10_000)).a).not.toBe('hung'); // five signatures within 10 s
    expect(answeredAtKill).toBeLessThan(150);

    const batchAnswer = await batchDone;
    await ipcDone;
    const batchItems = JSON.parse(batchAnswer.body) as typeof ipcAnswers;
    expect(batchItems).toHaveLength(100);
    const all = [...batchItems, ...ipcAnswers];
    const failed = all.filter((a) => a.error);
    const ok = all.filter((a) => a.result);
    expect(failed.length).toBeGreaterThan(0);
    expect(ok.length + failed.length).toBe(250);
    for (const f of failed) {
      // Lost in flight (PARENT_ENCLAVE_UNAVAILABLE) or sent after the loss (PARENT_NOT_ATTESTED): both -32002, both say why.
      expect(f.error).toMatchObject({ code: -32002, message: expect.stringMatching(/enclave (unavailable|not attested)/), data: { code: expect.stringMatching(/^PARENT_(ENCLAVE_UNAVAILABLE|NOT_ATTESTED)$/) } });
    }
    expect(failed.some((f) => f.error!.data!.code === 'PARENT_ENCLAVE_UNAVAILABLE')).toBe(true);
    // Whatever was answered before the kill is a valid signature.
    for (const a of ok.slice(0, 20)) {
      const id = a.id;
      expect(await recoverAddress({ hash: digest(id < 1000 ? id + 1 : id), signature: a.result!.signature })).toBe(address);
    }

    // The supervisor starts a new enclave; the parent reconnects, re-attests, unlocks the keyring.
    const newPid = await waitFor('a new enclave process', async () => childProcesses(stack.pid).find((p) => / enclave /.test(p.cmdline) && p.pid !== oldPid)?.pid, 20_000);
    expect(isAlive(oldPid!)).toBe(false);
    expect(newPid).not.toBe(oldPid);
    const ready = await waitReady(s, 30_000);
    expect(ready).toMatchObject({ ready: true, gate: { state: 'ready' }, keyring: { state: 'unlocked', keyringId: before.keyring.keyringId } });
    const after = await call(s, 'signer_status', {});
    expect(after.reconnects).toBeGreaterThanOrEqual(1);
    expect(after.lastFailure).toMatchObject({ reason: expect.stringMatching(/connection lost|cannot connect/) });
    await stillServing();
    // Same keys after the restart: the new enclave unwrapped them with the same keyring.
    const d = digest(0x5151);
    expect(await recoverAddress({ hash: d, signature: (await call(s, 'signer_signDigest', { keyId, digest: d })).signature })).toBe(address);
    const metrics = (await httpUnix(s, { path: '/metrics' })).body;
    expect(metrics).toMatch(/enclave_signer_parent_enclave_reconnects_total [1-9]/);
    expect(metrics).toMatch(/enclave_signer_parent_requests_total\{method="signer_signDigest",outcome="unavailable"\} [1-9]/);
  });
});

describe('no secret material', () => {
  it('key answers carry public data only: no blob, no private key, no xprv', async () => {
    keyAnswers.push(await call(stack.socket, 'signer_listKeys', {}), await call(stack.socket, 'signer_getKey', { keyId }));
    const text = JSON.stringify(keyAnswers);
    expect(text).not.toMatch(/"(blob|privateKey|secret|seed|xprv)"/i);
    expect(text).not.toMatch(/[xt]prv[1-9A-HJ-NP-Za-km-z]{20,}/);
    for (const k of (await call(stack.socket, 'signer_listKeys', {})) as Record<string, unknown>[]) {
      expect(Object.keys(k).sort()).toEqual(expect.arrayContaining(['keyId', 'kind', 'keyringId', 'publicKey', 'label', 'createdAt']));
      expect(k).not.toHaveProperty('blob');
    }
  });

  /** True when some 32-byte window of `blob` is the secret behind `publicKey` (secp256k1) or `xpub` (BIP32 seed). */
  function blobHoldsSecret(blob: Uint8Array, kind: string, publicKey: string, xpub: string | null): boolean {
    const N = secp256k1.Point.Fn.ORDER;
    for (let i = 0; i + 32 <= blob.length; i++) {
      const w = blob.slice(i, i + 32);
      if (kind === 'secp256k1') {
        const v = BigInt(`0x${Buffer.from(w).toString('hex')}`);
        if (v > 0n && v < N && Buffer.from(secp256k1.getPublicKey(w, true)).toString('hex') === publicKey.replace(/^0x/, '')) return true;
      } else if (HDKey.fromMasterSeed(w).publicExtendedKey === xpub) return true;
    }
    return false;
  }

  it('the keystore holds no plaintext key: no 32-byte window of any blob is the secret of its public key', async () => {
    const db = new Database(join(stack.dataDir, 'keystore.sqlite'), { readonly: true });
    let rows: { kind: string; public_key: string; xpub: string | null; blob: Buffer }[];
    try {
      rows = db.prepare('SELECT kind, public_key, xpub, blob FROM keys').all() as typeof rows;
    } finally {
      db.close();
    }
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(new Set(rows.map((r) => r.kind))).toEqual(new Set(['secp256k1', 'bip32-seed']));
    for (const r of rows) {
      expect(r.blob.length).toBeGreaterThan(32 + 16); // an AEAD envelope, not a bare key
      expect(blobHoldsSecret(new Uint8Array(r.blob), r.kind, r.public_key, r.xpub)).toBe(false);
    }
    // The scan can fail: a secret or seed stored in the clear, anywhere in a blob, is found.
    const sk = secp256k1.utils.randomSecretKey();
    const leaky = new Uint8Array([...new Uint8Array(7), ...sk, ...new Uint8Array(9)]);
    expect(blobHoldsSecret(leaky, 'secp256k1', Buffer.from(secp256k1.getPublicKey(sk, true)).toString('hex'), null)).toBe(true);
    const seed = new Uint8Array(32).fill(3);
    expect(blobHoldsSecret(new Uint8Array([1, 2, ...seed, 4]), 'bip32-seed', '', HDKey.fromMasterSeed(seed).publicExtendedKey)).toBe(true);
  });

  it("the dev process's stdout/stderr carry no private keys, seeds or credentials; it stops cleanly", async () => {
    const exit = await stack.stop();
    expect(exit).toEqual({ code: 0, signal: null });
    const { stdout, stderr } = stack.output();
    const all = `${stdout}\n${stderr}`;
    // stdout is exactly the one endpoints line (the enclave's stdout is inherited, and says nothing).
    expect(stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(stdout)).toMatchObject({ socket: expect.any(String), dataDir: stack.dataDir });
    expect(all).not.toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
    expect(all).not.toMatch(/\b(secret|seed|private|priv|mnemonic|data ?key|plaintext)\w*["']?\s*[:=]\s*["']?(0x)?[0-9a-fA-F]{64}/i);
    expect(all).not.toMatch(/[xt]prv[1-9A-HJ-NP-Za-km-z]{20,}/);
    expect(all).not.toContain(DEV_CREDENTIALS.secretAccessKey);
    // What was signed is not logged either; the decision is in the audit chain, which holds
    // digests, ids and public keys only.
    expect(all).not.toContain(digest(0xfeed).slice(2));
    const signed = storedRecords(join(stack.dataDir, 'keystore.sqlite')).filter((r) => r.kind === 'sign' && r.op === 'signer_signDigest' && r.decision === 'allowed');
    expect(signed.length).toBeGreaterThan(0);
    // The story of the kill is in the log, one line per event.
    expect(all).toMatch(/enclave exited \(SIGKILL\); restarting/);
    expect(all).toMatch(/enclave gate: ready/);
  });
});
