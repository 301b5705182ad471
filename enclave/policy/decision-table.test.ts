/**
 * The decision table (issue 9, "Proofs"): ≥ 150 requests across every op, each with the
 * outcome and deciding rule the policy must give. Requests are real: calldata encoded by viem
 * (a USDC transfer, a max-value approve), EIP-2612 and DAI permits, Permit2 single/batch/transfer
 * permits, Seaport orders (one with an unlimited offer), and PSBTs built with @scure/btc-signer
 * (change to our own path, change to a foreign address, change claimed with our fingerprint for
 * a foreign key, a fee above the cap, a missing input amount).
 */
import type { JsonLike } from '../../common/cbor-json.js';
import { describe, expect, it } from 'vitest';
import { evaluate, recordSigned, type Outcome } from './evaluate.js';
import type { CompiledPolicy } from './document.js';
import type { PolicyOp } from './intent.js';
import { DEV_RULES, EXECUTE, HOT_RULES } from './policy-fixtures.js';
import {
  ALICE_ADDR, BLOCKED, BOB_ADDR, DAI, DELEGATE_BAD, DELEGATE_OK, ETH, FOREIGN, KEY_1, KEY_2, KYC_1, KYC_2, PAYEE_1, PAYEE_2,
  PERMIT2, SEAPORT, STRANGER, UNISWAP_ROUTER, USDC, USDT, WETH, authTuple, daiPermit, erc20Approve, erc20Transfer,
  erc20TransferFrom, intentOf, mail, maxUint160, maxUint256, permit, permit2Batch, permit2BatchTransfer, permit2Single,
  policy, psbt, seaportOrder, tx,
} from './test-fixtures.js';
import { emptyWindowState, type WindowState } from './windows.js';

interface Case {
  name: string;
  op: PolicyOp;
  req: Record<string, JsonLike>;
  expect: Outcome;
  rule: string | null;
  principal?: string;
  approvals?: string[];
  rejections?: string[];
  key?: string;
  windows?: WindowState;
  policy?: CompiledPolicy;
}

const HOT = policy(HOT_RULES);
const DEV = policy(DEV_RULES);
const EMPTY = policy([]);
const KILL = policy([{ id: 'kill-switch', effect: 'deny' }, ...HOT_RULES]);
const NOW = 1_800_000_000;
const DAY = 86400;

function history(rule: string, key: string, entries: [ageSeconds: number, wei: bigint][]): WindowState {
  return { version: 1, rules: { [rule]: { [key]: entries.map(([age, wei]) => ({ t: NOW - age, value: wei.toString(), amount: '0' })) } } };
}

const execData = (tail = '') => `${EXECUTE}${'00'.repeat(32)}${tail}`;
const usdc = (n: bigint) => n * 1_000_000n;
const T = (o: Parameters<typeof tx>[0]) => tx(o);

