
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { type Hex, verifyMessage } from 'viem';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createFrameDecoder, encodeFrame, encodeMessage, parseMessage, type BridgeMessage } from '../../common/bridge/index.js';
import { concatBytes, } from '../../common/bytes.js';
import { encodeCbor, type CborKey, type CborValue } from '../../common/cbor.js';
import { connect } from '../../common/transport/index.js';
import { createDevCa, type DevCa } from '../../dev/ca/index.js';
import { startEnclave, type RunningEnclave } from '../../enclave/main.js';
import { createSimulatedNsm, simulatedImagePcrs } from '../../enclave/nsm/simulated.js';
import { startParent, type RunningParent } from '../../parent/main.js';
import { devManifest, httpRequest, rpc, waitFor } from '../../parent/test-helpers.js';
import { loadDevPolicy } from '../../enclave/policy/load.js';
import { startRealKms, type RealKms } from '../real-kms.js';

vi.setConfig({ testTimeout: 60_000 });

const CREDS = { accessKeyId: 'AKIAFRAMESHOSTILE001', secretAccessKey: 'frames-hostile-secret-not-real', principalArn: 'arn:aws:iam::111122223333:role/parent' };
const IMAGE = 'enclave-signer-hostile-frames';

let dir: string;
let ca: DevCa;
let real: RealKms;
let parent: RunningParent;
let enclave: RunningEnclave;
let address: Hex;
const logs: string[] = [];
const enclaveUri = () => `unix:${join(dir, 'enclave.sock')}`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'es-hostile-frames-'));
  ca = createDevCa();
  real = await startRealKms({ dir, ca, image: IMAGE, credentials: CREDS, description: 'hostile frames' });
  enclave = await startEnclave({
    listen: enclaveUri(),
    nsm: createSimulatedNsm({ ca, imageId: IMAGE }),
    kms: real.enclaveKms,
    workers: 1,
    policy: loadDevPolicy(),
    log: () => {},
  });
  const manifest = devManifest(simulatedImagePcrs(IMAGE));
  parent = await startParent({
    enclave: enclaveUri(),
    socket: join(dir, 'signer.sock'),
    keystore: join(dir, 'keystore.db'),
    root: ca.trustRoot,
    manifest: { signed: manifest.signed, trustedKeys: [manifest.publicKeyPem] },
    kmsKeyId: real.cmk,
    credentials: { kind: 'static', accessKeyId: CREDS.accessKeyId, secretAccessKey: CREDS.secretAccessKey },
    reconnect: { minMs: 50, maxMs: 300 },
    log: (l) => logs.push(l),
  });
  await waitFor(() => parent.state().ready, 45_000, `ready (logs: ${logs.join(' | ')})`);
  address = (await rpc(parent.socketPath, 'signer_createKey', { label: 'frames' })).result.address;
});

