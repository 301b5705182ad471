import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeCbor } from '../../common/cbor.js';
import { parseAttestation, verifyAttestation } from '../../attestation/verify.js';
import { parseCertificate } from '../../attestation/x509.js';
import { attestationFixtures } from '../../test/fixtures.js';
import { createDevCa } from '../../dev/ca/dev-ca.js';
import { createNsmClient } from './client.js';
import { encodeRequest, encodeResponse, decodeResponse } from './messages.js';
import { NSM_MAX_INPUT, NsmError, type Nsm } from './nsm.js';
import {
  DEFAULT_IAM_ROLE_ARN,
  DEFAULT_INSTANCE_ID,
  createSimulatedNsm,
  createSimulatedNsmDevice,
  iamRolePcr,
  instancePcr,
  simulatedImagePcrs,
} from './simulated.js';

const HOUR = 3600_000;
const ca = createDevCa();
const fixed = new Date('2031-05-06T07:08:09.123Z');
const fixedCa = createDevCa({ now: new Date('2031-05-01T00:00:00Z') });
const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const sha384 = (...parts: Uint8Array[]) => {
  const h = createHash('sha384');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

const nsms: Nsm[] = [];
function sim(opts: Partial<Parameters<typeof createSimulatedNsm>[0]> = {}): Nsm {
  const n = createSimulatedNsm({ ca, ...opts });
  nsms.push(n);
  return n;
}
afterEach(() => {
  for (const n of nsms.splice(0)) n.close();
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(NsmError);
    return (e as NsmError).code;
  }
  return 'resolved';
}

// ------------------------------------------------------------ CBOR skeleton

interface Head {
  major: number;
  ai: number;
  value: number;
  end: number;
}

function readHead(buf: Uint8Array, p: number): Head {
  const ib = buf[p]!;
  const major = ib >> 5;
  const ai = ib & 31;
  let value = ai;
  let end = p + 1;
  if (ai === 24) (value = buf[p + 1]!), (end = p + 2);
  else if (ai === 25) (value = (buf[p + 1]! << 8) | buf[p + 2]!), (end = p + 3);
  else if (ai === 26) (value = Buffer.from(buf.subarray(p + 1, p + 5)).readUInt32BE()), (end = p + 5);
  else if (ai === 27) (value = Number(Buffer.from(buf.subarray(p + 1, p + 9)).readBigUInt64BE())), (end = p + 9);
  return { major, ai, value, end };
}

/**
 * The shape of a CBOR item with values abstracted away, keeping every
 * encoding choice: header widths, definite vs indefinite maps, key order.
 * Byte strings keep their length only when `keepLength(path)` says so.
 */
function skeleton(buf: Uint8Array, p = 0, path = '', keepLength: (path: string) => boolean = () => true): { s: string; end: number } {
  const h = readHead(buf, p);
  switch (h.major) {
    case 0:
      return { s: `uint/${h.ai}`, end: h.end };
    case 2:
      return { s: keepLength(path) ? `bstr${h.value}/${h.ai}` : 'bstr', end: h.end + h.value };
    case 3: {
      const text = Buffer.from(buf.subarray(h.end, h.end + h.value)).toString('utf8');
      return { s: path.endsWith('#key') ? JSON.stringify(text) : `tstr/${h.ai}`, end: h.end + h.value };
    }
    case 4: {
      const items: string[] = [];
      let q = h.end;
      for (let i = 0; i < h.value; i++) {
        const c = skeleton(buf, q, `${path}[]`, keepLength);
        items.push(c.s);
        q = c.end;
      }
      // Arrays of certificates: record the element shapes, not the count.
      return { s: `array[${[...new Set(items)].join('|')}]`, end: q };
    }
    case 5: {
      const indefinite = h.ai === 31;
      const entries: string[] = [];
      let q = h.end;
      for (let i = 0; indefinite ? buf[q] !== 0xff : i < h.value; i++) {
        const k = skeleton(buf, q, `${path}#key`, keepLength);
        const key = JSON.parse(k.s.startsWith('"') ? k.s : JSON.stringify(String(readHead(buf, q).value))) as string;
        const v = skeleton(buf, k.end, `${path}.${key}`, keepLength);
        entries.push(`${k.s}:${v.s}`);
        q = v.end;
      }
      if (indefinite) q++;
      return { s: `${indefinite ? 'map(*)' : `map(${h.value})`}{${entries.join(',')}}`, end: q };
    }
    case 7:
      return { s: h.ai === 22 ? 'null' : `simple${h.ai}`, end: h.end };
    default:
      throw new Error(`unexpected major type ${h.major}`);
  }
}

// Certificates and module ids differ in size by nature; PCRs and blobs must not.
const certPath = (path: string) => !/\.(certificate|cabundle)/.test(path);
const payloadSkeleton = (doc: Uint8Array) => skeleton(parseAttestation(doc).payload, 0, '', certPath).s;

/** The COSE_Sign1 envelope bytes around the payload: prefix up to the payload length, and the signature header. */
function envelope(doc: Uint8Array): { prefix: string; payloadHeader: string; signatureHeader: string } {
  const payloadLen = parseAttestation(doc).payload.length;
  const sigStart = doc.length - 96 - 2;
  return {
    prefix: Buffer.from(doc.subarray(0, 8)).toString('hex'),
    payloadHeader: Buffer.from(doc.subarray(7, 8)).toString('hex') + (payloadLen > 0xffff ? 'long' : ''),
    signatureHeader: Buffer.from(doc.subarray(sigStart, sigStart + 2)).toString('hex'),
  };
}

// -------------------------------------------------------------------- tests

describe('documents verify against the dev root with the production verifier', () => {
  it('nonce, public key, user data and PCR0–4/8 as configured', async () => {
    const nsm = sim({ imageId: 'signer-v1', instanceId: 'i-0123456789abcdef0' });
    const nonce = bytes(32, 1);
    const publicKey = bytes(294, 2);
    const userData = bytes(64, 3);
    const doc = await nsm.attest({ nonce, publicKey, userData });
    const image = simulatedImagePcrs('signer-v1');
    const v = verifyAttestation(doc, {
      root: ca.trustRoot,
      expectedNonce: nonce,
      expectedPublicKey: publicKey,
      expectedUserData: userData,
      expectedPcrs: {
        0: image.get(0)!,
        1: image.get(1)!,
        2: image.get(2)!,
        3: iamRolePcr(DEFAULT_IAM_ROLE_ARN),
        4: sha384(new Uint8Array(48), Buffer.from('i-0123456789abcdef0')),
        8: image.get(8)!,
      },
    });
    expect(v.checks).toEqual(['cose', 'payload', 'chain', 'signature', 'validity', 'debug', 'nonce', 'public_key', 'user_data', 'pcrs']);
    expect(v.root.name).toBe('enclave-signer-DEV-root');
    expect(v.debug).toBe(false);
    expect(v.document.moduleId).toMatch(/^i-0123456789abcdef0-enc[0-9a-f]{16}$/);
    // 16 PCRs like AWS: 0–4 and 8 set, the rest zero.
    expect([...v.document.pcrs.keys()]).toEqual([...Array(16).keys()]);
    for (const [i, val] of v.document.pcrs) expect(val.some((x) => x !== 0)).toBe([0, 1, 2, 3, 4, 8].includes(i));
  });

  it('the same documents are refused under the default AWS root', async () => {
    const doc = await sim().attest({ nonce: bytes(16, 9) });
    expect(() => verifyAttestation(doc)).toThrow(expect.objectContaining({ code: 'ATTEST_UNTRUSTED_ROOT', check: 'chain' }));
    expect(() => verifyAttestation(doc, { root: createDevCa().trustRoot })).toThrow(expect.objectContaining({ code: 'ATTEST_UNTRUSTED_ROOT' }));
  });

  it('a wrong expectation fails the matching check', async () => {
    const doc = await sim().attest({ nonce: bytes(16, 9) });
    expect(() => verifyAttestation(doc, { root: ca.trustRoot, expectedNonce: bytes(16, 8) })).toThrow(expect.objectContaining({ code: 'ATTEST_NONCE_MISMATCH' }));
    expect(() => verifyAttestation(doc, { root: ca.trustRoot, expectedPublicKey: bytes(1, 1) })).toThrow(expect.objectContaining({ code: 'ATTEST_PUBLIC_KEY_MISMATCH' }));
    expect(() => verifyAttestation(doc, { root: ca.trustRoot, expectedPcrs: { 0: new Uint8Array(48) } })).toThrow(expect.objectContaining({ code: 'ATTEST_PCR_MISMATCH' }));
  });

  it('absent fields are CBOR null, timestamp is now() in ms, each document has a fresh leaf from the intermediate', async () => {
    const nsm = sim({ ca: fixedCa, now: () => fixed });
    const a = await nsm.attest({});
    const b = await nsm.attest({});
    const pa = parseAttestation(a);
    const payload = decodeCbor(pa.payload) as Map<string, unknown>;
    for (const k of ['public_key', 'user_data', 'nonce']) {
      expect(payload.has(k)).toBe(true);
      expect(payload.get(k)).toBeNull();
    }
    expect(pa.doc.timestamp).toBe(fixed.getTime());
    expect(pa.doc.cabundle.map((c) => Buffer.from(c))).toEqual([Buffer.from(fixedCa.root.certDer), Buffer.from(fixedCa.intermediate.certDer)]);
    const leafA = parseCertificate(pa.doc.certificate);
    const leafB = parseCertificate(parseAttestation(b).doc.certificate);
    expect(leafA.fingerprint).not.toBe(leafB.fingerprint);
    expect(leafA.notBefore.getTime()).toBe(Math.floor(fixed.getTime() / 1000) * 1000);
    expect(leafA.notAfter.getTime() - leafA.notBefore.getTime()).toBe(3 * HOUR);
    expect(verifyAttestation(a, { root: fixedCa.trustRoot, at: 'document' }).verifiedAt).toEqual(fixed);
  });

  it('the leaf expires after ~3 hours (ATTEST_CERT_EXPIRED), as AWS leaves do', async () => {
    const doc = await sim({ ca: fixedCa, now: () => fixed }).attest({ nonce: bytes(8, 1) });
    const ok = (ms: number) => verifyAttestation(doc, { root: fixedCa.trustRoot, at: new Date(fixed.getTime() + ms) });
    expect(() => ok(0)).not.toThrow();
    expect(() => ok(3 * HOUR - 1000)).not.toThrow();
    expect(() => ok(3 * HOUR + 1000)).toThrow(expect.objectContaining({ code: 'ATTEST_CERT_EXPIRED' }));
    expect(() => ok(-2000)).toThrow(expect.objectContaining({ code: 'ATTEST_CERT_NOT_YET_VALID' }));
  });

  it('indefinite-length mode: payload and pcrs maps are 0xbf…0xff, and the document verifies', async () => {
    const nonce = bytes(20, 4);
    const doc = await sim({ indefiniteLength: true }).attest({ nonce });
    const payload = parseAttestation(doc).payload;
    expect(payload[0]).toBe(0xbf);
    expect(payload[payload.length - 1]).toBe(0xff);
    const sk = payloadSkeleton(doc);
    expect(sk.startsWith('map(*){"module_id":')).toBe(true);
    expect(sk).toContain('"pcrs":map(*){');
    expect(envelope(doc).prefix).toBe('8444a1013822a059');
    expect(verifyAttestation(doc, { root: ca.trustRoot, expectedNonce: nonce }).document.pcrs.size).toBe(16);
  });

  it('debug mode zeroes PCR0/1/2/8, and the verifier needs allowDebug', async () => {
    const doc = await sim({ debug: true }).attest({});
    expect(() => verifyAttestation(doc, { root: ca.trustRoot })).toThrow(expect.objectContaining({ code: 'ATTEST_DEBUG_MODE' }));
    const v = verifyAttestation(doc, { root: ca.trustRoot, allowDebug: true });
    expect(v.debug).toBe(true);
    for (const i of [0, 1, 2, 8]) expect(v.document.pcrs.get(i)).toEqual(new Uint8Array(48));
    expect(v.document.pcrs.get(4)).toEqual(instancePcr(DEFAULT_INSTANCE_ID));
  });

  it('PCRs passed in win; PCR3 can be left empty; bad presets are refused', async () => {
    const measured = new Map([
      [0, bytes(48, 0xa0)],
      [1, bytes(48, 0xa1)],
      [2, bytes(48, 0xa2)],
      [8, bytes(48, 0xa8)],
    ]);
    const nsm = sim({ pcrs: measured, iamRoleArn: null, moduleId: 'i-0fedcba9876543210-enc0000000000000001' });
    const v = verifyAttestation(await nsm.attest({}), { root: ca.trustRoot, expectedPcrs: { 0: 'a0'.repeat(48), 8: 'A8'.repeat(48) } });
    expect(v.document.pcrs.get(3)).toEqual(new Uint8Array(48));
    expect(v.document.pcrs.get(4)).toEqual(instancePcr('i-0fedcba9876543210')); // instance id taken from module id
    expect(v.document.moduleId).toBe('i-0fedcba9876543210-enc0000000000000001');
    expect(() => createSimulatedNsm({ ca, pcrs: new Map([[16, bytes(48, 1)]]) })).toThrow(expect.objectContaining({ code: 'NSM_INVALID_ARGUMENT' }));
    expect(() => createSimulatedNsm({ ca, pcrs: new Map([[0, bytes(32, 1)]]) })).toThrow(expect.objectContaining({ code: 'NSM_INVALID_ARGUMENT' }));
    expect(() => createSimulatedNsm({ ca, moduleId: 'has space' })).toThrow(expect.objectContaining({ code: 'NSM_INVALID_ARGUMENT' }));
    expect(() => createSimulatedNsm({} as never)).toThrow(expect.objectContaining({ code: 'NSM_INVALID_ARGUMENT' }));
  });

  it('PCR4 = SHA-384(48 zero bytes ‖ instance id) holds for every real document', () => {
    const real = attestationFixtures().filter((f) => !f.knownBad);
    expect(real.length).toBeGreaterThan(3);
    for (const f of real) {
      const doc = parseAttestation(f.bytes).doc;
      const instanceId = /^(i-[0-9a-f]+)-enc/.exec(doc.moduleId)![1]!;
      expect(doc.pcrs.get(4)).toEqual(instancePcr(instanceId));
    }
  });

  it('default image PCRs are deterministic per image id', () => {
    expect(simulatedImagePcrs('a')).toEqual(simulatedImagePcrs('a'));
    expect(simulatedImagePcrs('a').get(0)).not.toEqual(simulatedImagePcrs('b').get(0));
    expect([...simulatedImagePcrs().keys()]).toEqual([0, 1, 2, 8]);
  });
});

describe('byte layout matches real NSM documents', () => {
  const fixtures = attestationFixtures().filter((f) => !f.knownBad);
  const full = fixtures.find((f) => f.name.startsWith('blocky_nitrite_nitro'))!;
  const nonceOnly = fixtures.find((f) => f.name.startsWith('evervault_beta'))!;

  it('same COSE envelope: 84 44 a1 01 38 22 a0 59 …, 96-byte signature', async () => {
    const doc = await sim().attest({ nonce: bytes(32, 1) });
    for (const f of fixtures) {
      expect(envelope(doc)).toEqual(envelope(f.bytes));
      expect(envelope(f.bytes).prefix).toBe('8444a1013822a059');
    }
    expect(envelope(doc).signatureHeader).toBe('5860');
  });

  it('same payload structure as a real document with all three blobs at 1024 bytes', async () => {
    const doc = await sim().attest({ nonce: bytes(1024, 1), userData: bytes(1024, 2), publicKey: bytes(1024, 3) });
    const real = payloadSkeleton(full.bytes);
    expect(real).toContain('"nonce":bstr1024/25');
    expect(payloadSkeleton(doc)).toBe(real);
  });

  it('same payload structure as a real document with null public_key and user_data', async () => {
    const pa = parseAttestation(nonceOnly.bytes);
    expect(pa.doc.publicKey).toBeNull();
    const doc = await sim().attest({ nonce: bytes(pa.doc.nonce!.length, 1) });
    const real = payloadSkeleton(nonceOnly.bytes);
    expect(real).toContain('"public_key":null,"user_data":null');
    expect(payloadSkeleton(doc)).toBe(real);
  });

  it('every real (non-mock) document has the key order and definite-length headers we emit', async () => {
    const ours = payloadSkeleton(await sim().attest({ nonce: bytes(32, 1), userData: bytes(32, 2), publicKey: bytes(32, 3) }));
    const keys = (s: string) => [...s.matchAll(/"([a-z_]+)":/g)].map((m) => m[1]);
    for (const f of fixtures) {
      const real = payloadSkeleton(f.bytes);
      expect(keys(real)).toEqual(keys(ours));
      expect(real.startsWith('map(9){')).toBe(true);
      expect(real).toContain('"pcrs":map(16){uint/0:bstr48/24,uint/1:bstr48/24,');
      expect(real).toContain('"timestamp":uint/27');
    }
    expect(ours.startsWith('map(9){')).toBe(true);
    expect(ours).toContain('"pcrs":map(16){uint/0:bstr48/24,uint/1:bstr48/24,');
    expect(ours).toContain('"timestamp":uint/27');
  });
});

describe('PCR semantics', () => {
  it('describePcr: 0–15 locked and preset, 16–31 unlocked and zero, 32+ INVALID_INDEX', async () => {
    const nsm = sim();
    for (let i = 0; i < 32; i++) {
      const d = await nsm.describePcr(i);
      expect(d.data).toHaveLength(48);
      expect(d.lock).toBe(i < 16);
      if (i >= 16) expect(d.data).toEqual(new Uint8Array(48));
    }
    expect((await nsm.describePcr(4)).data).toEqual(instancePcr(DEFAULT_INSTANCE_ID));
    expect(await code(nsm.describePcr(32))).toBe('NSM_INVALID_INDEX');
    expect(await code(nsm.describePcr(65535))).toBe('NSM_INVALID_INDEX');
  });

  it('extendPcr: new = SHA-384(old ‖ data) on 16–31; read-only 0–15; out-of-range index', async () => {
    const nsm = sim();
    const first = await nsm.extendPcr(16, Uint8Array.of(1, 2, 3));
    expect(first).toEqual(sha384(new Uint8Array(48), Uint8Array.of(1, 2, 3)));
    const second = await nsm.extendPcr(16, new Uint8Array(0));
    expect(second).toEqual(sha384(first));
    expect((await nsm.describePcr(16)).data).toEqual(second);
    expect((await nsm.describePcr(17)).data).toEqual(new Uint8Array(48));
    for (const i of [0, 4, 15]) expect(await code(nsm.extendPcr(i, Uint8Array.of(1)))).toBe('NSM_READONLY_INDEX');
    expect(await code(nsm.extendPcr(32, Uint8Array.of(1)))).toBe('NSM_INVALID_INDEX');
  });

  it('lockPcr: read-only PCRs refuse, a locked PCR stops extending, shows in describeNsm and in documents', async () => {
    const nsm = sim();
    expect(await code(nsm.lockPcr(5))).toBe('NSM_READONLY_INDEX');
    expect(await code(nsm.lockPcr(32))).toBe('NSM_INVALID_INDEX');
    const v = await nsm.extendPcr(20, Buffer.from('app-config'));
    await nsm.lockPcr(20);
    await nsm.lockPcr(20); // again: harmless
    expect(await nsm.describePcr(20)).toEqual({ lock: true, data: v });
    expect(await code(nsm.extendPcr(20, Uint8Array.of(1)))).toBe('NSM_READONLY_INDEX');
    expect((await nsm.describeNsm()).lockedPcrs).toEqual([...Array(16).keys(), 20]);
    const doc = verifyAttestation(await nsm.attest({}), { root: ca.trustRoot, expectedPcrs: { 20: v } }).document;
    expect([...doc.pcrs.keys()]).toEqual([...Array(16).keys(), 20]);
  });

  it('lockPcrs(range) locks [0, range); range beyond 32 is INVALID_INDEX', async () => {
    const nsm = sim();
    expect(await code(nsm.lockPcrs(33))).toBe('NSM_INVALID_INDEX');
    await nsm.lockPcrs(18);
    expect((await nsm.describePcr(17)).lock).toBe(true);
    expect((await nsm.describePcr(18)).lock).toBe(false);
    await nsm.lockPcrs(32);
    expect((await nsm.describeNsm()).lockedPcrs).toEqual([...Array(32).keys()]);
    expect(await code(nsm.extendPcr(31, Uint8Array.of(1)))).toBe('NSM_READONLY_INDEX');
    expect(parseAttestation(await nsm.attest({})).doc.pcrs.size).toBe(32);
  });

  it('indexes that are not u16 are INVALID_ARGUMENT before reaching the device', async () => {
    const nsm = sim();
    for (const i of [-1, 1.5, 65536, Number.NaN, '3' as unknown as number]) {
      expect(await code(nsm.describePcr(i))).toBe('NSM_INVALID_ARGUMENT');
      expect(await code(nsm.lockPcr(i))).toBe('NSM_INVALID_ARGUMENT');
    }
    expect(await code(nsm.extendPcr(16, 'x' as unknown as Uint8Array))).toBe('NSM_INVALID_ARGUMENT');
  });
});

describe('input limits and bad input', () => {
  it('1024 bytes each of nonce, user data and public key fit, and the document verifies', async () => {
    const max = { nonce: bytes(NSM_MAX_INPUT, 1), userData: bytes(NSM_MAX_INPUT, 2), publicKey: bytes(NSM_MAX_INPUT, 3) };
    const doc = await sim().attest(max);
    const v = verifyAttestation(doc, { root: ca.trustRoot, expectedNonce: max.nonce, expectedUserData: max.userData, expectedPublicKey: max.publicKey });
    expect(v.document.nonce).toHaveLength(1024);
  });

  it.each(['nonce', 'userData', 'publicKey'] as const)('%s of 1025 bytes is INPUT_TOO_LARGE', async (field) => {
    expect(await code(sim().attest({ [field]: bytes(NSM_MAX_INPUT + 1, 1) }))).toBe('NSM_INPUT_TOO_LARGE');
  });

  it('a request larger than the NSM request buffer is INPUT_TOO_LARGE', async () => {
    expect(await code(sim().extendPcr(16, bytes(5000, 1)))).toBe('NSM_INPUT_TOO_LARGE');
  });

  it('non-byte inputs are INVALID_ARGUMENT', async () => {
    const nsm = sim();
    expect(await code(nsm.attest({ nonce: 'abc' as unknown as Uint8Array }))).toBe('NSM_INVALID_ARGUMENT');
    expect(await code(nsm.attest(null as never))).toBe('NSM_INVALID_ARGUMENT');
  });
});

describe('entropy, description, lifecycle', () => {
  it('getRandom returns exactly n fresh bytes, across NSM-sized chunks', async () => {
    const nsm = sim();
    const a = await nsm.getRandom(32);
    const b = await nsm.getRandom(32);
    expect(a).toHaveLength(32);
    expect(Buffer.from(a)).not.toEqual(Buffer.from(b));
    const big = await nsm.getRandom(1000);
    expect(big).toHaveLength(1000);
    expect(big.buffer.byteLength).toBe(1000); // no surplus entropy behind the view
    expect(new Set(big).size).toBeGreaterThan(200);
    for (const n of [0, -1, 1.5, 64 * 1024 + 1]) expect(await code(nsm.getRandom(n))).toBe('NSM_INVALID_ARGUMENT');
  });

  it('describeNsm reports the module, 32 SHA384 PCRs and the locked set', async () => {
    const nsm = sim({ moduleId: 'i-00000000000000abc-enc00000000000000ff' });
    expect(await nsm.describeNsm()).toEqual({
      versionMajor: 1,
      versionMinor: 0,
      versionPatch: 0,
      moduleId: 'i-00000000000000abc-enc00000000000000ff',
      maxPcrs: 32,
      lockedPcrs: [...Array(16).keys()],
      digest: 'SHA384',
    });
    expect(nsm.kind).toBe('simulated');
  });

  it('close makes later calls INVALID_OPERATION and is idempotent', async () => {
    const nsm = createSimulatedNsm({ ca });
    nsm.close();
    nsm.close();
    expect(await code(nsm.attest({}))).toBe('NSM_INVALID_OPERATION');
    expect(await code(nsm.getRandom(8))).toBe('NSM_INVALID_OPERATION');
  });

  it('creating one writes nothing to stdout or stderr', () => {
    const out = vi.spyOn(process.stdout, 'write');
    const err = vi.spyOn(process.stderr, 'write');
    const log = vi.spyOn(console, 'log');
    try {
      createSimulatedNsm({ ca }).close();
      expect(out).not.toHaveBeenCalled();
      expect(err).not.toHaveBeenCalled();
      expect(log).not.toHaveBeenCalled();
    } finally {
      out.mockRestore();
      err.mockRestore();
      log.mockRestore();
    }
  });
});

describe('device and client contract', () => {
  it('the device answers malformed requests with Error(InvalidArgument), never an exception', () => {
    const dev = createSimulatedNsmDevice({ ca });
    for (const raw of [new Uint8Array(0), Uint8Array.of(0xff), Buffer.from('6652656275697421', 'hex')]) {
      expect(decodeResponse(dev.process(raw))).toEqual({ type: 'Error', error: 'InvalidArgument' });
    }
    expect(decodeResponse(dev.process(new Uint8Array(5000)))).toEqual({ type: 'Error', error: 'InputTooLarge' });
    expect(decodeResponse(dev.process(encodeRequest({ type: 'LockPCR', index: 3 })))).toEqual({ type: 'Error', error: 'ReadOnlyIndex' });
    dev.close();
    expect(decodeResponse(dev.process(encodeRequest({ type: 'DescribeNSM' })))).toEqual({ type: 'Error', error: 'InvalidOperation' });
  });

  it('the client refuses a response of the wrong variant, an oversized or garbled response, and wraps transport failures', async () => {
    const lying = (res: Uint8Array | (() => never)) =>
      createNsmClient({ process: () => (typeof res === 'function' ? res() : res), close: () => {} }, 'hardware');
    expect(await code(lying(encodeResponse({ type: 'LockPCR' })).describePcr(1))).toBe('NSM_INVALID_RESPONSE');
    expect(await code(lying(encodeResponse({ type: 'ExtendPCR', data: bytes(32, 1) })).extendPcr(16, Uint8Array.of(1)))).toBe('NSM_INVALID_RESPONSE');
    expect(await code(lying(encodeResponse({ type: 'Error', error: 'Success' })).lockPcrs(1))).toBe('NSM_INVALID_RESPONSE');
    expect(await code(lying(encodeResponse({ type: 'Attestation', document: new Uint8Array(0) })).attest({}))).toBe('NSM_INVALID_RESPONSE');
    expect(await code(lying(encodeResponse({ type: 'GetRandom', random: new Uint8Array(0) })).getRandom(4))).toBe('NSM_INVALID_RESPONSE');
    expect(await code(lying(new Uint8Array(0x3001)).describeNsm())).toBe('NSM_INVALID_RESPONSE');
    expect(await code(lying(Uint8Array.of(0x01)).describeNsm())).toBe('NSM_INVALID_RESPONSE');
    expect(
      await code(
        lying(encodeResponse({ type: 'DescribeNSM', versionMajor: 1, versionMinor: 0, versionPatch: 0, moduleId: 'm', maxPcrs: 32, lockedPcrs: [], digest: 'SHA256' })).describeNsm(),
      ),
    ).toBe('NSM_INVALID_RESPONSE');
    expect(
      await code(
        lying(() => {
          throw new Error('ioctl EIO');
        }).describeNsm(),
      ),
    ).toBe('NSM_INTERNAL_ERROR');
  });

  it('maps every NSM error to its typed code, keeping the wire name', async () => {
    for (const [wire, ours] of [
      ['InvalidArgument', 'NSM_INVALID_ARGUMENT'],
      ['InvalidIndex', 'NSM_INVALID_INDEX'],
      ['InvalidResponse', 'NSM_INVALID_RESPONSE'],
      ['ReadOnlyIndex', 'NSM_READONLY_INDEX'],
      ['InvalidOperation', 'NSM_INVALID_OPERATION'],
      ['BufferTooSmall', 'NSM_BUFFER_TOO_SMALL'],
      ['InputTooLarge', 'NSM_INPUT_TOO_LARGE'],
      ['InternalError', 'NSM_INTERNAL_ERROR'],
    ] as const) {
      const client = createNsmClient({ process: () => encodeResponse({ type: 'Error', error: wire }), close: () => {} }, 'hardware');
      const e = await client.describeNsm().catch((x: unknown) => x);
      expect(e).toBeInstanceOf(NsmError);
      expect(e).toMatchObject({ code: ours, nsmCode: wire });
    }
  });
});
