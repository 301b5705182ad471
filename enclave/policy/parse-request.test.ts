/**
 * The signing path's parser (parse-request.ts) and the tooling's (build-intent.ts, used by
 * `policy explain`) must read a request the same way: same intent for the same request. And
 * the signing step signs the value the intent was built from (the signature matches the
 * signer's own answer for that request).
 */
import { describe, expect, it } from 'vitest';
import { buildIntent } from './build-intent.js';
import { parseSignRequest, type ParsedOp } from './parse-request.js';
import { ALICE_ADDR, DELEGATE_OK, KEY_1, USDC, authTuple, erc20Approve, erc20Transfer, maxUint256, permit, tx } from './test-fixtures.js';
import { signEthTransaction, signTypedDataV4 } from '../signers/index.js';
import type { JsonLike } from '../../common/cbor-json.js';

const KEY = new Uint8Array(32).fill(7);
const none = () => {
  throw new Error('no entropy in this test');
};

const cases: [ParsedOp, Record<string, JsonLike>][] = [
  ['eth_signTransaction', tx({ to: ALICE_ADDR, value: 5n })],
  ['eth_signTransaction', tx({ to: USDC, data: erc20Transfer(ALICE_ADDR, 1_000_000n) })],
  ['eth_signTransaction', tx({ to: USDC, data: erc20Approve(ALICE_ADDR, maxUint256) })],
  ['eth_signTransaction', tx({ to: ALICE_ADDR, authorizationList: [authTuple(DELEGATE_OK)] })],
  ['eth_signTypedData_v4', permit(ALICE_ADDR, 10n)],
  ['personal_sign', { message: 'hello' }],
  ['personal_sign', { message: '0xff00' }],
  ['eth_sign', { data: '0xdeadbeef' }],
  ['signer_signDigest', { digest: '0x' + '11'.repeat(32) }],
  ['signer_signSchnorr', { message: '0x' + '22'.repeat(32), path: "m/86'/0'/0'/0/0" }],
  ['signer_signAuthorization', { authorization: { chainId: '0x1', address: DELEGATE_OK, nonce: '0x0' } }],
];

describe('parseSignRequest', () => {
  it.each(cases)('%s: the same intent as build-intent', (op, request) => {
    expect(parseSignRequest(op, request, KEY_1, none).intent).toEqual(buildIntent(op, request, { keyId: KEY_1 }));
  });

  it('signs the parsed value: the same signature as the signer reading the request itself', () => {
    const t = tx({ to: USDC, data: erc20Transfer(ALICE_ADDR, 1n) });
    expect(parseSignRequest('eth_signTransaction', t, KEY_1, none).sign(KEY)).toEqual(signEthTransaction(KEY, t.tx));
    const td = permit(ALICE_ADDR, 10n);
    expect(parseSignRequest('eth_signTypedData_v4', td, KEY_1, none).sign(KEY)).toEqual(signTypedDataV4(KEY, td.typedData));
  });

  it('a request mutated after parsing does not change what is signed (parsed once)', () => {
    const t = tx({ to: ALICE_ADDR, value: 1n });
    const p = parseSignRequest('eth_signTransaction', t, KEY_1, none);
    const expected = signEthTransaction(KEY, structuredClone(t.tx));
    (t.tx as Record<string, JsonLike>).value = '0xde0b6b3a7640000';
    (t.tx as Record<string, JsonLike>).to = USDC;
    expect(p.sign(KEY)).toEqual(expected);
  });
});