afterAll(async () => {
  await parent?.close();
  await enclave?.close();
  await real?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The parent's view of its enclave connection: must not change while the hostile requests run. */
async function bridgeFacts() {
  await waitFor(() => parent.state().ready, 30_000, 'parent ready');
  const s = parent.state();
  return { connection: s.connection, reconnects: s.reconnects, attestationsOk: s.counters.attestationsOk, attestationsFailed: s.counters.attestationsFailed, ready: s.ready };
}

function nest(levels: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = { a: v };
  return v;
}

function tx(extra: Record<string, unknown>) {
  return { from: address, to: '0x000000000000000000000000000000000000dEaD', value: '0x1', nonce: '0x0', gas: '0x5208', chainId: '0x1', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', type: '0x2', ...extra };
}

/** Five other clients sign while the hostile request is in flight; each must succeed. */
async function othersSign(): Promise<void> {
  const answers = await Promise.all([1, 2, 3, 4, 5].map((i) => rpc(parent.socketPath, 'personal_sign', [`0x${Buffer.from(`client ${i}`).toString('hex')}`, address])));
  for (const [i, a] of answers.entries()) {
    expect(a.error).toBeUndefined();
    expect(await verifyMessage({ address, message: `client ${i + 1}`, signature: a.result })).toBe(true);
  }
}

describe('finding 2: hostile JSON-RPC clients against the real parent + enclave', () => {
  it('finding 2: a 20-deep nested member fails that request only, the bridge stays up', async () => {
    const before = await bridgeFacts();
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_signTransaction', params: [{ from: address, chainId: '0x1', x: nest(20) }] });
    expect(body.length).toBeLessThan(400); // the issue's 181-byte request, with a full address
    const [bad] = await Promise.all([httpRequest(parent.socketPath, { body }).then((r) => JSON.parse(r.body)), othersSign()]);
    // Within the shared limits the enclave reads the whole request and names what is wrong with it.
    expect(bad.error).toMatchObject({ code: -32602, message: 'invalid params: x: unknown field', data: { code: 'SIGN_INVALID_PARAMS', field: 'x' } });
    expect(await bridgeFacts()).toEqual(before);
    expect((await httpRequest(parent.socketPath, { method: 'GET', path: '/readyz' })).status).toBe(200);
  });

  it('finding 2: a member nested deeper than any limit is refused by the parent, naming the limit; the bridge stays up', async () => {
    const before = await bridgeFacts();
    const [bad] = await Promise.all([rpc(parent.socketPath, 'eth_signTransaction', [tx({ x: nest(100) })]), othersSign()]);
    expect(bad.error?.code).toBe(-32602);
    expect(bad.error?.message).toMatch(/nested deeper than \d+ levels/);
    expect(bad.error?.data?.field).toMatch(/^params\[0\]\.x(\.a)+$/);
    expect(await bridgeFacts()).toEqual(before);
  });

  it('finding 2: a 476 KB body of 0.5 floats (a 1.07 MB frame) fails that request only, the bridge stays up', async () => {
    const before = await bridgeFacts();
    // 119 arrays of 1,000 floats: "0.5," is 4 JSON bytes but 9 CBOR bytes.
    const floats = Array.from({ length: 119 }, () => new Array<number>(1000).fill(0.5));
    const body = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'eth_signTransaction', params: [tx({ x: floats })] });
    expect(body.length).toBeGreaterThan(470_000);
    expect(body.length).toBeLessThan(1024 * 1024);
    const [bad] = await Promise.all([httpRequest(parent.socketPath, { body }).then((r) => JSON.parse(r.body)), othersSign()]);
    expect(bad.error.code).toBe(-32602);
    // Refused by the parent before sending: the encoded frame would be over the enclave's cap.
    expect(bad.error.data.code).toBe('PARENT_INVALID_PARAMS');
    expect(bad.error.message).toMatch(/frame body of \d+ bytes exceeds the 1048576-byte cap/);
    expect(await bridgeFacts()).toEqual(before);
    expect((await httpRequest(parent.socketPath, { method: 'GET', path: '/readyz' })).status).toBe(200);
  });
});

// ---------------------------------------------------------------- a hostile bridge peer

interface RawPeer {
  send(bytes: Uint8Array): void;
  next(): Promise<BridgeMessage>;
  readonly closed: boolean;
}

async function rawBridge(): Promise<{ peer: RawPeer; stream: Duplex }> {
  const stream = await connect(enclaveUri());
  const dec = createFrameDecoder();
  const got: BridgeMessage[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  stream.on('error', () => {});
  stream.on('data', (c: Uint8Array) => {
    for (const f of dec.push(c)) got.push(parseMessage(f as CborValue));
    wake?.();
  });
  stream.once('close', () => {
    closed = true;
    wake?.();
  });
  const peer: RawPeer = {
    send: (b) => void stream.write(b),
    async next() {
      for (;;) {
        const m = got.shift();
        if (m) return m;
        if (closed) throw new Error('the enclave closed the bridge connection');
        await new Promise<void>((r) => (wake = r));
      }
    },
    get closed() {
      return closed;
    },
  };
  peer.send(encodeFrame(encodeMessage({ t: 'hello', v: 1, role: 'parent' })));
  expect(await peer.next()).toMatchObject({ t: 'hello', role: 'enclave' });
  return { peer, stream };
}

function framed(body: Uint8Array): Uint8Array {
  const h = new Uint8Array(4);
  new DataView(h.buffer).setUint32(0, body.length);
  return concatBytes(h, body);
}

function deepCbor(levels: number): Uint8Array {
  // levels × [ … ] around 0: 0x81 is "array of 1".
  return concatBytes(new Uint8Array(levels).fill(0x81), Uint8Array.of(0x00));
}

describe('finding 2: malformed frames sent straight to the enclave bridge server', () => {
  it('finding 2: a frame with a good length prefix and a body nested too deep gets an error for that id; the connection stays up', async () => {
    const { peer, stream } = await rawBridge();
    try {
      // {t:"req", id:7, method:"status", params:[[[…1000 levels…]]]}
      const head = encodeCbor(new Map<CborKey, CborValue>([['t', 'req'], ['id', 7], ['method', 'status']]));
      const body = concatBytes(Uint8Array.of(0xa4), head.subarray(1), encodeCbor('params'), deepCbor(1000));
      peer.send(framed(body));
      const err = await peer.next();
      expect(err).toMatchObject({ t: 'err', id: 7, error: { code: 'BRIDGE_BAD_FRAME' } });
      expect((err as Extract<BridgeMessage, { t: 'err' }>).error.message).toMatch(/nest/);
      peer.send(encodeFrame(encodeMessage({ t: 'req', id: 8, method: 'status', params: new Map() })));
      expect(await peer.next()).toMatchObject({ t: 'res', id: 8 });
      expect(peer.closed).toBe(false);
    } finally {
      stream.destroy();
    }
  });

  it('finding 2: garbage CBOR with a good length prefix is dropped on its own; the next request on that connection is answered', async () => {
    const { peer, stream } = await rawBridge();
    try {
      peer.send(framed(Uint8Array.of(0x1c, 0xff, 0xff)));
      peer.send(framed(Uint8Array.of(0x01, 0x02))); // trailing bytes
      peer.send(encodeFrame(encodeMessage({ t: 'req', id: 1, method: 'status', params: new Map() })));
      expect(await peer.next()).toMatchObject({ t: 'res', id: 1 });
      expect(peer.closed).toBe(false);
    } finally {
      stream.destroy();
    }
  });

  it('finding 2: a frame over the cap whose prefix is still valid gets BRIDGE_FRAME_TOO_LARGE for its id; the connection stays up', async () => {
    const { peer, stream } = await rawBridge();
    try {
      const big = encodeMessage({ t: 'req', id: 3, method: 'status', params: new Uint8Array(1024 * 1024 + 10) });
      peer.send(framed(encodeCbor(big)));
      expect(await peer.next()).toMatchObject({ t: 'err', id: 3, error: { code: 'BRIDGE_FRAME_TOO_LARGE' } });
      peer.send(encodeFrame(encodeMessage({ t: 'req', id: 4, method: 'status', params: new Map() })));
      expect(await peer.next()).toMatchObject({ t: 'res', id: 4 });
    } finally {
      stream.destroy();
    }
  });

  it('the parent still signs after all of it, on the same attested connection', async () => {
    const before = await bridgeFacts();
    const sig = await rpc(parent.socketPath, 'personal_sign', ['0x6869', address]);
    expect(await verifyMessage({ address, message: 'hi', signature: sig.result })).toBe(true);
    expect(await bridgeFacts()).toEqual(before);
  });
});
