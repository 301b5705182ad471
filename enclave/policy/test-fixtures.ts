/** Shared by the *.test.ts files in this folder (and bench/policy.ts) only. Nothing in production imports it. */
import { generateKeyPairSync } from 'node:crypto';
import { HDKey } from '@scure/bip32';
import * as btc from '@scure/btc-signer';
import { encodeFunctionData, erc20Abi, maxUint256, maxUint160 } from 'viem';
import type { JsonLike } from '../../common/cbor-json.js';
import { buildIntent } from './build-intent.js';
import { compilePolicy, type CompiledPolicy } from './document.js';
import type { Intent, PolicyOp } from './intent.js';

// ── well-known mainnet contracts (real addresses, lowercase) ─────────────────
export const USDC = '0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48';
export const USDT = '0xdac17f958d2ee523a2206206994597c13d831ec7';
export const DAI = '0x6b175474e89094c44da98b954eedeac495271d0f';
export const PERMIT2 = '0x000000000022d473030f116ddee9f6b43ac78ba3';
export const SEAPORT = '0x00000000000000adc04c56bf30ac9d3c0aaf14dc';
export const UNISWAP_ROUTER = '0x3fc91a3afd70395cd496c647d5a6cc9d4b2b7fad';
export const WETH = '0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2';
/** Test counterparties. */
export const ALICE_ADDR = '0x1111111111111111111111111111111111111111';
export const BOB_ADDR = '0x2222222222222222222222222222222222222222';
export const KYC_1 = '0x3333333333333333333333333333333333333333';
export const KYC_2 = '0x4444444444444444444444444444444444444444';
export const STRANGER = '0x5555555555555555555555555555555555555555';
export const BLOCKED = '0x6666666666666666666666666666666666666666';
export const DELEGATE_OK = '0x7777777777777777777777777777777777777777';
export const DELEGATE_BAD = '0x8888888888888888888888888888888888888888';
export const KEY_1 = '0b9a8c4e-1f2d-4c3b-9a8e-7d6c5b4a3f21';
export const KEY_2 = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
export const ETH = 10n ** 18n;

// ── principals ───────────────────────────────────────────────────────────────
function pem(kind: 'ed25519' | 'p256'): string {
  const kp = kind === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return kp.publicKey.export({ type: 'spki', format: 'pem' }) as string;
}
export const PRINCIPALS = {
  backend: { alg: 'ed25519', publicKey: pem('ed25519') },
  alice: { alg: 'ecdsa-p256', publicKey: pem('p256') },
  bob: { alg: 'ed25519', publicKey: pem('ed25519') },
  carol: { alg: 'ecdsa-p256', publicKey: pem('p256') },
} as const;

export function policy(rules: unknown[], extra: Record<string, unknown> = {}): CompiledPolicy {
  return compilePolicy({ policyVersion: 1, name: 'test', principals: PRINCIPALS, rules, ...extra });
}

// ── Ethereum requests ────────────────────────────────────────────────────────
export function tx(fields: { to?: string | null; value?: bigint; data?: string; chainId?: number; gas?: bigint; maxFeePerGas?: bigint; authorizationList?: unknown[] } = {}): Record<string, JsonLike> {
  const t: Record<string, JsonLike> = {
    type: fields.authorizationList ? '0x4' : '0x2',
    chainId: `0x${(fields.chainId ?? 1).toString(16)}`,
    nonce: '0x0',
    gas: `0x${(fields.gas ?? 21000n).toString(16)}`,
    maxFeePerGas: `0x${(fields.maxFeePerGas ?? 30_000_000_000n).toString(16)}`,
    maxPriorityFeePerGas: '0x3b9aca00',
    value: `0x${(fields.value ?? 0n).toString(16)}`,
  };
  if (fields.to !== null) t.to = fields.to ?? ALICE_ADDR;
  if (fields.data !== undefined) t.data = fields.data;
  if (fields.authorizationList) t.authorizationList = fields.authorizationList as JsonLike;
  return { tx: t };
}