const cases: Case[] = [
  // ── plain ETH transfers (eth-small: ≤ 1 ETH to alice/bob on chain 1, 3 ETH / 5 per day) ──
  { name: '0.5 ETH to alice', op: 'eth_signTransaction', req: T({ value: ETH / 2n }), expect: 'signed', rule: 'eth-small' },
  { name: 'exactly 1 ETH to bob', op: 'eth_signTransaction', req: T({ to: BOB_ADDR, value: ETH }), expect: 'signed', rule: 'eth-small' },
  { name: '1 ETH + 1 wei to alice: above maxValueWei', op: 'eth_signTransaction', req: T({ value: ETH + 1n }), expect: 'refused', rule: null },
  { name: 'zero-value ping to alice', op: 'eth_signTransaction', req: T({ value: 0n }), expect: 'signed', rule: 'eth-small' },
  { name: 'checksummed recipient spelling matches the lowercase rule', op: 'eth_signTransaction', req: T({ to: '0x1111111111111111111111111111111111111111'.toUpperCase().replace('0X', '0x'), value: 1n }), expect: 'signed', rule: 'eth-small' },
  { name: '0.5 ETH to alice on chain 5', op: 'eth_signTransaction', req: T({ value: ETH / 2n, chainId: 5 }), expect: 'refused', rule: null },
  { name: '0.5 ETH to alice on chain 137', op: 'eth_signTransaction', req: T({ value: ETH / 2n, chainId: 137 }), expect: 'refused', rule: null },
  { name: 'to alice with calldata: a plain-transfer rule matches only empty calldata', op: 'eth_signTransaction', req: T({ data: '0xdeadbeef' }), expect: 'refused', rule: null },
  { name: 'to alice with one byte of calldata', op: 'eth_signTransaction', req: T({ data: '0x00' }), expect: 'refused', rule: null },
  { name: 'to alice with a USDC-transfer-shaped call (alice is not a token)', op: 'eth_signTransaction', req: T({ data: erc20Transfer(KYC_1, 1n) }), expect: 'refused', rule: null },
  { name: 'to a stranger, 0.1 ETH: needs treasury approvals', op: 'eth_signTransaction', req: T({ to: STRANGER, value: ETH / 10n }), expect: 'pending', rule: 'treasury' },
  { name: 'blocklisted recipient, zero value', op: 'eth_signTransaction', req: T({ to: BLOCKED }), expect: 'refused', rule: 'blocklist' },
  { name: 'blocklisted recipient, with calldata', op: 'eth_signTransaction', req: T({ to: BLOCKED, data: '0x12345678' }), expect: 'refused', rule: 'blocklist' },
  { name: 'blocklisted recipient on another chain', op: 'eth_signTransaction', req: T({ to: BLOCKED, chainId: 10 }), expect: 'refused', rule: 'blocklist' },
  ...[1n, 10n ** 9n, 10n ** 17n, ETH - 1n].map((v): Case => ({ name: `boundary: ${v} wei to bob`, op: 'eth_signTransaction', req: T({ to: BOB_ADDR, value: v }), expect: 'signed', rule: 'eth-small' })),
  ...[ETH + 1n, 2n * ETH, 100n * ETH, maxUint256].map((v): Case => ({ name: `boundary: ${v} wei to bob is refused`, op: 'eth_signTransaction', req: T({ to: BOB_ADDR, value: v }), expect: 'refused', rule: null })),
  ...[1, 10, 56, 8453].filter((c) => c !== 1).map((c): Case => ({ name: `chain ${c} is not allowed for eth-small`, op: 'eth_signTransaction', req: T({ value: 1n, chainId: c }), expect: 'refused', rule: null })),

  // ── windows (per rule and key, only what was signed) ──
  { name: 'window: 2.5 ETH already today, 0.5 more fits', op: 'eth_signTransaction', req: T({ value: ETH / 2n }), windows: history('eth-small', KEY_1, [[100, ETH], [200, ETH], [300, ETH / 2n]]), expect: 'signed', rule: 'eth-small' },
  { name: 'window: 3 ETH already today, refused', op: 'eth_signTransaction', req: T({ value: 1n }), windows: history('eth-small', KEY_1, [[100, ETH], [200, ETH], [300, ETH]]), expect: 'refused', rule: 'eth-small' },
  { name: 'window: 5 signatures already today (count cap)', op: 'eth_signTransaction', req: T({ value: 0n }), windows: history('eth-small', KEY_1, [[1, 0n], [2, 0n], [3, 0n], [4, 0n], [5, 0n]]), expect: 'refused', rule: 'eth-small' },
  { name: 'window: 4 signatures today, the 5th fits', op: 'eth_signTransaction', req: T({ value: 0n }), windows: history('eth-small', KEY_1, [[1, 0n], [2, 0n], [3, 0n], [4, 0n]]), expect: 'signed', rule: 'eth-small' },
  { name: 'window: yesterday\'s spending has rolled off', op: 'eth_signTransaction', req: T({ value: ETH }), windows: history('eth-small', KEY_1, [[DAY, ETH], [DAY + 5, ETH], [2 * DAY, ETH]]), expect: 'signed', rule: 'eth-small' },
  { name: 'window: another key\'s spending does not count', op: 'eth_signTransaction', req: T({ value: ETH }), windows: history('eth-small', KEY_2, [[1, ETH], [2, ETH], [3, ETH]]), expect: 'signed', rule: 'eth-small' },
  { name: 'window: another key, own key exhausted', op: 'eth_signTransaction', req: T({ value: ETH }), key: KEY_2, windows: history('eth-small', KEY_2, [[1, ETH], [2, ETH], [3, ETH]]), expect: 'refused', rule: 'eth-small' },
  { name: 'window: another rule\'s history does not count', op: 'eth_signTransaction', req: T({ value: ETH }), windows: history('treasury', KEY_1, [[1, ETH], [2, ETH], [3, ETH]]), expect: 'signed', rule: 'eth-small' },
  { name: 'window: 2.5 ETH today, 0.6 more exceeds', op: 'eth_signTransaction', req: T({ value: (ETH * 6n) / 10n }), windows: history('eth-small', KEY_1, [[100, ETH], [200, ETH], [300, ETH / 2n]]), expect: 'refused', rule: 'eth-small' },

  // ── treasury: 2 of alice/bob/carol, separation of duties, veto ──
  { name: 'treasury: one approval is not enough', op: 'eth_signTransaction', req: T({ to: STRANGER, value: 5n * ETH }), approvals: ['alice'], expect: 'pending', rule: 'treasury' },
  { name: 'treasury: alice + bob', op: 'eth_signTransaction', req: T({ to: STRANGER, value: 5n * ETH }), approvals: ['alice', 'bob'], expect: 'signed', rule: 'treasury' },
  { name: 'treasury: bob + carol', op: 'eth_signTransaction', req: T({ to: STRANGER, value: 5n * ETH }), approvals: ['carol', 'bob'], expect: 'signed', rule: 'treasury' },
  { name: 'treasury: all three', op: 'eth_signTransaction', req: T({ to: STRANGER, value: 5n * ETH }), approvals: ['carol', 'bob', 'alice'], expect: 'signed', rule: 'treasury' },
  { name: 'treasury: alice twice counts once', op: 'eth_signTransaction', req: T({ to: STRANGER, value: 5n * ETH }), approvals: ['alice', 'alice'], expect: 'pending', rule: 'treasury' },
  { name: 'treasury: backend is not an approver', op: 'eth_signTransaction', req: T({ to: STRANGER, value: 5n * ETH }), approvals: ['alice', 'backend'], expect: 'pending', rule: 'treasury' },
  { name: 'treasury: host is not an approver', op: 'eth_signTransaction', req: T({ to: STRANGER, value: 5n * ETH }), approvals: ['alice', 'host'], expect: 'pending', rule: 'treasury' },
  { name: 'treasury: alice requests, her own approval does not count', op: 'eth_signTransaction', req: T({ to: STRANGER, value: 5n * ETH }), principal: 'alice', approvals: ['alice', 'bob'], expect: 'pending', rule: 'treasury' },
  { name: 'treasury: alice requests, bob + carol approve', op: 'eth_signTransaction', req: T({ to: STRANGER, value: 5n * ETH }), principal: 'alice', approvals: ['bob', 'carol'], expect: 'signed', rule: 'treasury' },
  { name: 'treasury: carol rejects (veto) despite two approvals', op: 'eth_signTransaction', req: T({ to: STRANGER, value: 5n * ETH }), approvals: ['alice', 'bob'], rejections: ['carol'], expect: 'refused', rule: 'treasury' },
  { name: 'treasury: a rejection by a non-approver does not veto', op: 'eth_signTransaction', req: T({ to: STRANGER, value: 5n * ETH }), approvals: ['alice', 'bob'], rejections: ['backend'], expect: 'signed', rule: 'treasury' },
  { name: 'treasury: no approvals yet', op: 'eth_signTransaction', req: T({ to: STRANGER, value: maxUint256 }), expect: 'pending', rule: 'treasury' },
  { name: 'treasury: calldata to the stranger is not a plain transfer', op: 'eth_signTransaction', req: T({ to: STRANGER, data: '0xa9059cbb' }), approvals: ['alice', 'bob'], expect: 'refused', rule: null },
  { name: 'treasury: approvals cannot override the blocklist', op: 'eth_signTransaction', req: T({ to: BLOCKED, value: 1n }), approvals: ['alice', 'bob', 'carol'], expect: 'refused', rule: 'blocklist' },

  // ── ERC-20: USDC to KYC'd recipients (real calldata) ──
  { name: 'USDC transfer 1000 to KYC 1', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Transfer(KYC_1, usdc(1000n)), gas: 65000n }), expect: 'signed', rule: 'usdc-kyc' },
  { name: 'USDC transfer 1 to KYC 2 (checksummed token address)', op: 'eth_signTransaction', req: T({ to: '0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48', data: erc20Transfer(KYC_2, usdc(1n)), gas: 65000n }), expect: 'signed', rule: 'usdc-kyc' },
  { name: 'USDC transfer 1000.000001 to KYC 1: above maxAmount', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Transfer(KYC_1, usdc(1000n) + 1n) }), expect: 'refused', rule: null },
  { name: 'USDC transfer to a non-KYC address', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Transfer(STRANGER, 1n) }), expect: 'refused', rule: null },
  { name: 'USDC transfer to a blocklisted address (deny reads the decoded recipient)', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Transfer(BLOCKED, 1n) }), expect: 'refused', rule: 'blocklist' },
  { name: 'USDC transfer on Polygon', op: 'eth_signTransaction', req: T({ to: USDC, chainId: 137, data: erc20Transfer(KYC_1, 1n) }), expect: 'refused', rule: null },
  { name: 'USDC transfer that also sends ether', op: 'eth_signTransaction', req: T({ to: USDC, value: 1n, data: erc20Transfer(KYC_1, 1n) }), expect: 'refused', rule: null },
  { name: 'USDT transfer to KYC 1 (token not listed)', op: 'eth_signTransaction', req: T({ to: USDT, data: erc20Transfer(KYC_1, 1n) }), expect: 'refused', rule: null },
  { name: 'USDC transfer with a trailing byte is not decoded as a transfer', op: 'eth_signTransaction', req: T({ to: USDC, data: `${erc20Transfer(KYC_1, 1n)}00` }), expect: 'refused', rule: null },
  { name: 'USDC transfer with dirty address padding is not decoded', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Transfer(KYC_1, 1n).replace(`000000000000000000000000${KYC_1.slice(2)}`, `ff0000000000000000000000${KYC_1.slice(2)}`) }), expect: 'refused', rule: null },
  { name: 'USDC transfer truncated by one byte', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Transfer(KYC_1, 1n).slice(0, -2) }), expect: 'refused', rule: null },
  { name: 'USDC transferFrom KYC 1 → KYC 2 (only transfer is allowed)', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20TransferFrom(KYC_1, KYC_2, 1n) }), expect: 'refused', rule: null },
  { name: 'USDC transfer of 0 to KYC 1', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Transfer(KYC_1, 0n) }), expect: 'signed', rule: 'usdc-kyc' },
  ...[1n, 999_999n, usdc(999n), usdc(1000n)].map((a): Case => ({ name: `USDC ${a} base units to KYC 2`, op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Transfer(KYC_2, a) }), expect: 'signed', rule: 'usdc-kyc' })),
  ...[usdc(1000n) + 1n, usdc(10n ** 6n), maxUint256].map((a): Case => ({ name: `USDC ${a} base units to KYC 2 is refused`, op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Transfer(KYC_2, a) }), expect: 'refused', rule: null })),

  // ── ERC-20 approvals ──
  { name: 'max-value USDC approve to the router: above maxAmount', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Approve(UNISWAP_ROUTER, maxUint256) }), expect: 'refused', rule: null },
  { name: 'USDC approve 1,000,000 USDC to the router', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Approve(UNISWAP_ROUTER, usdc(10n ** 6n)) }), expect: 'signed', rule: 'usdc-approve-router' },
  { name: 'USDC approve to a stranger', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Approve(STRANGER, 1n) }), expect: 'refused', rule: null },
  { name: 'USDC approve to a blocklisted spender', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Approve(BLOCKED, 1n) }), expect: 'refused', rule: 'blocklist' },
  { name: 'USDC approve revoke (0) to the router', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Approve(UNISWAP_ROUTER, 0n) }), expect: 'signed', rule: 'usdc-approve-router' },
  { name: 'WETH approve to the router (token not listed)', op: 'eth_signTransaction', req: T({ to: WETH, data: erc20Approve(UNISWAP_ROUTER, 1n) }), expect: 'refused', rule: null },
  { name: 'USDC transfer to the router (approve rule does not cover transfer)', op: 'eth_signTransaction', req: T({ to: USDC, data: erc20Transfer(UNISWAP_ROUTER, 1n) }), expect: 'refused', rule: null },

  // ── contract calls (router execute, value and fee caps) ──
  { name: 'router execute with 1 ETH', op: 'eth_signTransaction', req: T({ to: UNISWAP_ROUTER, value: ETH, data: execData(), gas: 200000n }), expect: 'signed', rule: 'router-calls' },
  { name: 'router execute with 5 ETH', op: 'eth_signTransaction', req: T({ to: UNISWAP_ROUTER, value: 5n * ETH, data: execData(), gas: 200000n }), expect: 'signed', rule: 'router-calls' },
  { name: 'router execute with 6 ETH: above maxValueWei', op: 'eth_signTransaction', req: T({ to: UNISWAP_ROUTER, value: 6n * ETH, data: execData() }), expect: 'refused', rule: null },
  { name: 'router execute, max fee 0.06 ETH: above maxFeeWei', op: 'eth_signTransaction', req: T({ to: UNISWAP_ROUTER, data: execData(), gas: 2_000_000n }), expect: 'refused', rule: null },
  { name: 'router execute, max fee exactly 0.05 ETH', op: 'eth_signTransaction', req: T({ to: UNISWAP_ROUTER, data: execData(), gas: 1_000_000n, maxFeePerGas: 50_000_000_000n }), expect: 'signed', rule: 'router-calls' },
  { name: 'router, another selector', op: 'eth_signTransaction', req: T({ to: UNISWAP_ROUTER, data: `0x24856bc3${'00'.repeat(32)}` }), expect: 'refused', rule: null },
  { name: 'router, empty calldata (plain ETH to the router)', op: 'eth_signTransaction', req: T({ to: UNISWAP_ROUTER, value: 1n }), expect: 'refused', rule: null },
  { name: 'router, 2 bytes of calldata', op: 'eth_signTransaction', req: T({ to: UNISWAP_ROUTER, data: '0x3593' }), expect: 'refused', rule: null },
  { name: 'router execute on chain 10', op: 'eth_signTransaction', req: T({ to: UNISWAP_ROUTER, chainId: 10, data: execData() }), expect: 'refused', rule: null },
  { name: 'execute selector on another contract', op: 'eth_signTransaction', req: T({ to: WETH, data: execData() }), expect: 'refused', rule: null },
  { name: 'router execute with odd trailing bytes still has the selector', op: 'eth_signTransaction', req: T({ to: UNISWAP_ROUTER, data: execData('abcd'), gas: 100000n }), expect: 'signed', rule: 'router-calls' },

  // ── contract creation ──
  { name: 'contract creation by the host', op: 'eth_signTransaction', req: T({ to: null, data: '0x6080604052', gas: 500000n }), expect: 'refused', rule: null },
  { name: 'contract creation by backend', op: 'eth_signTransaction', req: T({ to: null, data: '0x6080604052', gas: 500000n }), principal: 'backend', expect: 'signed', rule: 'deploy' },
  { name: 'contract creation by alice', op: 'eth_signTransaction', req: T({ to: null, data: '0x6080604052' }), principal: 'alice', expect: 'refused', rule: null },
  { name: 'contract creation by backend on chain 5', op: 'eth_signTransaction', req: T({ to: null, data: '0x60', chainId: 5 }), principal: 'backend', expect: 'signed', rule: 'deploy' },
  { name: 'contract creation is not a plain transfer under the dev policy\'s catch-all', op: 'eth_signTransaction', req: T({ to: null, data: '0x60' }), policy: DEV, expect: 'signed', rule: 'dev-create' },
  { name: 'a normal tx by backend is not matched by the deploy rule', op: 'eth_signTransaction', req: T({ to: STRANGER, value: 1n }), principal: 'backend', expect: 'pending', rule: 'treasury' },

  // ── EIP-7702 delegations ──
  { name: '7702 tx delegating to the allowed contract, by backend', op: 'eth_signTransaction', req: T({ authorizationList: [authTuple(DELEGATE_OK)] }), principal: 'backend', expect: 'signed', rule: 'delegation' },
  { name: '7702 tx delegating to another contract, by backend', op: 'eth_signTransaction', req: T({ authorizationList: [authTuple(DELEGATE_BAD)] }), principal: 'backend', expect: 'refused', rule: null },
  { name: '7702 tx with one good and one bad delegate', op: 'eth_signTransaction', req: T({ authorizationList: [authTuple(DELEGATE_OK), authTuple(DELEGATE_BAD)] }), principal: 'backend', expect: 'refused', rule: null },
  { name: '7702 tx to the allowed delegate, by the host', op: 'eth_signTransaction', req: T({ authorizationList: [authTuple(DELEGATE_OK)] }), expect: 'refused', rule: null },
  { name: '7702 tx to alice under eth-small: a plain-transfer rule does not cover delegation', op: 'eth_signTransaction', req: T({ value: 1n, authorizationList: [authTuple(DELEGATE_OK)] }), expect: 'refused', rule: null },
  { name: '7702 tx delegating to a blocklisted contract', op: 'eth_signTransaction', req: T({ authorizationList: [authTuple(BLOCKED)] }), principal: 'backend', expect: 'refused', rule: 'blocklist' },
  { name: 'authorization for the allowed delegate, by backend', op: 'signer_signAuthorization', req: { authorization: { chainId: 1, address: DELEGATE_OK, nonce: 0 } }, principal: 'backend', expect: 'signed', rule: 'delegation' },
  { name: 'authorization for another delegate', op: 'signer_signAuthorization', req: { authorization: { chainId: 1, address: DELEGATE_BAD, nonce: 0 } }, principal: 'backend', expect: 'refused', rule: null },
  { name: 'authorization by the host', op: 'signer_signAuthorization', req: { authorization: { chainId: 1, address: DELEGATE_OK, nonce: 0 } }, expect: 'refused', rule: null },
  { name: 'authorization to a blocklisted delegate', op: 'signer_signAuthorization', req: { authorization: { chainId: 1, address: BLOCKED, nonce: 0 } }, principal: 'backend', expect: 'refused', rule: 'blocklist' },

  // ── EIP-2612 / DAI permits ──
  { name: 'USDC permit 1000 to the router', op: 'eth_signTypedData_v4', req: permit(UNISWAP_ROUTER, usdc(1000n)), expect: 'signed', rule: 'permit-router' },
  { name: 'USDC permit 1000.000001 to the router', op: 'eth_signTypedData_v4', req: permit(UNISWAP_ROUTER, usdc(1000n) + 1n), expect: 'refused', rule: null },
  { name: 'USDC permit unlimited to the router', op: 'eth_signTypedData_v4', req: permit(UNISWAP_ROUTER, maxUint256), expect: 'refused', rule: null },
  { name: 'USDC permit to a stranger', op: 'eth_signTypedData_v4', req: permit(STRANGER, 1n), expect: 'refused', rule: null },
  { name: 'USDC permit to a blocklisted spender', op: 'eth_signTypedData_v4', req: permit(BLOCKED, 1n), expect: 'refused', rule: 'blocklist' },
  { name: 'USDC permit on chain 5', op: 'eth_signTypedData_v4', req: permit(UNISWAP_ROUTER, 1n, USDC, 5), expect: 'refused', rule: null },
  { name: 'USDT-domain permit to the router', op: 'eth_signTypedData_v4', req: permit(UNISWAP_ROUTER, 1n, USDT), expect: 'refused', rule: null },
  { name: 'DAI permit (allowed=true is unlimited) to the router', op: 'eth_signTypedData_v4', req: daiPermit(UNISWAP_ROUTER, true), expect: 'refused', rule: null },
  { name: 'DAI permit to the router under dev (permitSpenders any)', op: 'eth_signTypedData_v4', req: daiPermit(UNISWAP_ROUTER, true), policy: DEV, expect: 'signed', rule: 'dev-permits' },
  { name: 'USDC permit 0 to the router', op: 'eth_signTypedData_v4', req: permit(UNISWAP_ROUTER, 0n), expect: 'signed', rule: 'permit-router' },

  // ── Permit2 ──
  { name: 'Permit2 single: 1 USDC to the router', op: 'eth_signTypedData_v4', req: permit2Single(UNISWAP_ROUTER, USDC, usdc(1n)), expect: 'signed', rule: 'permit2-router' },
  { name: 'Permit2 single: max uint160 (unlimited) USDC to the router', op: 'eth_signTypedData_v4', req: permit2Single(UNISWAP_ROUTER, USDC, maxUint160), expect: 'refused', rule: null },
  { name: 'Permit2 single: USDT not in permitTokens', op: 'eth_signTypedData_v4', req: permit2Single(UNISWAP_ROUTER, USDT, 1n), expect: 'refused', rule: null },
  { name: 'Permit2 single: spender is a stranger', op: 'eth_signTypedData_v4', req: permit2Single(STRANGER, USDC, 1n), expect: 'refused', rule: null },
  { name: 'Permit2 batch: USDC + WETH to the router', op: 'eth_signTypedData_v4', req: permit2Batch(UNISWAP_ROUTER, [[USDC, usdc(50n)], [WETH, ETH]]), expect: 'signed', rule: 'permit2-router' },
  { name: 'Permit2 batch: one of three tokens (USDT) not listed', op: 'eth_signTypedData_v4', req: permit2Batch(UNISWAP_ROUTER, [[USDC, 1n], [WETH, 1n], [USDT, 1n]]), expect: 'refused', rule: null },
  { name: 'Permit2 batch: WETH amount unlimited', op: 'eth_signTypedData_v4', req: permit2Batch(UNISWAP_ROUTER, [[USDC, 1n], [WETH, maxUint160]]), expect: 'refused', rule: null },
  { name: 'Permit2 batch: exactly the cap', op: 'eth_signTypedData_v4', req: permit2Batch(UNISWAP_ROUTER, [[WETH, 10n ** 24n]]), expect: 'signed', rule: 'permit2-router' },
  { name: 'Permit2 batch: spender is a stranger', op: 'eth_signTypedData_v4', req: permit2Batch(STRANGER, [[USDC, 1n]]), expect: 'refused', rule: null },
  { name: 'Permit2 batch: spender blocklisted', op: 'eth_signTypedData_v4', req: permit2Batch(BLOCKED, [[USDC, 1n]]), expect: 'refused', rule: 'blocklist' },
  { name: 'Permit2 batch transfer: USDC + WETH to the router', op: 'eth_signTypedData_v4', req: permit2BatchTransfer(UNISWAP_ROUTER, [[USDC, 1n], [WETH, 2n]]), expect: 'signed', rule: 'permit2-router' },
  { name: 'Permit2 batch transfer: unlimited USDC', op: 'eth_signTypedData_v4', req: permit2BatchTransfer(UNISWAP_ROUTER, [[USDC, maxUint256]]), expect: 'refused', rule: null },
  { name: 'Permit2 batch transfer: DAI not listed', op: 'eth_signTypedData_v4', req: permit2BatchTransfer(UNISWAP_ROUTER, [[DAI, 1n]]), expect: 'refused', rule: null },

  // ── Seaport ──
  { name: 'Seaport order offering 1000 USDC', op: 'eth_signTypedData_v4', req: seaportOrder(USDC, usdc(1000n)), expect: 'signed', rule: 'seaport-offers' },
  { name: 'Seaport order with an unlimited offer (max uint256)', op: 'eth_signTypedData_v4', req: seaportOrder(USDC, maxUint256), expect: 'refused', rule: null },
  { name: 'Seaport order above the cap', op: 'eth_signTypedData_v4', req: seaportOrder(WETH, 10n ** 12n + 1n), expect: 'refused', rule: null },
  { name: 'Seaport order on Polygon', op: 'eth_signTypedData_v4', req: seaportOrder(USDC, 1n, 137), expect: 'refused', rule: null },
  { name: 'Seaport unlimited order under dev (permitSpenders any)', op: 'eth_signTypedData_v4', req: seaportOrder(USDC, maxUint256), policy: DEV, expect: 'signed', rule: 'dev-permits' },

  // ── other typed data ──
  { name: 'Mail on chain 1', op: 'eth_signTypedData_v4', req: mail(1), expect: 'signed', rule: 'mail' },
  { name: 'Mail on chain 5', op: 'eth_signTypedData_v4', req: mail(5), expect: 'refused', rule: null },
  { name: 'Mail under the dev catch-all (no grants)', op: 'eth_signTypedData_v4', req: mail(5), policy: DEV, expect: 'signed', rule: 'dev-all' },
  { name: 'USDC permit under the dev catch-all is not enough: it needs permitSpenders', op: 'eth_signTypedData_v4', req: permit(STRANGER, 1n), policy: policy([{ id: 'all', effect: 'allow' }]), expect: 'refused', rule: null },

  // ── personal_sign / eth_sign / raw digests ──
  { name: 'personal_sign by backend', op: 'personal_sign', req: { message: 'hello' }, principal: 'backend', expect: 'signed', rule: 'backend-messages' },
  { name: 'personal_sign hex by backend', op: 'personal_sign', req: { message: '0xdeadbeef' }, principal: 'backend', expect: 'signed', rule: 'backend-messages' },
  { name: 'personal_sign by the host', op: 'personal_sign', req: { message: 'hello' }, expect: 'refused', rule: null },
  { name: 'personal_sign by alice', op: 'personal_sign', req: { message: 'hello' }, principal: 'alice', expect: 'refused', rule: null },
  { name: 'eth_sign by backend: no rule names it', op: 'eth_sign', req: { data: '0xdeadbeef' }, principal: 'backend', expect: 'refused', rule: null },
  { name: 'eth_sign under a catch-all allow: still refused', op: 'eth_sign', req: { data: '0xdeadbeef' }, policy: policy([{ id: 'all', effect: 'allow' }]), expect: 'refused', rule: null },
  { name: 'eth_sign under dev: named by dev-raw', op: 'eth_sign', req: { data: '0xdeadbeef' }, policy: DEV, expect: 'signed', rule: 'dev-raw' },
  { name: 'signDigest by backend on key 1', op: 'signer_signDigest', req: { digest: `0x${'ab'.repeat(32)}` }, principal: 'backend', expect: 'signed', rule: 'digest-backend' },
  { name: 'signDigest by backend on key 2', op: 'signer_signDigest', req: { digest: `0x${'ab'.repeat(32)}` }, principal: 'backend', key: KEY_2, expect: 'refused', rule: null },
  { name: 'signDigest by the host', op: 'signer_signDigest', req: { digest: `0x${'ab'.repeat(32)}` }, expect: 'refused', rule: null },
  { name: 'signDigest under a catch-all allow: refused', op: 'signer_signDigest', req: { digest: `0x${'ab'.repeat(32)}` }, policy: policy([{ id: 'all', effect: 'allow' }]), expect: 'refused', rule: null },
  { name: 'signSchnorr by backend: no rule names it', op: 'signer_signSchnorr', req: { message: `0x${'cd'.repeat(32)}` }, principal: 'backend', expect: 'refused', rule: null },
  { name: 'signSchnorr under dev', op: 'signer_signSchnorr', req: { message: `0x${'cd'.repeat(32)}` }, policy: DEV, expect: 'signed', rule: 'dev-raw' },
  { name: 'signDigest under a catch-all allow that names it', op: 'signer_signDigest', req: { digest: `0x${'ab'.repeat(32)}` }, policy: policy([{ id: 'raw', effect: 'allow', ops: ['signer_signDigest'] }]), expect: 'signed', rule: 'raw' },

  // ── keys ──
  { name: 'deriveKey', op: 'signer_deriveKey', req: { path: "m/84'/0'/0'/0/5" }, expect: 'signed', rule: 'keys' },
  { name: 'createKey (no key id)', op: 'signer_createKey', req: { kind: 'bip32-seed' }, key: '', expect: 'signed', rule: 'keys' },
  { name: 'createKey under a policy that only lets backend create', op: 'signer_createKey', req: { kind: 'secp256k1' }, key: '', policy: policy([{ id: 'mk', effect: 'allow', ops: ['signer_createKey'], principals: ['backend'] }]), expect: 'refused', rule: null },
  { name: 'createKey by backend under that policy', op: 'signer_createKey', req: { kind: 'secp256k1' }, key: '', principal: 'backend', policy: policy([{ id: 'mk', effect: 'allow', ops: ['signer_createKey'], principals: ['backend'] }]), expect: 'signed', rule: 'mk' },
  { name: 'a key-scoped rule never matches createKey', op: 'signer_createKey', req: { kind: 'secp256k1' }, key: '', policy: policy([{ id: 'k', effect: 'allow', ops: ['signer_createKey', 'signer_deriveKey'], keys: [KEY_1] }]), expect: 'refused', rule: null },

  // ── Bitcoin payouts ──
  { name: 'PSBT: 0.5 BTC to payee 1, change to our own path', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_1, amount: 50_000_000n }, { change: 'ours', amount: 49_970_000n }], 100_000_000n), expect: 'signed', rule: 'btc-out' },
  { name: 'PSBT: taproot change to our own path', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_2, amount: 50_000_000n }, { change: 'ours-taproot', amount: 49_970_000n }], 100_000_000n), expect: 'signed', rule: 'btc-out' },
  { name: 'PSBT: two payees, change ours', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_1, amount: 300_000n }, { to: PAYEE_2, amount: 300_000n }, { change: 'ours', amount: 390_000n }]), expect: 'signed', rule: 'btc-out' },
  { name: 'PSBT: "change" to a foreign address (sanctioned)', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_1, amount: 500_000n }, { to: FOREIGN, amount: 490_000n }]), expect: 'refused', rule: 'btc-sanctioned' },
  { name: 'PSBT: change claimed with our fingerprint for a foreign key', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_1, amount: 500_000n }, { change: 'claims-ours-foreign-key', amount: 490_000n }]), expect: 'refused', rule: 'btc-sanctioned' },
  { name: 'PSBT: our key listed, script pays someone else', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_1, amount: 500_000n }, { change: 'claims-ours-wrong-path', amount: 490_000n }]), expect: 'refused', rule: 'btc-sanctioned' },
  { name: 'PSBT: fee 60,000 sats above the cap', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_1, amount: 500_000n }, { change: 'ours', amount: 440_000n }]), expect: 'refused', rule: null },
  { name: 'PSBT: fee exactly 50,000 sats', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_1, amount: 500_000n }, { change: 'ours', amount: 450_000n }]), expect: 'signed', rule: 'btc-out' },
  { name: 'PSBT: fee 1 sat', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_1, amount: 500_000n }, { change: 'ours', amount: 499_999n }]), expect: 'signed', rule: 'btc-out' },
  { name: 'PSBT: input amount missing (fee unknown)', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_1, amount: 500_000n }], null), expect: 'refused', rule: null },
  { name: 'PSBT: 1.5 BTC to one payee above maxOutputSats', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_1, amount: 150_000_000n }, { change: 'ours', amount: 49_990_000n }], 200_000_000n), expect: 'refused', rule: null },
  { name: 'PSBT: exactly 1 BTC to one payee', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_1, amount: 100_000_000n }, { change: 'ours', amount: 99_990_000n }], 200_000_000n), expect: 'signed', rule: 'btc-out' },
  { name: 'PSBT: change ours is not capped by maxOutputSats', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_1, amount: 10_000n }, { change: 'ours', amount: 199_980_000n }], 200_000_000n), expect: 'signed', rule: 'btc-out' },
  { name: 'PSBT: payee not listed (no change)', op: 'signer_signPsbt', req: psbt([{ to: 'bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq', amount: 990_000n }]), expect: 'refused', rule: null },
  { name: 'PSBT: all to payee 1 minus fee', op: 'signer_signPsbt', req: psbt([{ to: PAYEE_1, amount: 990_000n }]), expect: 'signed', rule: 'btc-out' },
];

