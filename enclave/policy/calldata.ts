/**
 * Calldata decoding for the policy: ERC-20 `transfer`, `approve` and `transferFrom` (and an
 * issuer's `mint(address,uint256)` and `burn(uint256)`), decoded
 * only when the bytes are exactly their canonical ABI encoding (right length, address words
 * with zero high bytes). Anything else — extra bytes, dirty padding — is kept as a raw
 * selector and arguments, so an `erc20` rule never matches it: a token's own decoder might
 * read such bytes differently, and the policy must not read a request two ways.
 */
import type { Hex } from '../signers/validate.js';
import type { DecodedCall } from './intent.js';

export const SELECTOR = {
  transfer: '0xa9059cbb',
  approve: '0x095ea7b3',
  transferFrom: '0x23b872dd',
  mint: '0x40c10f19',
  burn: '0x42966c68',
} as const;

function word(body: string, i: number): string {
  return body.slice(i * 64, (i + 1) * 64);
}

/** An ABI address word: 12 zero bytes then 20 address bytes. */
function addressWord(w: string): Hex | undefined {
  return w.startsWith('000000000000000000000000') ? (`0x${w.slice(24)}` as Hex) : undefined;
}

export function decodeCall(data: Hex): DecodedCall {
  const hex = data.slice(2).toLowerCase();
  if (hex.length === 0) return { kind: 'none' };
  if (hex.length < 8) return { kind: 'short', data: `0x${hex}` };
  const selector = `0x${hex.slice(0, 8)}` as Hex;
  const body = hex.slice(8);
  const words = Math.floor(body.length / 64);
  const exact = (n: number) => body.length === n * 64;

  if (selector === SELECTOR.transfer && exact(2)) {
    const to = addressWord(word(body, 0));
    if (to) return { kind: 'erc20-transfer', to, amount: BigInt(`0x${word(body, 1)}`) };
  }
  if (selector === SELECTOR.approve && exact(2)) {
    const spender = addressWord(word(body, 0));
    if (spender) return { kind: 'erc20-approve', spender, amount: BigInt(`0x${word(body, 1)}`) };
  }
  if (selector === SELECTOR.transferFrom && exact(3)) {
    const from = addressWord(word(body, 0));
    const to = addressWord(word(body, 1));
    if (from && to) return { kind: 'erc20-transferFrom', from, to, amount: BigInt(`0x${word(body, 2)}`) };
  }
  if (selector === SELECTOR.mint && exact(2)) {
    const to = addressWord(word(body, 0));
    if (to) return { kind: 'erc20-mint', to, amount: BigInt(`0x${word(body, 1)}`) };
  }
  if (selector === SELECTOR.burn && exact(1)) return { kind: 'erc20-burn', amount: BigInt(`0x${word(body, 0)}`) };
  const args: Hex[] = [];
  for (let i = 0; i < words; i++) args.push(`0x${word(body, i)}`);
  return { kind: 'other', selector, args, rest: `0x${body.slice(words * 64)}` };
}

/** The 4-byte selector of a call, or null for plain transfers and short data. */
export function callSelector(c: DecodedCall): Hex | null {
  switch (c.kind) {
    case 'none':
    case 'short':
      return null;
    case 'erc20-transfer':
      return SELECTOR.transfer;
    case 'erc20-approve':
      return SELECTOR.approve;
    case 'erc20-transferFrom':
      return SELECTOR.transferFrom;
    case 'erc20-mint':
      return SELECTOR.mint;
    case 'erc20-burn':
      return SELECTOR.burn;
    case 'other':
      return c.selector;
  }
}