export const erc20Transfer = (to: string, amount: bigint) => encodeFunctionData({ abi: erc20Abi, functionName: 'transfer', args: [to as `0x${string}`, amount] });
export const erc20Approve = (spender: string, amount: bigint) => encodeFunctionData({ abi: erc20Abi, functionName: 'approve', args: [spender as `0x${string}`, amount] });
export const erc20TransferFrom = (from: string, to: string, amount: bigint) =>
  encodeFunctionData({ abi: erc20Abi, functionName: 'transferFrom', args: [from as `0x${string}`, to as `0x${string}`, amount] });
export { maxUint256, maxUint160 };

export function authTuple(address: string): Record<string, JsonLike> {
  return { chainId: '0x1', address, nonce: '0x1', yParity: '0x0', r: `0x${'11'.repeat(32)}`, s: `0x${'22'.repeat(32)}` };
}

// ── typed data ───────────────────────────────────────────────────────────────
const DOMAIN_TYPE = [
  { name: 'name', type: 'string' },
  { name: 'version', type: 'string' },
  { name: 'chainId', type: 'uint256' },
  { name: 'verifyingContract', type: 'address' },
];
type TD = Record<string, JsonLike>;

export function permit(spender: string, value: bigint, token = USDC, chainId = 1): TD {
  return {
    typedData: {
      types: {
        EIP712Domain: DOMAIN_TYPE,
        Permit: [
          { name: 'owner', type: 'address' },
          { name: 'spender', type: 'address' },
          { name: 'value', type: 'uint256' },
          { name: 'nonce', type: 'uint256' },
          { name: 'deadline', type: 'uint256' },
        ],
      },
      primaryType: 'Permit',
      domain: { name: 'USD Coin', version: '2', chainId, verifyingContract: token },
      message: { owner: ALICE_ADDR, spender, value: value.toString(), nonce: '0', deadline: '1893456000' },
    },
  };
}

export function daiPermit(spender: string, allowed: boolean): TD {
  return {
    typedData: {
      types: {
        EIP712Domain: DOMAIN_TYPE,
        Permit: [
          { name: 'holder', type: 'address' },
          { name: 'spender', type: 'address' },
          { name: 'nonce', type: 'uint256' },
          { name: 'expiry', type: 'uint256' },
          { name: 'allowed', type: 'bool' },
        ],
      },
      primaryType: 'Permit',
      domain: { name: 'Dai Stablecoin', version: '1', chainId: 1, verifyingContract: DAI },
      message: { holder: ALICE_ADDR, spender, nonce: '0', expiry: '1893456000', allowed },
    },
  };
}

const PERMIT2_DOMAIN = { name: 'Permit2', chainId: 1, verifyingContract: PERMIT2 };
const PERMIT2_DOMAIN_TYPE = [
  { name: 'name', type: 'string' },
  { name: 'chainId', type: 'uint256' },
  { name: 'verifyingContract', type: 'address' },
];
const PERMIT_DETAILS = [
  { name: 'token', type: 'address' },
  { name: 'amount', type: 'uint160' },
  { name: 'expiration', type: 'uint48' },
  { name: 'nonce', type: 'uint48' },
];

export function permit2Single(spender: string, token: string, amount: bigint): TD {
  return {
    typedData: {
      types: {
        EIP712Domain: PERMIT2_DOMAIN_TYPE,
        PermitSingle: [
          { name: 'details', type: 'PermitDetails' },
          { name: 'spender', type: 'address' },
          { name: 'sigDeadline', type: 'uint256' },
        ],
        PermitDetails: PERMIT_DETAILS,
      },
      primaryType: 'PermitSingle',
      domain: PERMIT2_DOMAIN,
      message: { details: { token, amount: amount.toString(), expiration: '1893456000', nonce: '0' }, spender, sigDeadline: '1893456000' },
    },
  };
}

export function permit2Batch(spender: string, items: [string, bigint][]): TD {
  return {
    typedData: {
      types: {
        EIP712Domain: PERMIT2_DOMAIN_TYPE,
        PermitBatch: [
          { name: 'details', type: 'PermitDetails[]' },
          { name: 'spender', type: 'address' },
          { name: 'sigDeadline', type: 'uint256' },
        ],
        PermitDetails: PERMIT_DETAILS,
      },
      primaryType: 'PermitBatch',
      domain: PERMIT2_DOMAIN,
      message: {
        details: items.map(([token, amount], i) => ({ token, amount: amount.toString(), expiration: '1893456000', nonce: String(i) })),
        spender,
        sigDeadline: '1893456000',
      },
    },
  };
}