// Every op under the kill switch, under an empty policy, and under the dev policy.
const EVERY_OP: [PolicyOp, Record<string, JsonLike>, string?][] = [
  ['eth_signTransaction', T({ value: 1n })],
  ['eth_sign', { data: '0x01' }],
  ['personal_sign', { message: 'x' }],
  ['eth_signTypedData_v4', mail(1)],
  ['signer_signDigest', { digest: `0x${'01'.repeat(32)}` }],
  ['signer_signSchnorr', { message: `0x${'01'.repeat(32)}` }],
  ['signer_signPsbt', psbt([{ to: PAYEE_1, amount: 990_000n }])],
  ['signer_signAuthorization', { authorization: { chainId: 1, address: DELEGATE_OK, nonce: 0 } }],
  ['signer_deriveKey', { path: 'm/0' }],
  ['signer_createKey', { kind: 'secp256k1' }, ''],
];
const RAW = new Set(['eth_sign', 'signer_signDigest', 'signer_signSchnorr']);
for (const [op, req, key] of EVERY_OP) {
  const k = key === undefined ? {} : { key };
  cases.push({ name: `kill switch refuses ${op}`, op, req, ...k, policy: KILL, principal: 'backend', approvals: ['alice', 'bob', 'carol'], expect: 'refused', rule: 'kill-switch' });
  cases.push({ name: `empty policy refuses ${op} (deny by default)`, op, req, ...k, policy: EMPTY, principal: 'backend', expect: 'refused', rule: null });
  cases.push({
    name: `dev policy ${op}`, op, req, ...k, policy: DEV,
    expect: 'signed', rule: RAW.has(op) ? 'dev-raw' : op === 'signer_signAuthorization' ? 'dev-delegates' : 'dev-all',
  });
}

