import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { computeAddress, recoverAddress as ethersRecoverAddress, SigningKey } from 'ethers';
import { getAddress, recoverAddress, recoverPublicKey } from 'viem';
import { publicKeyToAddress, sign as viemSign } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { signDigest, publicKeyOf } from './ecdsa.js';
import { bigintToBytes } from './validate.js';
import { addressFromPrivateKey, addressFromPublicKey, checksumAddress } from './eth-address.js';
import { SigningError } from './errors.js';
import { signSchnorr } from './schnorr.js';
import { bytes, hex, KEY_A, KEY_B, testEntropy } from './test-helpers.js';

const N = secp256k1.Point.Fn.ORDER;

function nodeKeyFor(pub65: Uint8Array) {
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv: 'secp256k1', x: b64(pub65.subarray(1, 33)), y: b64(pub65.subarray(33)) }, format: 'jwk' });
}

describe('signer_signDigest (ECDSA)', () => {
  const digests = [
    createHash('sha256').update('abc').digest(),
    new Uint8Array(32),
    new Uint8Array(32).fill(0xff),
    bytes('1c8aff950685c2ed4bc3174f3472287b56d9517b9c948127319a09a7a36deac8'),
  ];
  for (const [i, d] of digests.entries()) {
    for (const k of [KEY_A, KEY_B]) {
      it(`digest #${i} with key ${k.slice(0, 8)}: same as viem and ethers, recovers, low-s, DER verifies`, async () => {
        const sig = signDigest(bytes(k), d);
        // Identical to two independent signers (RFC 6979).
        const v = await viemSign({ hash: hex(d), privateKey: k });
        expect([sig.r, sig.s, sig.yParity]).toEqual([v.r, v.s, v.yParity]);
        const e = new SigningKey(k).sign(d);
        expect([sig.r, sig.s, sig.yParity]).toEqual([e.r, e.s, e.yParity]);
        expect(sig.signature).toBe(e.serialized);
        // Recovery.
        const address = publicKeyToAddress(hex(secp256k1.getPublicKey(bytes(k), false)));
        expect(await recoverAddress({ hash: hex(d), signature: sig.signature })).toBe(address);
        expect(ethersRecoverAddress(d, sig.signature)).toBe(address);
        expect(await recoverPublicKey({ hash: hex(d), signature: sig.signature })).toBe(hex(secp256k1.getPublicKey(bytes(k), false)));
        // Low-s and the encodings agree.
        expect(BigInt(sig.s) <= N / 2n).toBe(true);
        expect(sig.compact).toBe(sig.signature.slice(0, 130));
        expect(sig.v).toBe(27 + sig.yParity);
        // DER form checked by OpenSSL (node:crypto), which hashes the message itself: use digest = sha256(msg).
        if (i === 0) {
          const pub = secp256k1.getPublicKey(bytes(k), false);
          expect(nodeVerify('sha256', Buffer.from('abc'), nodeKeyFor(pub), bytes(sig.der))).toBe(true);
        }
      });
    }
  }

  it('accepts hex digests and does not modify the key it was given', () => {
    const key = bytes(KEY_A);
    const copy = key.slice();
    const d = new Uint8Array(32).fill(9);
    expect(signDigest(key, hex(d))).toEqual(signDigest(key, d));
    expect(key).toEqual(copy);
  });

  const bad: { name: string; key: unknown; digest: unknown; code: string; field?: string }[] = [
    { name: '31-byte digest', key: bytes(KEY_A), digest: new Uint8Array(31), code: 'SIGN_INVALID_PARAMS', field: 'digest' },
    { name: '33-byte digest', key: bytes(KEY_A), digest: new Uint8Array(33), code: 'SIGN_INVALID_PARAMS', field: 'digest' },
    { name: 'digest hex without 0x', key: bytes(KEY_A), digest: '11'.repeat(32), code: 'SIGN_INVALID_PARAMS', field: 'digest' },
    { name: 'digest hex odd length', key: bytes(KEY_A), digest: `0x${'1'.repeat(63)}`, code: 'SIGN_INVALID_PARAMS', field: 'digest' },
    { name: 'digest not hex', key: bytes(KEY_A), digest: `0x${'g'.repeat(64)}`, code: 'SIGN_INVALID_PARAMS', field: 'digest' },
    { name: 'digest number', key: bytes(KEY_A), digest: 5, code: 'SIGN_INVALID_PARAMS', field: 'digest' },
    { name: 'key as hex string', key: KEY_A, digest: new Uint8Array(32), code: 'SIGN_INVALID_KEY' },
    { name: 'zero key', key: new Uint8Array(32), digest: new Uint8Array(32), code: 'SIGN_INVALID_KEY' },
    { name: 'key = n', key: bytes(N.toString(16)), digest: new Uint8Array(32), code: 'SIGN_INVALID_KEY' },
    { name: '33-byte key', key: new Uint8Array(33).fill(1), digest: new Uint8Array(32), code: 'SIGN_INVALID_KEY' },
  ];
  for (const b of bad) {
    it(`refuses ${b.name}`, () => {
      let err: unknown;
      try {
        signDigest(b.key as Uint8Array, b.digest as Uint8Array);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SigningError);
      expect(err).toMatchObject({ code: b.code });
      if (b.field) expect((err as SigningError).field).toBe(b.field);
    });
  }
});

