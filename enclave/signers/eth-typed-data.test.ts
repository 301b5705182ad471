import { TypedDataEncoder, verifyTypedData, Wallet } from 'ethers';
import { hashTypedData, recoverTypedDataAddress } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { SigningError } from './errors.js';
import { parseTypedDataV4, signTypedDataV4 } from './eth-typed-data.js';
import { bytes, KEY_A } from './test-helpers.js';

/** The example from EIP-712 itself, with its published digest and signature (key = keccak256("cow")). */
const mail = {
  types: {
    EIP712Domain: [
      { name: 'name', type: 'string' },
      { name: 'version', type: 'string' },
      { name: 'chainId', type: 'uint256' },
      { name: 'verifyingContract', type: 'address' },
    ],
    Person: [
      { name: 'name', type: 'string' },
      { name: 'wallet', type: 'address' },
    ],
    Mail: [
      { name: 'from', type: 'Person' },
      { name: 'to', type: 'Person' },
      { name: 'contents', type: 'string' },
    ],
  },
  primaryType: 'Mail',
  domain: { name: 'Ether Mail', version: '1', chainId: 1, verifyingContract: '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC' },
  message: {
    from: { name: 'Cow', wallet: '0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826' },
    to: { name: 'Bob', wallet: '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB' },
    contents: 'Hello, Bob!',
  },
};
const COW = bytes('c85ef7d79691fe79573b1a7064c19c1a9819ebdbd1faaab1a8ec92344438aaf4');

/** Exercises arrays (dynamic, fixed, nested, of structs), signed ints, bytes, bytesN, bool, salt. */
const complex = {
  types: {
    EIP712Domain: [
      { name: 'name', type: 'string' },
      { name: 'chainId', type: 'uint256' },
      { name: 'verifyingContract', type: 'address' },
      { name: 'salt', type: 'bytes32' },
    ],
    Leaf: [{ name: 'label', type: 'string' }],
    Node: [
      { name: 'label', type: 'string' },
      { name: 'children', type: 'Leaf[]' },
    ],
    Order: [
      { name: 'maker', type: 'address' },
      { name: 'amounts', type: 'uint256[]' },
      { name: 'deltas', type: 'int64[2]' },
      { name: 'grid', type: 'uint8[][]' },
      { name: 'payload', type: 'bytes' },
      { name: 'tag', type: 'bytes4' },
      { name: 'active', type: 'bool' },
      { name: 'tree', type: 'Node' },
      { name: 'owners', type: 'address[]' },
    ],
  },
  primaryType: 'Order',
  domain: {
    name: 'Complex',
    chainId: '0x2105',
    verifyingContract: '0x5fbdb2315678afecb367f032d93f642f64180aa3',
    salt: `0x${'ab'.repeat(32)}`,
  },
  message: {
    maker: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
    amounts: ['1000000000000000000000', 7, '0xff'],
    deltas: ['-9223372036854775808', 9223372036854775807n],
    grid: [[1, 2, 255], [], [0]],
    payload: '0x0102030405',
    tag: '0xdeadbeef',
    active: true,
    tree: { label: 'root', children: [{ label: 'a' }, { label: 'b' }] },
    owners: [],
  },
};

