import { hashMessage as ethersHashMessage, verifyMessage, Wallet } from 'ethers';
import { recoverMessageAddress, toHex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { SigningError } from './errors.js';
import { signEthSign, signPersonalMessage } from './eth-message.js';
import { bytes, KEY_B } from './test-helpers.js';

const key = bytes(KEY_B);
const account = privateKeyToAccount(KEY_B);
const wallet = new Wallet(KEY_B);

const texts = ['hello world', '', 'Ünïcødé 🚀 message\nwith newline', '0 is not hex-prefixed', 'x'.repeat(1000)];
const raws = [new Uint8Array(0), bytes('deadbeef'), bytes('00'.repeat(32)), new Uint8Array(300).map((_, i) => i & 0xff)];

describe('personal_sign', () => {
  for (const text of texts) {
    it(`UTF-8 text ${JSON.stringify(text.slice(0, 20))}`, async () => {
      const r = signPersonalMessage(key, text);
      expect(r.signature).toBe(await account.signMessage({ message: text }));
      expect(r.signature).toBe(await wallet.signMessage(text));
      expect(await recoverMessageAddress({ message: text, signature: r.signature })).toBe(account.address);
      expect(verifyMessage(text, r.signature)).toBe(account.address);
      expect(r.digest).toBe(ethersHashMessage(text));
      expect(r.address).toBe(account.address);
      expect(r.v).toBe(27 + r.yParity);
    });
  }
  for (const raw of raws) {
    it(`raw bytes (${raw.length}) as Uint8Array and as 0x hex`, async () => {
      const a = signPersonalMessage(key, raw);
      const b = signPersonalMessage(key, toHex(raw));
      expect(b.signature).toBe(a.signature);
      expect(a.signature).toBe(await account.signMessage({ message: { raw } }));
      expect(a.signature).toBe(await wallet.signMessage(raw));
      expect(await recoverMessageAddress({ message: { raw }, signature: a.signature })).toBe(account.address);
      expect(verifyMessage(raw, a.signature)).toBe(account.address);
    });
  }
  it('what viem and ethers JSON-RPC signers send (hex of the UTF-8 text) signs the text', async () => {
    const wire = toHex(new TextEncoder().encode('hello world'));
    expect(signPersonalMessage(key, wire).signature).toBe(await wallet.signMessage('hello world'));
  });
});

describe('eth_sign (geth semantics)', () => {
  it('prefixes the bytes like personal_sign and is verified by viem and ethers', async () => {
    const data = bytes('5468697320697320612074657374');
    const r = signEthSign(key, toHex(data));
    expect(r.signature).toBe(signPersonalMessage(key, data).signature);
    expect(await recoverMessageAddress({ message: { raw: data }, signature: r.signature })).toBe(account.address);
    expect(verifyMessage(data, r.signature)).toBe(account.address);
  });
  it('a 32-byte hash is prefixed too (no raw-hash signing through eth_sign)', async () => {
    const h = bytes('11'.repeat(32));
    const r = signEthSign(key, h);
    expect(r.digest).not.toBe(toHex(h));
    expect(verifyMessage(h, r.signature)).toBe(account.address);
  });
});

describe('message input errors', () => {
  const table: { name: string; fn: () => unknown; field: string }[] = [
    { name: 'personal_sign: 0x with odd digits', fn: () => signPersonalMessage(key, '0xabc'), field: 'message' },
    { name: 'personal_sign: 0x with non-hex', fn: () => signPersonalMessage(key, '0xzz'), field: 'message' },
    { name: 'personal_sign: number', fn: () => signPersonalMessage(key, 42), field: 'message' },
    { name: 'personal_sign: null', fn: () => signPersonalMessage(key, null), field: 'message' },
    { name: 'personal_sign: lone surrogate', fn: () => signPersonalMessage(key, 'a\ud800b'), field: 'message' },
    { name: 'eth_sign: text', fn: () => signEthSign(key, 'hello'), field: 'data' },
    { name: 'eth_sign: bad hex', fn: () => signEthSign(key, '0x0g'), field: 'data' },
    { name: 'eth_sign: object', fn: () => signEthSign(key, { raw: '0x00' }), field: 'data' },
  ];
  for (const { name, fn, field } of table) {
    it(name, () => {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SigningError);
      expect(err).toMatchObject({ code: 'SIGN_INVALID_PARAMS', field });
    });
  }
});
