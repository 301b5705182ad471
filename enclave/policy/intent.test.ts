/**
 * Typed intents are built from the signers' own parsed values: decoded fields are right, and a
 * request the signer refuses is refused here with the same error (one request, one reading).
 */
import { describe, expect, it } from 'vitest';
import { SigningError } from '../signers/errors.js';
import { signEthTransaction } from '../signers/eth-transaction.js';
import { signTypedDataV4 } from '../signers/eth-typed-data.js';
import { signPsbt } from '../signers/psbt.js';
import { buildIntent } from './build-intent.js';
import * as fixtures from './test-fixtures.js';
import { decodeCall } from './calldata.js';
import {
  CHANGE_PATH, DELEGATE_OK, erc20Approve, erc20Transfer, FINGERPRINT, intentOf, KYC_1, maxUint160, maxUint256, PAYEE_1,
  PERMIT2, permit, permit2Batch, psbt, SEAPORT, seaportOrder, SEED, tx, UNISWAP_ROUTER, USDC, WETH, authTuple,
} from './test-fixtures.js';

const KEY = new Uint8Array(32).fill(0x11);

describe('transaction intent', () => {
  it('decodes a real USDC transfer (viem-encoded) and the fees', () => {
    const i = intentOf('eth_signTransaction', tx({ to: USDC, data: erc20Transfer(KYC_1, 1_234_567n), gas: 65000n }));
    if (i.op !== 'eth_signTransaction') throw new Error('op');
    expect(i.tx.call).toEqual({ kind: 'erc20-transfer', to: KYC_1, amount: 1_234_567n });
    expect(i.tx.fees.maxFeeWei).toBe(65000n * 30_000_000_000n);
    expect(i.tx.contractCreation).toBe(false);
  });

  it('decodes a max-value approve', () => {
    const i = intentOf('eth_signTransaction', tx({ to: USDC, data: erc20Approve(UNISWAP_ROUTER, maxUint256) }));
    expect(i.op === 'eth_signTransaction' && i.tx.call).toEqual({ kind: 'erc20-approve', spender: UNISWAP_ROUTER, amount: maxUint256 });
  });

  it('keeps non-canonical ERC-20 calldata raw', () => {
    expect(decodeCall(`${erc20Transfer(KYC_1, 1n)}00`).kind).toBe('other');
    expect(decodeCall(erc20Transfer(KYC_1, 1n).slice(0, -2) as `0x${string}`).kind).toBe('other');
    expect(decodeCall('0x')).toEqual({ kind: 'none' });
    expect(decodeCall('0xabcd')).toEqual({ kind: 'short', data: '0xabcd' });
  });

  it('lists EIP-7702 delegates and flags contract creation', () => {
    const d = intentOf('eth_signTransaction', tx({ authorizationList: [authTuple(DELEGATE_OK)] }));
    expect(d.op === 'eth_signTransaction' && d.tx.delegates).toEqual([DELEGATE_OK]);
    const c = intentOf('eth_signTransaction', tx({ to: null, data: '0x60' }));
    expect(c.op === 'eth_signTransaction' && c.tx.contractCreation).toBe(true);
  });

  it('a request the signer refuses is refused with the same error', () => {
    for (const bad of [
      { tx: { type: '0x2', chainId: '0x1', nonce: '0x0', gas: '0x5208', maxFeePerGas: '0x1', maxPriorityFeePerGas: '0x2', to: USDC } },
      { tx: { type: '0x2', nonce: '0x0', gas: '0x5208', maxFeePerGas: '0x1', maxPriorityFeePerGas: '0x1' } },
      { tx: { ...tx().tx as object, data: '0x01', input: '0x02' } },
      { tx: { ...tx().tx as object, to: '0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB49' } },
    ]) {
      let signer: SigningError | undefined;
      try {
        signEthTransaction(KEY, bad.tx);
      } catch (e) {
        signer = e as SigningError;
      }
      expect(signer).toBeInstanceOf(SigningError);
      expect(() => buildIntent('eth_signTransaction', bad as never)).toThrow(expect.objectContaining({ code: signer!.code, field: signer!.field }));
    }
  });
});

describe('typed data intent', () => {
  it('decodes an EIP-2612 permit with the token from the domain', () => {
    const i = intentOf('eth_signTypedData_v4', permit(UNISWAP_ROUTER, 5n));
    expect(i.op === 'eth_signTypedData_v4' && i.typedData.grants).toEqual([{ kind: 'eip2612-permit', token: USDC, spender: UNISWAP_ROUTER, amount: 5n, unlimited: false }]);
  });

  it('decodes a Permit2 batch, flagging the unlimited item', () => {
    const i = intentOf('eth_signTypedData_v4', permit2Batch(UNISWAP_ROUTER, [[USDC, 1n], [WETH, maxUint160]]));
    if (i.op !== 'eth_signTypedData_v4') throw new Error('op');
    expect(i.typedData.domain).toEqual({ name: 'Permit2', chainId: 1, verifyingContract: PERMIT2 });
    expect(i.typedData.grants.map((g) => [g.kind, g.token, g.spender, g.unlimited])).toEqual([
      ['permit2-allowance', USDC, UNISWAP_ROUTER, false],
      ['permit2-allowance', WETH, UNISWAP_ROUTER, true],
    ]);
  });

  it('decodes a Seaport order\'s offer as a grant to Seaport, unlimited when max uint256', () => {
    const i = intentOf('eth_signTypedData_v4', seaportOrder(USDC, maxUint256));
    expect(i.op === 'eth_signTypedData_v4' && i.typedData.grants).toEqual([{ kind: 'seaport-offer', token: USDC, spender: SEAPORT, amount: maxUint256, unlimited: true }]);
  });

  it('a typed-data request the signer refuses is refused the same way', () => {
    const bad = permit(UNISWAP_ROUTER, 1n);
    (bad.typedData as { message: Record<string, unknown> }).message.extra = 1;
    expect(() => signTypedDataV4(KEY, bad.typedData)).toThrow(SigningError);
    expect(() => buildIntent('eth_signTypedData_v4', bad)).toThrow(expect.objectContaining({ code: 'SIGN_INVALID_PARAMS', field: 'message.extra' }));
  });
});

