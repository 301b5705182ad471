/**
 * enclave/signers/eth-typed-data.ts and enclave/policy/typed-data-intent.ts:
 * EIP-712 typed data as clients send it (a JSON string), the intent the
 * policy decides on (permits, Permit2, Seaport offers) and the digest that
 * gets signed.
 */
import { typedDataIntent } from '../../enclave/policy/typed-data-intent.js';
import { SigningError } from '../../enclave/signers/errors.js';
import { hashTypedDataV4, parseTypedDataV4 } from '../../enclave/signers/eth-typed-data.js';
import { invariant, typed, utf8 } from '../check.js';
import type { FuzzTarget } from '../engine.js';
import { jsonMutator } from '../json.js';

const A = '0x1111111111111111111111111111111111111111';
const B = '0x2222222222222222222222222222222222222222';
const DOMAIN_TYPE = [
  { name: 'name', type: 'string' },
  { name: 'version', type: 'string' },
  { name: 'chainId', type: 'uint256' },
  { name: 'verifyingContract', type: 'address' },
];

const SEEDS: unknown[] = [
  {
    types: { EIP712Domain: DOMAIN_TYPE, Permit: [{ name: 'owner', type: 'address' }, { name: 'spender', type: 'address' }, { name: 'value', type: 'uint256' }, { name: 'nonce', type: 'uint256' }, { name: 'deadline', type: 'uint256' }] },
    primaryType: 'Permit',
    domain: { name: 'USD Coin', version: '2', chainId: 1, verifyingContract: A },
    message: { owner: B, spender: A, value: '1000000', nonce: 0, deadline: '0xffffffff' },
  },
  {
    types: {
      EIP712Domain: [{ name: 'name', type: 'string' }, { name: 'chainId', type: 'uint256' }, { name: 'verifyingContract', type: 'address' }],
      PermitSingle: [{ name: 'details', type: 'PermitDetails' }, { name: 'spender', type: 'address' }, { name: 'sigDeadline', type: 'uint256' }],
      PermitDetails: [{ name: 'token', type: 'address' }, { name: 'amount', type: 'uint160' }, { name: 'expiration', type: 'uint48' }, { name: 'nonce', type: 'uint48' }],
    },
    primaryType: 'PermitSingle',
    domain: { name: 'Permit2', chainId: 1, verifyingContract: A },
    message: { details: { token: B, amount: '0xffffffffffffffffffffffffffffffffffffffff', expiration: 1, nonce: 0 }, spender: A, sigDeadline: 10 },
  },
  {
    types: {
      EIP712Domain: DOMAIN_TYPE,
      OrderComponents: [{ name: 'offerer', type: 'address' }, { name: 'offer', type: 'OfferItem[]' }, { name: 'salt', type: 'uint256' }],
      OfferItem: [{ name: 'itemType', type: 'uint8' }, { name: 'token', type: 'address' }, { name: 'identifierOrCriteria', type: 'uint256' }, { name: 'startAmount', type: 'uint256' }, { name: 'endAmount', type: 'uint256' }],
    },
    primaryType: 'OrderComponents',
    domain: { name: 'Seaport', version: '1.5', chainId: 1, verifyingContract: A },
    message: { offerer: B, offer: [{ itemType: 1, token: A, identifierOrCriteria: 0, startAmount: '5', endAmount: '7' }], salt: '0x01' },
  },
  {
    types: {
      EIP712Domain: [...DOMAIN_TYPE, { name: 'salt', type: 'bytes32' }],
      Person: [{ name: 'name', type: 'string' }, { name: 'wallets', type: 'address[]' }],
      Mail: [{ name: 'from', type: 'Person' }, { name: 'to', type: 'Person[]' }, { name: 'contents', type: 'string' }, { name: 'data', type: 'bytes' }, { name: 'flags', type: 'bool[2]' }, { name: 'n', type: 'int256' }],
    },
    primaryType: 'Mail',
    domain: { name: 'Ether Mail', version: '1', chainId: '0x1', verifyingContract: A, salt: `0x${'ab'.repeat(32)}` },
    message: { from: { name: 'Cow', wallets: [A, B] }, to: [{ name: 'Bob', wallets: [] }], contents: 'Hello, Bob!', data: '0xdeadbeef', flags: [true, false], n: '-5' },
  },
];

export const typedDataTarget: FuzzTarget = {
  name: 'typed-data',
  description:
    'parseTypedDataV4 on the JSON text clients send (permit, Permit2, Seaport, nested structs and arrays), then typedDataIntent and hashTypedDataV4 on what it accepts. ' +
    'parseTypedDataV4 throws only SigningError; typedDataIntent never throws on accepted input; hashing accepted input never fails (what the policy saw is what gets signed).',
  cover: ['/enclave/signers/eth-typed-data.', '/enclave/policy/typed-data-intent.', '/enclave/signers/validate.'],
  maxLen: 8192,
  seeds() {
    return SEEDS.map((s) => utf8(JSON.stringify(s)));
  },
  dict: ['"uint256"', '"int8"', '"bytes32"', '"bytes"', '"string"', '"address"', '"bool"', '[]', '[2]', '"EIP712Domain"', '"0x"', '"0x01"', 'null', '{}', '[', '"', '\\u0000'].map(utf8),
  mutators: [jsonMutator, jsonMutator, jsonMutator, jsonMutator],
  run(x) {
    const text = Buffer.from(x).toString('utf8');
    const td = typed(() => parseTypedDataV4(text), SigningError);
    if (!td) return;
    typedDataIntent(td);
    try {
      hashTypedDataV4(td);
    } catch (e) {
      invariant(false, `typed data the parser accepted cannot be hashed: ${(e as Error).message} (cause: ${String((e as Error).cause)})`);
    }
  },
};