export function permit2BatchTransfer(spender: string, items: [string, bigint][]): TD {
  return {
    typedData: {
      types: {
        EIP712Domain: PERMIT2_DOMAIN_TYPE,
        PermitBatchTransferFrom: [
          { name: 'permitted', type: 'TokenPermissions[]' },
          { name: 'spender', type: 'address' },
          { name: 'nonce', type: 'uint256' },
          { name: 'deadline', type: 'uint256' },
        ],
        TokenPermissions: [
          { name: 'token', type: 'address' },
          { name: 'amount', type: 'uint256' },
        ],
      },
      primaryType: 'PermitBatchTransferFrom',
      domain: PERMIT2_DOMAIN,
      message: { permitted: items.map(([token, amount]) => ({ token, amount: amount.toString() })), spender, nonce: '7', deadline: '1893456000' },
    },
  };
}

/** A Seaport 1.5 order: the offerer offers `offerAmount` of `token` for 1 ETH. */
export function seaportOrder(token: string, offerAmount: bigint, chainId = 1): TD {
  return {
    typedData: {
      types: {
        EIP712Domain: DOMAIN_TYPE,
        OrderComponents: [
          { name: 'offerer', type: 'address' },
          { name: 'zone', type: 'address' },
          { name: 'offer', type: 'OfferItem[]' },
          { name: 'consideration', type: 'ConsiderationItem[]' },
          { name: 'orderType', type: 'uint8' },
          { name: 'startTime', type: 'uint256' },
          { name: 'endTime', type: 'uint256' },
          { name: 'zoneHash', type: 'bytes32' },
          { name: 'salt', type: 'uint256' },
          { name: 'conduitKey', type: 'bytes32' },
          { name: 'counter', type: 'uint256' },
        ],
        OfferItem: [
          { name: 'itemType', type: 'uint8' },
          { name: 'token', type: 'address' },
          { name: 'identifierOrCriteria', type: 'uint256' },
          { name: 'startAmount', type: 'uint256' },
          { name: 'endAmount', type: 'uint256' },
        ],
        ConsiderationItem: [
          { name: 'itemType', type: 'uint8' },
          { name: 'token', type: 'address' },
          { name: 'identifierOrCriteria', type: 'uint256' },
          { name: 'startAmount', type: 'uint256' },
          { name: 'endAmount', type: 'uint256' },
          { name: 'recipient', type: 'address' },
        ],
      },
      primaryType: 'OrderComponents',
      domain: { name: 'Seaport', version: '1.5', chainId, verifyingContract: SEAPORT },
      message: {
        offerer: ALICE_ADDR,
        zone: '0x0000000000000000000000000000000000000000',
        offer: [{ itemType: 1, token, identifierOrCriteria: '0', startAmount: offerAmount.toString(), endAmount: offerAmount.toString() }],
        consideration: [{ itemType: 0, token: '0x0000000000000000000000000000000000000000', identifierOrCriteria: '0', startAmount: ETH.toString(), endAmount: ETH.toString(), recipient: ALICE_ADDR }],
        orderType: 0,
        startTime: '0',
        endTime: '1893456000',
        zoneHash: `0x${'00'.repeat(32)}`,
        salt: '12345',
        conduitKey: `0x${'00'.repeat(32)}`,
        counter: '0',
      },
    },
  };
}

export function mail(chainId = 1, verifyingContract = '0xcccccccccccccccccccccccccccccccccccccccc'): TD {
  return {
    typedData: {
      types: {
        EIP712Domain: DOMAIN_TYPE,
        Mail: [
          { name: 'from', type: 'string' },
          { name: 'contents', type: 'string' },
        ],
      },
      primaryType: 'Mail',
      domain: { name: 'Ether Mail', version: '1', chainId, verifyingContract },
      message: { from: 'Cow', contents: 'Hello, Bob!' },
    },
  };
}