describe('decision table', () => {
  it('has at least 150 cases covering every op and all three outcomes', () => {
    expect(cases.length).toBeGreaterThanOrEqual(150);
    for (const o of ['signed', 'pending', 'refused'] as const) expect(cases.some((c) => c.expect === o)).toBe(true);
    for (const [op] of EVERY_OP) expect(cases.filter((c) => c.op === op).length).toBeGreaterThanOrEqual(3);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const intent = intentOf(c.op, c.req, c.key === '' ? undefined : (c.key ?? KEY_1));
    const d = evaluate(c.policy ?? HOT, intent, {
      principal: c.principal ?? 'host',
      approvals: c.approvals ?? [],
      rejections: c.rejections ?? [],
      now: NOW,
      windows: c.windows ?? emptyWindowState(),
    });
    expect({ outcome: d.outcome, rule: d.rule }, d.reason).toEqual({ outcome: c.expect, rule: c.rule });
    expect(d.reason.length).toBeGreaterThan(0);
  });
});

describe('windows count only what was signed', () => {
  it('five signatures fill the count; refusals and pendings in between do not count', () => {
    let state = emptyWindowState();
    const small = intentOf('eth_signTransaction', T({ value: 1n }));
    const big = intentOf('eth_signTransaction', T({ value: 2n * ETH }));
    const pend = intentOf('eth_signTransaction', T({ to: STRANGER }));
    for (let n = 0; n < 5; n++) {
      for (const other of [big, pend]) {
        const d = evaluate(HOT, other, { principal: 'host', now: NOW + n, windows: state });
        state = recordSigned(HOT, state, d, other, NOW + n); // not signed: unchanged
      }
      const d = evaluate(HOT, small, { principal: 'host', now: NOW + n, windows: state });
      expect(d.outcome).toBe('signed');
      state = recordSigned(HOT, state, d, small, NOW + n);
    }
    const sixth = evaluate(HOT, small, { principal: 'host', now: NOW + 10, windows: state });
    expect(sixth).toMatchObject({ outcome: 'refused', rule: 'eth-small' });
    expect(sixth.reason).toMatch(/5 of 5/);
    // A day later the window has rolled.
    expect(evaluate(HOT, small, { principal: 'host', now: NOW + DAY + 10, windows: state }).outcome).toBe('signed');
  });

  it('a window with maxAmount counts token units of its erc20 rule', () => {
    const p = policy([{ id: 'usdc-day', effect: 'allow', ops: ['eth_signTransaction'], erc20: { tokens: [USDC] }, window: { seconds: DAY, maxAmount: usdc(100n).toString() } }]);
    let state = emptyWindowState();
    const sixty = intentOf('eth_signTransaction', T({ to: USDC, data: erc20Transfer(KYC_1, usdc(60n)) }));
    const d1 = evaluate(p, sixty, { principal: 'host', now: NOW, windows: state });
    expect(d1.outcome).toBe('signed');
    state = recordSigned(p, state, d1, sixty, NOW);
    expect(evaluate(p, sixty, { principal: 'host', now: NOW + 1, windows: state })).toMatchObject({ outcome: 'refused', rule: 'usdc-day' });
  });

  it('a window with maxAmount counts outgoing satoshis (not change) of its btc rule', () => {
    const p = policy([{ id: 'btc-day', effect: 'allow', ops: ['signer_signPsbt'], btc: { network: 'bitcoin' }, window: { seconds: DAY, maxAmount: '1000000' } }]);
    let state = emptyWindowState();
    const pay = intentOf('signer_signPsbt', psbt([{ to: PAYEE_1, amount: 600_000n }, { change: 'ours', amount: 390_000n }]));
    const d1 = evaluate(p, pay, { principal: 'host', now: NOW, windows: state });
    expect(d1.outcome).toBe('signed');
    state = recordSigned(p, state, d1, pay, NOW);
    expect(state.rules['btc-day']![KEY_1]![0]!.amount).toBe('600000');
    expect(evaluate(p, pay, { principal: 'host', now: NOW + 1, windows: state })).toMatchObject({ outcome: 'refused', rule: 'btc-day' });
  });
});