describe('BIP340 Schnorr', () => {
  // Official BIP340 test vectors 0–3 (secret key, aux_rand, message → signature).
  const vectors = [
    {
      sk: '0000000000000000000000000000000000000000000000000000000000000003',
      pk: 'F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9',
      aux: '0000000000000000000000000000000000000000000000000000000000000000',
      msg: '0000000000000000000000000000000000000000000000000000000000000000',
      sig: 'E907831F80848D1069A5371B402410364BDF1C5F8307B0084C55F1CE2DCA821525F66A4A85EA8B71E482A74F382D2CE5EBEEE8FDB2172F477DF4900D310536C0',
    },
    {
      sk: 'B7E151628AED2A6ABF7158809CF4F3C762E7160F38B4DA56A784D9045190CFEF',
      pk: 'DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659',
      aux: '0000000000000000000000000000000000000000000000000000000000000001',
      msg: '243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89',
      sig: '6896BD60EEAE296DB48A229FF71DFE071BDE413E6D43F917DC8DCF8C78DE33418906D11AC976ABCCB20B091292BFF4EA897EFCB639EA871CFA95F6DE339E4B0A',
    },
    {
      sk: 'C90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B14E5C9',
      pk: 'DD308AFEC5777E13121FA72B9CC1B7CC0139715309B086C960E18FD969774EB8',
      aux: 'C87AA53824B4D7AE2EB035A2B5BBBCCC080E76CDC6D1692C4B0B62D798E6D906',
      msg: '7E2D58D8B3BCDF1ABADEC7829054F90DDA9805AAB56C77333024B9D0A508B75C',
      sig: '5831AAEED7B44BB74E5EAB94BA9D4294C49BCF2A60728D8B4C200F50DD313C1BAB745879A5AD954A72C45A91C3A51D3C7ADEA98D82F8481E0E1E03674A6F3FB7',
    },
    {
      sk: '0B432B2677937381AEF05BB02A66ECD012773062CF3FA2549E44F58ED2401710',
      pk: '25D1DFF95105F5253C4022F628A996AD3A0D95FBF21D468A1B33F8C160D8F517',
      aux: 'FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF',
      msg: 'FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF',
      sig: '7EB0509757E246F19449885651611CB965ECC1A187DD51B64FDA1EDC9637D5EC97582B9CB13DB3933705B32BA982AF5AF25FD78881EBB32771FC5922EFC66EA3',
    },
  ];
  for (const [i, v] of vectors.entries()) {
    it(`BIP340 vector ${i}`, () => {
      const aux = bytes(v.aux);
      let asked = 0;
      const r = signSchnorr(bytes(v.sk), bytes(v.msg), (n) => {
        asked = n;
        return aux;
      });
      expect(asked).toBe(32);
      expect(r.signature).toBe(`0x${v.sig.toLowerCase()}`);
      expect(r.publicKey).toBe(`0x${v.pk.toLowerCase()}`);
      expect(schnorr.verify(bytes(r.signature), bytes(v.msg), bytes(v.pk))).toBe(true);
      // The aux randomness was wiped after use.
      expect(aux.every((b) => b === 0)).toBe(true);
    });
  }

  it('uses the entropy source (different aux → different valid signatures)', () => {
    const msg = new Uint8Array(32).fill(3);
    const a = signSchnorr(bytes(KEY_A), msg, testEntropy('a'));
    const b = signSchnorr(bytes(KEY_A), msg, testEntropy('b'));
    expect(a.signature).not.toBe(b.signature);
    for (const s of [a, b]) expect(schnorr.verify(bytes(s.signature), msg, bytes(s.publicKey))).toBe(true);
  });

  it('bad entropy sources and inputs are typed errors', () => {
    const msg = new Uint8Array(32);
    const cases: [() => unknown, string][] = [
      [() => signSchnorr(bytes(KEY_A), msg, () => new Uint8Array(31)), 'SIGN_ENTROPY'],
      [() => signSchnorr(bytes(KEY_A), msg, () => 'x' as unknown as Uint8Array), 'SIGN_ENTROPY'],
      [() => signSchnorr(bytes(KEY_A), msg, () => { throw new Error('nsm down'); }), 'SIGN_ENTROPY'],
      [() => signSchnorr(bytes(KEY_A), msg, undefined as never), 'SIGN_ENTROPY'],
      [() => signSchnorr(bytes(KEY_A), new Uint8Array(31), testEntropy()), 'SIGN_INVALID_PARAMS'],
      [() => signSchnorr(new Uint8Array(32), msg, testEntropy()), 'SIGN_INVALID_KEY'],
    ];
    for (const [fn, code] of cases) expect(fn).toThrow(expect.objectContaining({ code }));
  });
});

