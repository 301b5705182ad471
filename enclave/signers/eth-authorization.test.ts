import { verifyAuthorization, Wallet } from 'ethers';
import { recoverAuthorizationAddress } from 'viem/utils';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { signAuthorization } from './eth-authorization.js';
import { SigningError } from './errors.js';
import { bytes, KEY_A } from './test-helpers.js';

const key = bytes(KEY_A);
const account = privateKeyToAccount(KEY_A);
const wallet = new Wallet(KEY_A);
const DELEGATE = '0x5FbDB2315678afecb367f032d93F642f64180aa3';

describe('signer_signAuthorization (EIP-7702)', () => {
  const cases = [
    { chainId: 1, address: DELEGATE, nonce: 0 },
    { chainId: 8453, address: DELEGATE.toLowerCase(), nonce: 123456 },
    { chainId: 11155111, address: '0x63c0c19a282a1B52b07dD5a65b58948A07DAE32B', nonce: 2 ** 40 },
  ];
  for (const c of cases) {
    it(`chain ${c.chainId}, nonce ${c.nonce}: same as viem, recovered by viem and ethers`, async () => {
      const r = signAuthorization(key, c);
      const v = await account.signAuthorization({ chainId: c.chainId, address: c.address as `0x${string}`, nonce: c.nonce });
      expect({ r: r.r, s: r.s, yParity: r.yParity }).toEqual({ r: v.r, s: v.s, yParity: v.yParity });
      expect(
        await recoverAuthorizationAddress({
          authorization: { chainId: c.chainId, address: r.address, nonce: c.nonce },
          signature: { r: r.r, s: r.s, yParity: r.yParity },
        }),
      ).toBe(account.address);
      expect(verifyAuthorization({ chainId: c.chainId, address: c.address, nonce: c.nonce }, { r: r.r, s: r.s, yParity: r.yParity })).toBe(
        account.address,
      );
      const e = wallet.authorizeSync({ chainId: c.chainId, address: c.address, nonce: c.nonce });
      expect(e.signature.r).toBe(r.r);
      expect(e.signature.s).toBe(r.s);
      expect(r.signer).toBe(account.address);
    });
  }

  it('accepts JSON-RPC hex quantities and the contractAddress alias', async () => {
    const a = signAuthorization(key, { chainId: '0x1', contractAddress: DELEGATE, nonce: '0x0' });
    expect(a).toEqual(signAuthorization(key, { chainId: 1, address: DELEGATE, nonce: 0 }));
  });

  it('chainId 0 (valid on every chain) needs allowAllChains', async () => {
    expect(() => signAuthorization(key, { chainId: 0, address: DELEGATE, nonce: 0 })).toThrow(
      expect.objectContaining({ code: 'SIGN_INVALID_PARAMS', field: 'chainId' }),
    );
    const r = signAuthorization(key, { chainId: 0, address: DELEGATE, nonce: 0 }, { allowAllChains: true });
    const v = await account.signAuthorization({ chainId: 0, address: DELEGATE, nonce: 0 });
    expect(r.r).toBe(v.r);
  });

  const table: { name: string; req: unknown; field: string }[] = [
    { name: 'missing chainId', req: { address: DELEGATE, nonce: 0 }, field: 'chainId' },
    { name: 'missing nonce', req: { chainId: 1, address: DELEGATE }, field: 'nonce' },
    { name: 'missing address', req: { chainId: 1, nonce: 0 }, field: 'address' },
    { name: 'both address spellings', req: { chainId: 1, nonce: 0, address: DELEGATE, contractAddress: DELEGATE }, field: 'contractAddress' },
    { name: 'short address', req: { chainId: 1, nonce: 0, address: '0x5FbDB2315678afecb367f032d93F642f6418' }, field: 'address' },
    { name: 'negative nonce', req: { chainId: 1, nonce: -1, address: DELEGATE }, field: 'nonce' },
    { name: 'decimal string chainId', req: { chainId: '1', nonce: 0, address: DELEGATE }, field: 'chainId' },
    { name: 'chainId beyond 2^53', req: { chainId: '0x20000000000000', nonce: 0, address: DELEGATE }, field: 'chainId' },
    { name: 'unknown field', req: { chainId: 1, nonce: 0, address: DELEGATE, yParity: 0 }, field: 'authorization.yParity' },
    { name: 'not an object', req: [1, DELEGATE, 0], field: 'authorization' },
  ];
  for (const { name, req, field } of table) {
    it(`refuses ${name}`, () => {
      let err: unknown;
      try {
        signAuthorization(key, req);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SigningError);
      expect(err).toMatchObject({ code: 'SIGN_INVALID_PARAMS', field });
    });
  }
});