describe('first matching allow decides; satisfied beats pending', () => {
  it('a later rule that needs no approval wins over an earlier one that needs approvals', () => {
    const p = policy([
      { id: 'needs-2', effect: 'allow', ops: ['personal_sign'], approvals: { threshold: 2, from: ['alice', 'bob'] } },
      { id: 'backend-free', effect: 'allow', ops: ['personal_sign'], principals: ['backend'] },
    ]);
    const i = intentOf('personal_sign', { message: 'm' });
    expect(evaluate(p, i, { principal: 'backend', now: NOW })).toMatchObject({ outcome: 'signed', rule: 'backend-free' });
    expect(evaluate(p, i, { principal: 'host', now: NOW })).toMatchObject({ outcome: 'pending', rule: 'needs-2', approvals: { threshold: 2, approvers: ['alice', 'bob'], approvedBy: [] } });
  });

  it('explain traces every rule it looked at', () => {
    const d = evaluate(HOT, intentOf('eth_signTransaction', T({ to: USDC, data: erc20Transfer(STRANGER, 1n) })), { principal: 'host', now: NOW, explain: true });
    expect(d.trace?.find((t) => t.rule === 'usdc-kyc')?.reason).toMatch(/recipient not in erc20.recipients/);
    expect(d.trace?.length).toBe(HOT.rules.length);
  });
});