describe('PSBT intent', () => {
  it('verifies change to our own path; the payment is external; the fee is known', () => {
    const i = intentOf('signer_signPsbt', psbt([{ to: PAYEE_1, amount: 600_000n }, { change: 'ours', amount: 390_000n }]));
    if (i.op !== 'signer_signPsbt') throw new Error('op');
    expect(i.psbt.outputs.map((o) => [o.address, o.amount, o.change, o.changePath])).toEqual([
      [PAYEE_1, 600_000n, false, undefined],
      [expect.stringMatching(/^bc1q/), 390_000n, true, CHANGE_PATH],
    ]);
    expect(i.psbt.fee).toBe(10_000n);
    expect(i.psbt.externalAmount).toBe(600_000n);
    expect(i.psbt.masterFingerprint).toBe(FINGERPRINT);
  });

  it('an output labelled with our fingerprint for a foreign key, or paying elsewhere, is not change', () => {
    for (const change of ['claims-ours-foreign-key', 'claims-ours-wrong-path'] as const) {
      const i = intentOf('signer_signPsbt', psbt([{ change, amount: 990_000n }]));
      if (i.op !== 'signer_signPsbt') throw new Error('op');
      expect(i.psbt.outputs[0]).toMatchObject({ change: false, claimsOurs: true });
      expect(i.psbt.externalAmount).toBe(990_000n);
    }
  });

  it('without the seed nothing is change (fail closed)', () => {
    const i = buildIntent('signer_signPsbt', psbt([{ change: 'ours', amount: 990_000n }]), { masterFingerprint: FINGERPRINT });
    expect(i.op === 'signer_signPsbt' && i.psbt.outputs[0]!.change).toBe(false);
  });

  it('is decoded by the same parse the signer signs (the signer accepts what the intent describes)', () => {
    const req = psbt([{ to: PAYEE_1, amount: 990_000n }]);
    const signed = signPsbt(SEED, req.psbt, { entropy: (n) => new Uint8Array(n).fill(1) });
    expect(signed.signedInputs).toEqual([0]);
    expect(() => buildIntent('signer_signPsbt', { psbt: 'not base64!' })).toThrow(expect.objectContaining({ code: 'SIGN_INVALID_PARAMS' }));
    expect(() => buildIntent('signer_signPsbt', { psbt: Buffer.from('garbage').toString('base64') })).toThrow(expect.objectContaining({ code: 'SIGN_PSBT_INVALID' }));
  });
});

describe('PSBT intent cost is bounded', () => {
  it('derives each distinct change path once, and at most MAX_CHANGE_DERIVATIONS paths; the rest are not change', async () => {
    const { MAX_CHANGE_DERIVATIONS } = await import('./psbt-intent.js');
    const outs = Array.from({ length: 100 }, () => ({ change: 'ours' as const, amount: 1000n }));
    let calls = 0;
    const counting = (path: readonly number[]) => {
      calls++;
      const { derivePublicKey } = fixtures;
      return derivePublicKey(path);
    };
    const i = buildIntent('signer_signPsbt', psbt(outs), { masterFingerprint: FINGERPRINT, derivePublicKey: counting });
    if (i.op !== 'signer_signPsbt') throw new Error('op');
    expect(calls).toBe(1); // one path, memoised
    expect(i.psbt.outputs.every((o) => o.change)).toBe(true);
    expect(MAX_CHANGE_DERIVATIONS).toBeLessThanOrEqual(64);
  });
});

describe('PSBT intent derivation cap', () => {
  it('beyond MAX_CHANGE_DERIVATIONS distinct paths, outputs count as external payments (fail closed)', async () => {
    const btc = await import('@scure/btc-signer');
    const { MAX_CHANGE_DERIVATIONS } = await import('./psbt-intent.js');
    const t = new btc.Transaction();
    const inKey = fixtures.ROOT.derive("m/84'/0'/0'/0/0");
    t.addInput({ txid: new Uint8Array(32).fill(1), index: 0, witnessUtxo: { script: btc.p2wpkh(inKey.publicKey!).script, amount: 10_000_000n } });
    const n = MAX_CHANGE_DERIVATIONS + 6;
    for (let k = 0; k < n; k++) {
      const path = `m/84'/0'/0'/1/${k}`;
      const key = fixtures.ROOT.derive(path);
      t.addOutput({ script: btc.p2wpkh(key.publicKey!).script, amount: 1000n, bip32Derivation: [[key.publicKey!, { fingerprint: fixtures.ROOT.fingerprint, path: btc.bip32Path(path) }]] });
    }
    const i = buildIntent('signer_signPsbt', { psbt: Buffer.from(t.toPSBT()).toString('base64') }, { masterFingerprint: FINGERPRINT, derivePublicKey: fixtures.derivePublicKey });
    if (i.op !== 'signer_signPsbt') throw new Error('op');
    expect(i.psbt.outputs.filter((o) => o.change).length).toBe(MAX_CHANGE_DERIVATIONS);
    expect(i.psbt.outputs.slice(MAX_CHANGE_DERIVATIONS).every((o) => !o.change && o.claimsOurs)).toBe(true);
    expect(i.psbt.externalAmount).toBe(6000n);
  });
});
