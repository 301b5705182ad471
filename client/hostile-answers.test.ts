/**
 * Review of what client/ accepts from the parent (the hostile host answers).
 * test/hostile-host/adapter-answers.test.ts covers another recipient, value,
 * nonce, chain, key and message; this file covers what that left open:
 *
 * - transaction fields the adapters did not compare: the type, the access
 *   list, an EIP-7702 authorization list (a delegation of the EOA to a
 *   contract), blob hashes;
 * - answers of the wrong JSON type (ethers' Transaction.from and
 *   Signature.from, and viem's recover functions, accept objects) that the
 *   adapters returned to the caller as if they were hex strings;
 * - the HTTP transports: an unbounded body over `url`, a body dripped past
 *   the deadline over HTTP-on-Unix, an answer with another request's id;
 * - the bitcoin helper: a PSBT answered with the same unsigned transaction
 *   but with other fields (amounts, a host-made final witness, signatures
 *   that do not verify for our key).
 *
 * The stand-in host holds the "enclave" key (a throwaway local viem account),
 * so its answers are genuine signatures by the right key.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HDKey } from '@scure/bip32';
import * as btc from '@scure/btc-signer';
import { Transaction } from 'ethers';
import { type Hex, toHex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPsbt, REGTEST, signPsbt, type BitcoinAccount } from './bitcoin.js';
import { createSignerClient } from './client.js';
import { EnclaveSignerConnectionError } from './errors.js';
import { EnclaveSigner } from './ethers.js';
import { enclaveAccount } from './viem.js';

const KEY = privateKeyToAccount(`0x${'11'.repeat(32)}`);
const TO = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8' as const;
const ATTACKER = '0x000000000000000000000000000000000000bad1' as const;

let dir: string;
let socket: string;
let server: Server;
const conns = new Set<Socket>();
/** How the hostile host answers one IPC request: the whole response line (without the newline). */
let answerLine: (req: { id: unknown; method: string; params: unknown }) => Promise<string>;
const result = (id: unknown, r: unknown) => JSON.stringify({ jsonrpc: '2.0', id, result: r });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'es-client-hostile-'));
  socket = join(dir, 's.sock');
  server = createServer((s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    let buf = '';
    s.setEncoding('utf8').on('data', async (c: string) => {
      buf += c;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const req = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        s.write(`${await answerLine(req)}\n`);
      }
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
});
afterAll(async () => {
  for (const c of conns) c.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

const FEES = { chainId: 1, to: TO, value: 5n, nonce: 3, gas: 60_000n, maxFeePerGas: 10n, maxPriorityFeePerGas: 1n } as const;
const ETHERS_FEES = { chainId: 1, to: TO, value: 5n, nonce: 3, gasLimit: 60_000n, maxFeePerGas: 10n, maxPriorityFeePerGas: 1n, type: 2 } as const;

/** Answers eth_signTransaction with `sign()` (a transaction the right key really signed). */
function answerTx(sign: () => Promise<Hex> | Hex) {
  answerLine = async (req) => result(req.id, await sign());
}

async function viemRefuses(tx: Record<string, unknown>) {
  const e = await enclaveAccount({ socket, address: KEY.address })
    .signTransaction(tx as never)
    .catch((x: unknown) => x);
  expect(e, typeof e === 'string' ? `accepted ${e.slice(0, 12)}…` : undefined).toMatchObject({ data: { code: 'CLIENT_ANSWER_MISMATCH' } });
}
async function ethersRefuses(tx: Record<string, unknown>) {
  const e = await new EnclaveSigner({ socket, address: KEY.address }).signTransaction(tx).catch((x: unknown) => x);
  expect(e, typeof e === 'string' ? `accepted ${e.slice(0, 12)}…` : undefined).toMatchObject({ error: { data: { code: 'CLIENT_ANSWER_MISMATCH' } } });
}

describe('hostile host: transaction fields the adapters did not compare', () => {
  it('an EIP-1559 request answered with an EIP-7702 transaction (same fields, plus a delegation of the EOA to a host contract) is refused', async () => {
    const delegation = await KEY.signAuthorization({ address: ATTACKER, chainId: 1, nonce: 4 });
    answerTx(() => KEY.signTransaction({ ...FEES, type: 'eip7702', authorizationList: [delegation] }));
    await viemRefuses({ ...FEES, type: 'eip1559' });
    await ethersRefuses(ETHERS_FEES);
  });

  it('an EIP-7702 request answered with another authorization list (delegation to the host contract) is refused', async () => {
    const mine = await KEY.signAuthorization({ address: TO, chainId: 1, nonce: 4 });
    const theirs = await KEY.signAuthorization({ address: ATTACKER, chainId: 1, nonce: 4 });
    answerTx(() => KEY.signTransaction({ ...FEES, type: 'eip7702', authorizationList: [theirs] }));
    await viemRefuses({ ...FEES, type: 'eip7702', authorizationList: [mine] });
  });

  it('an access list the request did not have is refused', async () => {
    answerTx(() => KEY.signTransaction({ ...FEES, type: 'eip1559', accessList: [{ address: ATTACKER, storageKeys: [toHex(1, { size: 32 })] }] }));
    await viemRefuses({ ...FEES, type: 'eip1559' });
    await ethersRefuses(ETHERS_FEES);
  });

  it('another transaction type with the same fields (a legacy request answered as EIP-2930, an EIP-1559 one as a blob transaction) is refused', async () => {
    const legacy = { chainId: 1, to: TO, value: 5n, nonce: 3, gas: 60_000n, gasPrice: 7n } as const;
    answerTx(() => KEY.signTransaction({ ...legacy, type: 'eip2930', accessList: [] }));
    await viemRefuses({ ...legacy, type: 'legacy' });
    await ethersRefuses({ chainId: 1, to: TO, value: 5n, nonce: 3, gasLimit: 60_000n, gasPrice: 7n, type: 0 });
    answerTx(() => KEY.signTransaction({ ...FEES, type: 'eip4844', maxFeePerBlobGas: 1n, blobVersionedHashes: [`0x01${'ab'.repeat(31)}`] }));
    await viemRefuses({ ...FEES, type: 'eip1559' });
    await ethersRefuses(ETHERS_FEES);
  });

  it('the honest answers pass (type, access list and authorization list as asked)', async () => {
    const accessList = [{ address: TO, storageKeys: [toHex(1, { size: 32 })] }];
    answerTx(() => KEY.signTransaction({ ...FEES, type: 'eip1559', accessList }));
    expect(await enclaveAccount({ socket, address: KEY.address }).signTransaction({ ...FEES, type: 'eip1559', accessList })).toMatch(/^0x02/);
    expect(await new EnclaveSigner({ socket, address: KEY.address }).signTransaction({ ...ETHERS_FEES, accessList })).toMatch(/^0x02/);
    answerTx(() => KEY.signTransaction({ ...FEES, type: 'eip1559' }));
    expect(await enclaveAccount({ socket, address: KEY.address }).signTransaction({ ...FEES, type: 'eip1559' })).toMatch(/^0x02/);
    expect(await new EnclaveSigner({ socket, address: KEY.address }).signTransaction(ETHERS_FEES)).toMatch(/^0x02/);
    // ethers' populated transaction (AbstractSigner.sendTransaction hands over an ethers Transaction, empty access list).
    expect(await new EnclaveSigner({ socket, address: KEY.address }).signTransaction(Transaction.from({ ...ETHERS_FEES, accessList: [] }))).toMatch(/^0x02/);
    const mine = await KEY.signAuthorization({ address: TO, chainId: 1, nonce: 4 });
    answerTx(() => KEY.signTransaction({ ...FEES, type: 'eip7702', authorizationList: [mine] }));
    expect(await enclaveAccount({ socket, address: KEY.address }).signTransaction({ ...FEES, type: 'eip7702', authorizationList: [mine] })).toMatch(/^0x04/);
    const legacy = { chainId: 1, to: TO, value: 5n, nonce: 3, gas: 60_000n, gasPrice: 7n } as const;
    answerTx(() => KEY.signTransaction({ ...legacy, type: 'legacy' }));
    expect(await enclaveAccount({ socket, address: KEY.address }).signTransaction({ ...legacy, type: 'legacy' })).toMatch(/^0xf8/);
    // No type asked: whatever type the enclave picks for these fields is fine.
    expect(await enclaveAccount({ socket, address: KEY.address }).signTransaction({ ...legacy } as never)).toMatch(/^0xf8/);
  });
});

describe('hostile host: answers of the wrong JSON type', () => {
  it('ethers signTransaction answered with a transaction object (genuinely signed) is refused, not returned as the "raw transaction"', async () => {
    const raw = await KEY.signTransaction({ ...FEES, type: 'eip1559' });
    const { sig, ...fields } = JSON.parse(JSON.stringify(Transaction.from(raw).toJSON()));
    const object = { ...fields, signature: sig };
    expect(Transaction.from(object).from).toBe(KEY.address); // a genuinely signed transaction, as an object
    answerLine = async (req) => result(req.id, object);
    await ethersRefuses(ETHERS_FEES);
  });

  it('a message signature answered as an {r, s, v} object is refused by both adapters', async () => {
    const sig = await KEY.signMessage({ message: 'pay 1' });
    const r = `0x${sig.slice(2, 66)}`;
    const s = `0x${sig.slice(66, 130)}`;
    const v = Number.parseInt(sig.slice(130), 16);
    answerLine = async (req) => result(req.id, { r, s, v, yParity: v - 27 });
    const ev = await enclaveAccount({ socket, address: KEY.address }).signMessage({ message: 'pay 1' }).catch((x: unknown) => x);
    expect(ev, typeof ev === 'object' && ev !== null && !(ev instanceof Error) ? 'accepted an object' : undefined).toMatchObject({ data: { code: 'CLIENT_ANSWER_MISMATCH' } });
    const ee = await new EnclaveSigner({ socket, address: KEY.address }).signMessage('pay 1').catch((x: unknown) => x);
    expect(ee, typeof ee === 'object' && ee !== null && !(ee instanceof Error) ? 'accepted an object' : undefined).toMatchObject({ error: { data: { code: 'CLIENT_ANSWER_MISMATCH' } } });
  });
});

describe('hostile host: the HTTP transports', () => {
  it('over url, an endless body is cut at the answer limit (not read into memory)', async () => {
    let written = 0;
    let closed = false;
    const http: HttpServer = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"jsonrpc":"2.0","id":"x","result":"');
      const chunk = 'a'.repeat(1 << 20);
      const pump = () => {
        while (!closed && written < 40 * (1 << 20)) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end('"}');
      };
      res.on('close', () => (closed = true));
      pump();
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const { port } = http.address() as { port: number };
    try {
      const client = createSignerClient({ url: `http://127.0.0.1:${port}`, retries: 0, timeoutMs: 20_000 });
      const e = await client.signTransaction({ from: KEY.address }).catch((x: unknown) => x);
      expect(typeof e === 'string' ? `a ${e.length >> 20} MiB answer` : e).toBeInstanceOf(EnclaveSignerConnectionError);
      expect(written, `the client read ${written >> 20} MiB`).toBeLessThan(32 * (1 << 20));
    } finally {
      closed = true;
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    }
  });

  it('over HTTP on the Unix socket, a body dripped slowly does not outlast timeoutMs', async () => {
    const path = join(dir, 'drip.sock');
    const timers = new Set<NodeJS.Timeout>();
    const http: HttpServer = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      const t = setInterval(() => res.write(' '), 100);
      timers.add(t);
      res.on('close', () => clearInterval(t));
    });
    await new Promise<void>((r) => http.listen(path, r));
    try {
      const client = createSignerClient({ socket: path, transport: 'http', retries: 0, timeoutMs: 500 });
      const t0 = Date.now();
      const e = await Promise.race([client.signTransaction({ from: KEY.address }).catch((x: unknown) => x), new Promise((r) => setTimeout(() => r('still waiting'), 3000))]);
      expect(e).toBeInstanceOf(EnclaveSignerConnectionError);
      expect(Date.now() - t0).toBeLessThan(2000);
    } finally {
      for (const t of timers) clearInterval(t);
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    }
  });

  it('an HTTP answer that names another request id is refused', async () => {
    const path = join(dir, 'id.sock');
    const sig = await KEY.signMessage({ message: 'pay 1' });
    const http: HttpServer = createHttpServer((req, res) => {
      req.resume();
      res.end(JSON.stringify({ jsonrpc: '2.0', id: 'someone-else-7', result: sig }));
    });
    await new Promise<void>((r) => http.listen(path, r));
    try {
      const client = createSignerClient({ socket: path, transport: 'http', retries: 0 });
      await expect(client.personalSign(KEY.address, 'pay 1')).rejects.toBeInstanceOf(EnclaveSignerConnectionError);
    } finally {
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    }
  });

  it('sound: IPC answers in a reordered batch line go to the right requests', async () => {
    const held: { id: unknown; params: unknown }[] = [];
    answerLine = async (req) => {
      held.push(req);
      if (held.length < 2) return '';
      const batch = held.reverse().map((q) => ({ jsonrpc: '2.0', id: q.id, result: `echo:${(q.params as string[])[0]}` }));
      return JSON.stringify(batch);
    };
    const client = createSignerClient({ socket });
    try {
      const [a, b] = await Promise.all([client.personalSign(KEY.address, 'first'), client.personalSign(KEY.address, 'second')]);
      expect([a, b]).toEqual(['echo:first', 'echo:second']);
    } finally {
      client.close();
    }
  });
});

describe('hostile host: the bitcoin helper', () => {
  const seed = HDKey.fromMasterSeed(new Uint8Array(32).fill(9));
  const accountNode = seed.derive("m/84'/1'/0'");
  const account: BitcoinAccount = { xpub: accountNode.publicExtendedKey, path: "m/84'/1'/0'", masterFingerprint: seed.fingerprint.toString(16).padStart(8, '0') };
  const child = accountNode.derive('m/0/0');
  const me = btc.p2wpkh(child.publicKey!, REGTEST);
  const other = new Uint8Array(32).fill(7);
  const unsigned = () =>
    buildPsbt({ network: REGTEST, utxos: [{ txid: 'aa'.repeat(32), vout: 0, amount: 100_000n, type: 'p2wpkh', account, path: '0/0' }], outputs: [{ address: me.address!, amount: 99_000n }] });
  const client = () => createSignerClient({ socket });
  /** The honest enclave: signs the PSBT it was sent with the child key. */
  const honest = (psbtB64: string) => {
    const tx = btc.Transaction.fromPSBT(Buffer.from(psbtB64, 'base64'));
    tx.signIdx(child.privateKey!, 0);
    return tx;
  };

  it('a PSBT with the right unsigned transaction but a signature by another key is refused', async () => {
    answerLine = async (req) => {
      const tx = btc.Transaction.fromPSBT(Buffer.from((req.params as { psbt: string }).psbt, 'base64'));
      // The host's key, under our public key's entry: finalizes, and the network refuses it.
      const fake = btc.Transaction.fromPSBT(tx.toPSBT());
      fake.updateInput(0, { partialSig: [[child.publicKey!, new Uint8Array([...(await forgeDer(other, tx)), 1])]] });
      return result(req.id, { psbt: Buffer.from(fake.toPSBT()).toString('base64') });
    };
    const c = client();
    try {
      await expect(signPsbt(c, 'k', unsigned())).rejects.toThrow(/CLIENT_ANSWER_MISMATCH/);
    } finally {
      c.close();
    }
  });

  it('what the host changed in a PSBT besides the signature (an input amount, a final witness of its own) is never used', async () => {
    for (const edit of ['amount', 'final'] as const) {
      answerLine = async (req) => {
        const tx = honest((req.params as { psbt: string }).psbt);
        if (edit === 'amount') tx.updateInput(0, { witnessUtxo: { script: me.script, amount: 1n } }, true);
        else tx.updateInput(0, { finalScriptWitness: [new Uint8Array(71), child.publicKey!] }, true);
        return result(req.id, { psbt: Buffer.from(tx.toPSBT()).toString('base64') });
      };
      const c = client();
      try {
        const signed = btc.Transaction.fromPSBT(await signPsbt(c, 'k', unsigned()));
        expect(signed.getInput(0).witnessUtxo?.amount, edit).toBe(100_000n);
        expect(signed.getInput(0).finalScriptWitness, edit).toBeUndefined();
        expect(signed.getInput(0).partialSig?.length, edit).toBe(1);
      } finally {
        c.close();
      }
    }
  });

  it('a PSBT whose signature does not verify for this transaction (made over another amount) is refused', async () => {
    answerLine = async (req) => {
      const tx = btc.Transaction.fromPSBT(Buffer.from((req.params as { psbt: string }).psbt, 'base64'));
      tx.updateInput(0, { witnessUtxo: { script: me.script, amount: 1n } }, true);
      tx.signIdx(child.privateKey!, 0);
      return result(req.id, { psbt: Buffer.from(tx.toPSBT()).toString('base64') });
    };
    const c = client();
    try {
      await expect(signPsbt(c, 'k', unsigned())).rejects.toMatchObject({ data: { code: 'CLIENT_ANSWER_MISMATCH' } });
    } finally {
      c.close();
    }
  });

  it('P2TR: a key-path signature by another key is refused; the honest one passes and finalizes', async () => {
    const trNode = seed.derive("m/86'/1'/0'");
    const tr: BitcoinAccount = { xpub: trNode.publicExtendedKey, path: "m/86'/1'/0'", masterFingerprint: account.masterFingerprint };
    const trChild = trNode.derive('m/0/0');
    const trPsbt = () =>
      buildPsbt({
        network: REGTEST,
        utxos: [
          { txid: 'bb'.repeat(32), vout: 1, amount: 50_000n, type: 'p2tr', account: tr, path: '0/0' },
          { txid: 'aa'.repeat(32), vout: 0, amount: 100_000n, type: 'p2wpkh', account, path: '0/0' },
        ],
        outputs: [{ address: me.address!, amount: 149_000n }],
      });
    const { schnorr } = await import('@noble/curves/secp256k1.js');
    for (const forged of [true, false]) {
      answerLine = async (req) => {
        const tx = btc.Transaction.fromPSBT(Buffer.from((req.params as { psbt: string }).psbt, 'base64'));
        tx.signIdx(trChild.privateKey!, 0);
        tx.signIdx(child.privateKey!, 1);
        if (forged) {
          const digest = tx.preimageWitnessV1(0, [0, 1].map((j) => tx.getInput(j).witnessUtxo!.script), 0, [50_000n, 100_000n]);
          tx.updateInput(0, { tapKeySig: schnorr.sign(digest, other) }, true);
        }
        return result(req.id, { psbt: Buffer.from(tx.toPSBT()).toString('base64') });
      };
      const c = client();
      try {
        if (forged) await expect(signPsbt(c, 'k', trPsbt())).rejects.toMatchObject({ data: { code: 'CLIENT_ANSWER_MISMATCH' } });
        else {
          const tx = btc.Transaction.fromPSBT(await signPsbt(c, 'k', trPsbt()));
          tx.finalize();
          expect(tx.extract().length).toBeGreaterThan(100);
        }
      } finally {
        c.close();
      }
    }
  });

  it('the honest answer passes and finalizes', async () => {
    answerLine = async (req) => result(req.id, { psbt: Buffer.from(honest((req.params as { psbt: string }).psbt).toPSBT()).toString('base64') });
    const c = client();
    try {
      const signed = await signPsbt(c, 'k', unsigned());
      const tx = btc.Transaction.fromPSBT(signed);
      tx.finalize();
      expect(tx.extract().length).toBeGreaterThan(100);
    } finally {
      c.close();
    }
  });
});

/** A DER ECDSA signature by `priv` over this input's real sighash (valid, but by the wrong key). */
async function forgeDer(priv: Uint8Array, tx: btc.Transaction): Promise<Uint8Array> {
  const { secp256k1 } = await import('@noble/curves/secp256k1.js');
  const inp = tx.getInput(0);
  const script = btc.OutScript.encode({ type: 'pkh', hash: (btc.OutScript.decode(inp.witnessUtxo!.script) as { hash: Uint8Array }).hash });
  const h = (tx as unknown as { preimageWitnessV0(i: number, s: Uint8Array, t: number, a: bigint): Uint8Array }).preimageWitnessV0(0, script, 1, inp.witnessUtxo!.amount);
  return secp256k1.sign(h, priv, { prehash: false, format: 'der' } as never) as Uint8Array;
}


describe('design gap (reported, not fixed here): a refusal the host forges makes the client send a second, fresh envelope', () => {
  // The client re-signs a signing request after a 4100 AUTH_BEFORE_RESTART (and, with sessions,
  // re-sends it under a new session after AUTH_SESSION_UNKNOWN / _EXPIRED) because "the enclave
  // refused it before doing anything". The refusal comes through the host: it can forward the
  // first envelope to the enclave, keep the result, forge the refusal, and forward the second
  // one too. Both are distinct, valid envelopes (new request id), so the replay cache does not
  // stop the second execution: one client call, two enclave executions (two keys for
  // signer_createKey, a window counted twice). Fixing it needs enclave-authenticated refusals or
  // an idempotency key the enclave honours: a design change. it.fails flips when that lands.
  it.fails('one client call yields at most one envelope the enclave would accept', async () => {
    const { testPrincipals } = await import('../enclave/auth/test-helpers.js');
    const { RequestVerifier } = await import('../enclave/auth/verify-request.js');
    const { standInSigner, POLICY_HASH } = await import('./signer-test-helpers.js');
    const { keys, registry } = testPrincipals();
    const now = () => Math.floor(Date.now() / 1000);
    const stand = await standInSigner(registry, { forge: { method: 'signer_createKey', error: { code: 4100, message: 'restarted', data: { code: 'AUTH_BEFORE_RESTART', expiresAfter: now() + 30 } } } });
    const c = createSignerClient({ socket: stand.socket, principal: { name: 'backend', key: keys.backend.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string } });
    try {
      await c.createKey({ kind: 'secp256k1' });
      const sent = stand.seen.filter((b) => b.method === 'signer_createKey');
      // What the enclave would do with each envelope the host collected for this one call.
      const enclave = new RequestVerifier({ principals: registry, audience: POLICY_HASH, now });
      const accepted = sent.filter((b) => {
        try {
          enclave.verify(b.method, b.params, b.signer_auth);
          return true;
        } catch {
          return false;
        }
      });
      expect(accepted.length).toBeLessThanOrEqual(1);
    } finally {
      c.close();
      await stand.close();
    }
  });
});
