/** Review findings on the eth_signTransaction parser (each test failed before its fix). */
import { describe, expect, it } from 'vitest';
import { SigningError } from './errors.js';
import { parseEthTransaction } from './eth-transaction.js';

describe('transaction type names', () => {
  it.each(['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf'])(
    'type %j (an Object.prototype name) is refused naming `type`, not parsed to undefined',
    (type) => {
      const req = { type, chainId: 1, nonce: 0, gas: 21000, gasPrice: 1, to: '0x1111111111111111111111111111111111111111' };
      let err: unknown;
      let out: unknown;
      try {
        out = parseEthTransaction(req);
      } catch (e) {
        err = e;
      }
      expect(out).toBeUndefined();
      expect(err).toBeInstanceOf(SigningError);
      expect((err as SigningError).code).toBe('SIGN_INVALID_PARAMS');
    },
  );
});
