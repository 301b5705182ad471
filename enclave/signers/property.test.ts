import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { computeAddress, SigningKey, Transaction as EthersTransaction, verifyMessage } from 'ethers';
import fc from 'fast-check';
import { recoverPublicKey } from 'viem';
import { describe, expect, it } from 'vitest';
import { signDigest } from './ecdsa.js';
import { signPersonalMessage } from './eth-message.js';
import { signEthTransaction, parseEthTransaction } from './eth-transaction.js';
import { parseTypedDataV4 } from './eth-typed-data.js';
import { signAuthorization } from './eth-authorization.js';
import { signSchnorr } from './schnorr.js';
import { signPsbt } from './psbt.js';
import { deriveBip32PublicKey } from './bip32.js';
import { SigningError } from './errors.js';
import { hex } from './test-helpers.js';

const N = secp256k1.Point.Fn.ORDER;
const key = fc.uint8Array({ minLength: 32, maxLength: 32 }).filter((k) => secp256k1.utils.isValidSecretKey(k));
const digest = fc.uint8Array({ minLength: 32, maxLength: 32 });

describe('properties', () => {
  it('ECDSA: sign → recover gives the signer; low-s; equals ethers', async () => {
    await fc.assert(
      fc.asyncProperty(key, digest, async (k, d) => {
        const sig = signDigest(k, d);
        const pub = secp256k1.getPublicKey(k, false);
        expect(BigInt(sig.s) <= N / 2n).toBe(true);
        expect(await recoverPublicKey({ hash: hex(d), signature: sig.signature })).toBe(hex(pub));
        expect(SigningKey.recoverPublicKey(d, sig.signature)).toBe(hex(pub));
        expect(new SigningKey(k).sign(d).serialized).toBe(sig.signature);
      }),
      { numRuns: 150 },
    );
  });

  it('Schnorr: every signature verifies under the returned x-only key', () => {
    fc.assert(
      fc.property(key, digest, fc.uint8Array({ minLength: 32, maxLength: 32 }), (k, m, aux) => {
        const r = signSchnorr(k, m, () => aux.slice());
        expect(schnorr.verify(Buffer.from(r.signature.slice(2), 'hex'), m, Buffer.from(r.publicKey.slice(2), 'hex'))).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('personal_sign: ethers recovers the signer for arbitrary bytes', () => {
    fc.assert(
      fc.property(key, fc.uint8Array({ maxLength: 200 }), (k, msg) => {
        expect(verifyMessage(msg, signPersonalMessage(k, msg).signature)).toBe(computeAddress(hex(k)));
      }),
      { numRuns: 60 },
    );
  });

  it('EIP-1559 transactions with arbitrary fields: ethers recovers the sender and reads back the fields', () => {
    const q = (max: bigint) => fc.bigInt({ min: 0n, max });
    fc.assert(
      fc.property(
        key,
        fc.record({
          chainId: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
          nonce: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          gas: q((1n << 64n) - 1n),
          maxFeePerGas: q((1n << 256n) - 1n),
          value: q((1n << 256n) - 1n),
          data: fc.uint8Array({ maxLength: 100 }),
          to: fc.option(fc.uint8Array({ minLength: 20, maxLength: 20 }), { nil: undefined }),
        }),
        (k, t) => {
          const req = {
            type: '0x2',
            chainId: `0x${t.chainId.toString(16)}`,
            nonce: `0x${t.nonce.toString(16)}`,
            gas: `0x${t.gas.toString(16)}`,
            maxFeePerGas: `0x${t.maxFeePerGas.toString(16)}`,
            maxPriorityFeePerGas: `0x${(t.maxFeePerGas / 2n).toString(16)}`,
            value: `0x${t.value.toString(16)}`,
            data: hex(t.data),
            ...(t.to ? { to: hex(t.to) } : {}),
          };
          const r = signEthTransaction(k, req);
          const p = EthersTransaction.from(r.raw);
          expect(p.from).toBe(computeAddress(hex(k)));
          expect([p.chainId, BigInt(p.nonce), p.gasLimit, p.maxFeePerGas, p.value, p.data]).toEqual([
            BigInt(t.chainId),
            BigInt(t.nonce),
            t.gas,
            t.maxFeePerGas,
            t.value,
            hex(t.data),
          ]);
          expect(p.to).toBe(t.to ? computeAddressLike(t.to) : null);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('arbitrary JSON never crashes a parser: it is accepted or refused with a SigningError', () => {
    const k = new Uint8Array(32).fill(7);
    const seed = new Uint8Array(32).fill(9);
    const parsers: ((v: unknown) => unknown)[] = [
      parseEthTransaction,
      parseTypedDataV4,
      (v) => signAuthorization(k, v),
      (v) => signDigest(k, v as never),
      (v) => signPersonalMessage(k, v),
      (v) => signPsbt(seed, v, { entropy: () => new Uint8Array(32) }),
      (v) => deriveBip32PublicKey(seed, v),
    ];
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.json().map((s) => JSON.parse(s) as unknown)), (v) => {
        for (const parse of parsers) {
          try {
            parse(v);
          } catch (e) {
            if (!(e instanceof SigningError)) throw e;
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

function computeAddressLike(b: Uint8Array): string {
  // ethers returns checksummed addresses; compare through its own normaliser.
  return EthersTransaction.from({ to: hex(b) }).to!;
}