// ── Bitcoin PSBTs (built with @scure/btc-signer) ─────────────────────────────
export const SEED = new Uint8Array(Buffer.from('5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc19a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4', 'hex'));
export const ROOT = HDKey.fromMasterSeed(SEED);
const OTHER = HDKey.fromMasterSeed(new Uint8Array(32).fill(7));
export const FINGERPRINT = ROOT.fingerprint.toString(16).padStart(8, '0');
export const derivePublicKey = (path: readonly number[]): Uint8Array => {
  let n = ROOT;
  for (const i of path) n = n.deriveChild(i);
  return n.publicKey!;
};

export const IN_PATH = "m/84'/0'/0'/0/0";
export const CHANGE_PATH = "m/84'/0'/0'/1/0";
export const TR_CHANGE_PATH = "m/86'/0'/0'/1/0";
const inKey = ROOT.derive(IN_PATH);
const changeKey = ROOT.derive(CHANGE_PATH);
const trChangeKey = ROOT.derive(TR_CHANGE_PATH);
/** Payout addresses (mainnet). */
export const PAYEE_1 = btc.p2wpkh(OTHER.derive('m/0').publicKey!).address!;
export const PAYEE_2 = btc.p2tr(OTHER.derive('m/1').publicKey!.subarray(1)).address!;
export const FOREIGN = btc.p2wpkh(OTHER.derive('m/2').publicKey!).address!;

export type OutSpec =
  | { to: string; amount: bigint }
  | { change: 'ours' | 'ours-taproot' | 'claims-ours-foreign-key' | 'claims-ours-wrong-path'; amount: bigint };

/** One P2WPKH input of ours worth `inputSats` (omit its amount with inputSats = null: fee unknown). */
export function psbt(outputs: OutSpec[], inputSats: bigint | null = 1_000_000n): Record<string, JsonLike> {
  const t = new btc.Transaction();
  const pay = btc.p2wpkh(inKey.publicKey!);
  t.addInput({
    txid: new Uint8Array(32).fill(1),
    index: 0,
    ...(inputSats === null ? { nonWitnessUtxo: undefined } : { witnessUtxo: { script: pay.script, amount: inputSats } }),
    bip32Derivation: [[inKey.publicKey!, { fingerprint: ROOT.fingerprint, path: btc.bip32Path(IN_PATH) }]],
  });
  for (const o of outputs) {
    if ('to' in o) {
      t.addOutputAddress(o.to, o.amount);
    } else if (o.change === 'ours') {
      t.addOutput({
        script: btc.p2wpkh(changeKey.publicKey!).script,
        amount: o.amount,
        bip32Derivation: [[changeKey.publicKey!, { fingerprint: ROOT.fingerprint, path: btc.bip32Path(CHANGE_PATH) }]],
      });
    } else if (o.change === 'ours-taproot') {
      const x = trChangeKey.publicKey!.subarray(1);
      t.addOutput({
        script: btc.p2tr(x).script,
        amount: o.amount,
        tapInternalKey: x,
        tapBip32Derivation: [[x, { hashes: [], der: { fingerprint: ROOT.fingerprint, path: btc.bip32Path(TR_CHANGE_PATH) } }]],
      });
    } else if (o.change === 'claims-ours-foreign-key') {
      // The host pays a foreign key but labels the output with our fingerprint and a path of ours.
      const foreignKey = OTHER.derive('m/2');
      t.addOutput({
        script: btc.p2wpkh(foreignKey.publicKey!).script,
        amount: o.amount,
        bip32Derivation: [[foreignKey.publicKey!, { fingerprint: ROOT.fingerprint, path: btc.bip32Path(CHANGE_PATH) }]],
      });
    } else {
      // Our key and fingerprint, but the script pays someone else.
      t.addOutput({
        script: btc.p2wpkh(OTHER.derive('m/2').publicKey!).script,
        amount: o.amount,
        bip32Derivation: [[changeKey.publicKey!, { fingerprint: ROOT.fingerprint, path: btc.bip32Path(CHANGE_PATH) }]],
      });
    }
  }
  return { psbt: Buffer.from(t.toPSBT()).toString('base64') };
}

/** The intent of a request on key KEY_1 (PSBTs: with our fingerprint and derivation). */
export function intentOf(op: PolicyOp, request: Record<string, JsonLike>, keyId: string | undefined = KEY_1): Intent {
  return buildIntent(op, request, { ...(keyId === undefined ? {} : { keyId }), masterFingerprint: FINGERPRINT, derivePublicKey });
}