describe('eth_signTypedData_v4', () => {
  it('reproduces the EIP-712 Mail example digest and signature', async () => {
    const r = signTypedDataV4(COW, mail);
    expect(r.digest).toBe('0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2');
    expect(r.domainSeparator).toBe('0xf2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f');
    expect(r.v).toBe(28);
    expect(r.r).toBe('0x4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d');
    expect(r.s).toBe('0x07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562');
    expect(r.address).toBe('0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826');
  });

  for (const [name, td] of [
    ['Mail', mail],
    ['complex (arrays, recursion, ints, bytes)', complex],
  ] as const) {
    it(`${name}: verified by viem and ethers, identical to viem's signer`, async () => {
      const account = privateKeyToAccount(KEY_A);
      const r = signTypedDataV4(bytes(KEY_A), JSON.stringify(td, (_, v) => (typeof v === 'bigint' ? v.toString() : v)));
      const { EIP712Domain: _, ...types } = td.types;
      const viemArgs = { domain: parseTypedDataV4(td).domain, types, primaryType: td.primaryType, message: parseTypedDataV4(td).message } as never;
      expect(r.digest).toBe(hashTypedData(viemArgs));
      expect(await recoverTypedDataAddress({ ...(viemArgs as object), signature: r.signature } as never)).toBe(account.address);
      expect(r.signature).toBe(await account.signTypedData(viemArgs));
      // ethers derives the domain type itself from the domain fields (canonical order).
      expect(TypedDataEncoder.hash(td.domain, types, td.message)).toBe(r.digest);
      expect(verifyTypedData(td.domain, types, td.message, r.signature)).toBe(account.address);
    });
  }

  it('recursive struct types (ethers refuses them; viem and MetaMask accept them)', async () => {
    const account = privateKeyToAccount(KEY_A);
    const td = {
      types: {
        EIP712Domain: [{ name: 'name', type: 'string' }],
        Node: [
          { name: 'label', type: 'string' },
          { name: 'children', type: 'Node[]' },
        ],
      },
      primaryType: 'Node',
      domain: { name: 'Tree' },
      message: { label: 'root', children: [{ label: 'a', children: [] }, { label: 'b', children: [{ label: 'c', children: [] }] }] },
    };
    const r = signTypedDataV4(bytes(KEY_A), td);
    const { EIP712Domain: _, ...types } = td.types;
    const args = { domain: td.domain, types, primaryType: 'Node', message: td.message } as never;
    expect(r.signature).toBe(await account.signTypedData(args));
    expect(await recoverTypedDataAddress({ ...(args as object), signature: r.signature } as never)).toBe(account.address);
  });

  it("accepts the exact JSON ethers' JsonRpcSigner sends", async () => {
    const { EIP712Domain: _, ...types } = complex.types;
    const payload = JSON.stringify(TypedDataEncoder.getPayload(complex.domain, types, complex.message));
    const r = signTypedDataV4(bytes(KEY_A), payload);
    const wallet = new Wallet(KEY_A);
    expect(r.signature).toBe(await wallet.signTypedData(complex.domain, types, complex.message));
  });

  it('an empty EIP712Domain is allowed (domain = {})', () => {
    const td = { ...mail, types: { ...mail.types, EIP712Domain: [] }, domain: {} };
    const r = signTypedDataV4(COW, td);
    const { EIP712Domain: _, ...types } = mail.types;
    expect(verifyTypedData({}, types, mail.message, r.signature)).toBe('0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826');
  });
});

