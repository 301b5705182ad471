/**
 * The hot path signs with @noble/secp256k1 v3 (secp.ts); the project used
 * @noble/curves v2 before. Both must give byte-identical output: RFC 6979
 * ECDSA (r, s, recovery id, DER), public keys, and BIP340 with the same aux
 * randomness. Keys and digests come from a fixed seed, so a failure names a
 * reproducible case.
 */
import { createHash } from 'node:crypto';
import { schnorr as curvesSchnorr, secp256k1 as curves } from '@noble/curves/secp256k1.js';
import { describe, expect, it } from 'vitest';
import { encodeSignature, publicKeyOf, signDigestRaw } from './ecdsa.js';
import { signSchnorrRaw } from './schnorr.js';
import { secp } from './secp.js';
import { hex } from './test-helpers.js';

const N = curves.Point.Fn.ORDER;

/** sha256(seed ‖ label ‖ i): reproducible 32-byte strings. */
function stream(seed: string, label: string, i: number): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`${seed}:${label}:${i}`).digest());
}

/** A valid secret key from the stream (reduced into [1, n-1]). */
function keyAt(i: number): Uint8Array {
  const v = (BigInt(hex(stream('primitive-v1', 'key', i))) % (N - 1n)) + 1n;
  return Uint8Array.from(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'));
}

describe('@noble/secp256k1 v3 against @noble/curves v2 (fixed seed)', () => {
  it('10,000 random keys and digests: identical RFC 6979 signatures, recovery ids and DER', () => {
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++) {
      const key = keyAt(i);
      const digest = stream('primitive-v1', 'digest', i);
      const ours = signDigestRaw(key, digest);
      const theirs = curves.Signature.fromBytes(curves.sign(digest, key, { prehash: false, lowS: true, format: 'recovered' }), 'recovered');
      if (ours.r !== theirs.r || ours.s !== theirs.s || ours.yParity !== theirs.recovery) {
        expect({ i, r: ours.r, s: ours.s, v: ours.yParity }).toEqual({ i, r: theirs.r, s: theirs.s, v: theirs.recovery });
      }
      // Every encoding is ours (secp256k1 v3 has no DER; the rest is built from hex strings):
      // check them all against @noble/curves' bytes on a tenth of the cases.
      if (i % 10 === 0) {
        const sig = new curves.Signature(theirs.r, theirs.s);
        const compact = hex(sig.toBytes('compact'));
        const v = 27 + theirs.recovery!;
        expect(encodeSignature(ours)).toEqual({
          r: compact.slice(0, 66),
          s: `0x${compact.slice(66)}`,
          yParity: theirs.recovery,
          v,
          signature: `${compact}${v.toString(16)}`,
          compact,
          der: hex(sig.toBytes('der')),
        });
      }
    }
    // Timing is reported, never asserted (the machine is shared).
    console.log(`10k ECDSA differential: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });

  it('1,000 keys: identical compressed and uncompressed public keys; recovery gives the signer back', () => {
    for (let i = 0; i < 1_000; i++) {
      const key = keyAt(100_000 + i);
      expect(hex(publicKeyOf(key))).toBe(hex(curves.getPublicKey(key, true)));
      const full = secp.getPublicKey(key, false);
      expect(hex(full)).toBe(hex(curves.getPublicKey(key, false)));
      if (i % 10 === 0) {
        const digest = stream('primitive-v1', 'rec', i);
        const sig = secp.sign(digest, key, { prehash: false, format: 'recovered' });
        expect(hex(secp.recoverPublicKey(sig, digest, { prehash: false }))).toBe(hex(curves.getPublicKey(key, true)));
      }
    }
  });

  it('2,000 BIP340 signatures with fixed aux randomness: identical in both libraries', () => {
    const t0 = performance.now();
    for (let i = 0; i < 2_000; i++) {
      const key = keyAt(200_000 + i);
      const msg = stream('primitive-v1', 'msg', i);
      const aux = stream('primitive-v1', 'aux', i);
      const a = secp.schnorr.sign(msg, key, aux);
      const b = curvesSchnorr.sign(msg, key, aux);
      if (hex(a) !== hex(b)) expect({ i, sig: hex(a) }).toEqual({ i, sig: hex(b) });
      if (i % 50 === 0) {
        expect(hex(signSchnorrRaw(key, msg, aux))).toBe(hex(b));
        expect(hex(secp.schnorr.getPublicKey(key))).toBe(hex(curvesSchnorr.getPublicKey(key)));
      }
    }
    console.log(`2k BIP340 differential: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });
});