describe('Ethereum addresses', () => {
  for (const k of [KEY_A, KEY_B]) {
    it(`address of ${k.slice(0, 8)} from compressed and uncompressed keys matches viem and ethers`, () => {
      const key = bytes(k);
      const expected = computeAddress(k);
      expect(addressFromPrivateKey(key)).toBe(expected);
      expect(addressFromPublicKey(publicKeyOf(key, true))).toBe(expected);
      expect(addressFromPublicKey(hex(publicKeyOf(key, false)))).toBe(expected);
      expect(publicKeyToAddress(hex(publicKeyOf(key, false)))).toBe(expected);
    });
  }
  it('EIP-55 checksums match viem getAddress', () => {
    for (const a of ['0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed', '0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359', '0xdbf03b407c01e7cd3cbea99509d93f8dddc8c6fb']) {
      expect(checksumAddress(a.slice(2))).toBe(getAddress(a));
    }
  });
  it('refuses keys that are not curve points', () => {
    const bad = [new Uint8Array(33), new Uint8Array(64), Uint8Array.of(0x05, ...new Uint8Array(32)), bytes(`02${'ff'.repeat(32)}`)];
    for (const b of bad) expect(() => addressFromPublicKey(b)).toThrow(expect.objectContaining({ code: 'SIGN_INVALID_PARAMS', field: 'publicKey' }));
  });
});

describe('bigintToBytes (every r and s goes through it)', () => {
  it('is big-endian and fixed-width, and refuses a value that does not fit instead of wrapping it', () => {
    expect(bigintToBytes(0n, 32)).toEqual(new Uint8Array(32));
    expect(bigintToBytes(0x0102n, 4)).toEqual(Uint8Array.of(0, 0, 1, 2));
    expect(bigintToBytes(N - 1n, 32)).toEqual(bytes(hex(Uint8Array.from(Buffer.from((N - 1n).toString(16), 'hex')))));
    expect(bigintToBytes((1n << 256n) - 1n, 32)).toEqual(new Uint8Array(32).fill(0xff));
    expect(() => bigintToBytes(1n << 256n, 32)).toThrow(RangeError);
    expect(() => bigintToBytes(-1n, 32)).toThrow(RangeError);
    // The result owns its memory: not a view into a pool shared with other values.
    const b = bigintToBytes(5n, 32);
    expect(b.byteOffset).toBe(0);
    expect(b.buffer.byteLength).toBe(32);
  });
});