describe('typed data errors (table)', () => {
  const clone = <T>(v: T): T => structuredClone(v);
  const withMail = (f: (t: ReturnType<typeof clone<typeof mail>>) => unknown): unknown => {
    const t = clone(mail);
    return f(t) ?? t;
  };
  const recursive = {
    EIP712Domain: [],
    Node: [
      { name: 'label', type: 'string' },
      { name: 'children', type: 'Node[]' },
    ],
  };
  let deep: Record<string, unknown> = { label: 'x', children: [] };
  for (let i = 0; i < 40; i++) deep = { label: 'x', children: [deep] };

  const table: { name: string; input: unknown; field: string | RegExp }[] = [
    { name: 'invalid JSON', input: '{"types":', field: 'typedData' },
    { name: 'not an object', input: 42, field: 'typedData' },
    { name: 'unknown top-level key', input: { ...mail, extra: 1 }, field: 'typedData.extra' },
    { name: 'missing EIP712Domain', input: withMail((t) => void delete (t.types as Record<string, unknown>).EIP712Domain), field: 'types.EIP712Domain' },
    {
      name: 'non-standard domain field',
      input: withMail((t) => void t.types.EIP712Domain.push({ name: 'owner', type: 'address' })),
      field: 'types.EIP712Domain[4].name',
    },
    { name: 'domain field with wrong type', input: withMail((t) => void (t.types.EIP712Domain[2]!.type = 'uint64')), field: 'types.EIP712Domain[2].type' },
    { name: 'domain value not in the domain type', input: withMail((t) => void ((t.domain as Record<string, unknown>).salt = `0x${'00'.repeat(32)}`)), field: 'domain.salt' },
    { name: 'domain value missing', input: withMail((t) => void delete (t.domain as Record<string, unknown>).version), field: 'domain.version' },
    { name: 'domain chainId not an integer', input: withMail((t) => void ((t.domain as Record<string, unknown>).chainId = 'one')), field: 'domain.chainId' },
    { name: 'missing primaryType', input: withMail((t) => void delete (t as Record<string, unknown>).primaryType), field: 'primaryType' },
    { name: 'undefined primaryType', input: { ...mail, primaryType: 'Letter' }, field: 'primaryType' },
    { name: 'primaryType EIP712Domain', input: { ...mail, primaryType: 'EIP712Domain' }, field: 'primaryType' },
    { name: 'missing message', input: withMail((t) => void delete (t as Record<string, unknown>).message), field: 'message' },
    { name: 'missing message field', input: withMail((t) => void delete (t.message as Record<string, unknown>).contents), field: 'message.contents' },
    { name: 'extra message field', input: withMail((t) => void ((t.message as Record<string, unknown>).cc = 'x')), field: 'message.cc' },
    { name: 'nested missing field', input: withMail((t) => void delete (t.message.to as Record<string, unknown>).wallet), field: 'message.to.wallet' },
    { name: 'bad address', input: withMail((t) => void (t.message.to.wallet = '0x1234')), field: 'message.to.wallet' },
    { name: 'bad address checksum', input: withMail((t) => void (t.message.to.wallet = '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbb')), field: 'message.to.wallet' },
    { name: 'string field given a number', input: withMail((t) => void ((t.message as Record<string, unknown>).contents = 5)), field: 'message.contents' },
    { name: 'lone surrogate in string', input: withMail((t) => void (t.message.contents = 'a\udc00')), field: 'message.contents' },
    { name: 'unknown field type', input: withMail((t) => void (t.types.Mail[2]!.type = 'Text')), field: 'types.Mail[2].type' },
    { name: 'malformed field type', input: withMail((t) => void (t.types.Mail[2]!.type = 'string[')), field: 'types.Mail[2].type' },
    { name: 'uint without width', input: withMail((t) => void (t.types.Mail[2]!.type = 'uint')), field: 'types.Mail[2].type' },
    { name: 'bytes33', input: withMail((t) => void (t.types.Mail[2]!.type = 'bytes33')), field: 'types.Mail[2].type' },
    { name: 'uint7', input: withMail((t) => void (t.types.Mail[2]!.type = 'uint7')), field: 'types.Mail[2].type' },
    { name: 'zero-length fixed array', input: withMail((t) => void (t.types.Mail[2]!.type = 'string[0]')), field: 'types.Mail[2].type' },
    { name: 'struct named like a Solidity type', input: withMail((t) => void ((t.types as Record<string, unknown>).uint7 = [])), field: 'types.uint7' },
    { name: 'duplicate field name', input: withMail((t) => void t.types.Person.push({ name: 'name', type: 'string' })), field: 'types.Person[2].name' },
    { name: 'field name not an identifier', input: withMail((t) => void (t.types.Person[0]!.name = 'na me')), field: 'types.Person[0].name' },
    {
      name: '__proto__ as a field name',
      input: JSON.parse(JSON.stringify(mail).replace('"contents"', '"__proto__"')),
      field: 'types.Mail[2].name',
    },
    {
      name: '__proto__ as a struct name',
      input: JSON.parse(JSON.stringify(mail).replace('"Person":', '"__proto__":')),
      field: 'types.__proto__',
    },
    { name: 'type entry with extra key', input: withMail((t) => void ((t.types.Person[0] as Record<string, unknown>).x = 1)), field: 'types.Person[0].x' },
    { name: 'EIP712Domain used as a field type', input: withMail((t) => void (t.types.Mail[2]!.type = 'EIP712Domain')), field: 'types.Mail[2].type' },
  ];
  const order = (m: Record<string, unknown>): unknown => ({ types: complex.types, primaryType: 'Order', domain: complex.domain, message: { ...complex.message, ...m } });
  table.push(
    { name: 'uint8 overflow', input: order({ grid: [[256]] }), field: 'message.grid[0][0]' },
    { name: 'negative uint', input: order({ amounts: ['-1'] }), field: 'message.amounts[0]' },
    { name: 'int64 underflow', input: order({ deltas: ['-9223372036854775809', 0] }), field: 'message.deltas[0]' },
    { name: 'fixed array of wrong length', input: order({ deltas: [1] }), field: 'message.deltas' },
    { name: 'unsafe JS number', input: order({ amounts: [2 ** 60] }), field: 'message.amounts[0]' },
    { name: 'fractional number', input: order({ amounts: [1.5] }), field: 'message.amounts[0]' },
    { name: 'integer with junk', input: order({ amounts: ['12abc'] }), field: 'message.amounts[0]' },
    { name: 'bytes4 wrong length', input: order({ tag: '0xdeadbe' }), field: 'message.tag' },
    { name: 'bytes not hex', input: order({ payload: 'hello' }), field: 'message.payload' },
    { name: 'bool as string', input: order({ active: 'true' }), field: 'message.active' },
    { name: 'array given an object', input: order({ owners: {} }), field: 'message.owners' },
    { name: 'nesting too deep', input: { types: recursive, primaryType: 'Node', domain: {}, message: deep }, field: /^message(\.children\[0\]){15,}/ },
  );

  for (const { name, input, field } of table) {
    it(name, () => {
      let err: unknown;
      try {
        signTypedDataV4(COW, input);
      } catch (e) {
        err = e;
      }
      expect(err, 'should have thrown').toBeInstanceOf(SigningError);
      expect((err as SigningError).code).toBe('SIGN_INVALID_PARAMS');
      if (typeof field === 'string') expect((err as SigningError).field).toBe(field);
      else expect((err as SigningError).field).toMatch(field);
    });
  }
});
