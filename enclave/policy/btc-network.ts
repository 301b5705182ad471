/**
 * Bitcoin networks a policy can name, and address ⇄ scriptPubKey conversion. Rules compare
 * output scripts, not address strings, so two spellings of one address (bech32 case) are one.
 */
import { Address, NETWORK, OutScript, TEST_NETWORK } from '@scure/btc-signer';

export type BtcNetworkName = 'bitcoin' | 'testnet' | 'signet' | 'regtest';
export const BTC_NETWORKS: readonly BtcNetworkName[] = ['bitcoin', 'testnet', 'signet', 'regtest'];

type Net = typeof NETWORK;
const NETS: Record<BtcNetworkName, Net> = {
  bitcoin: NETWORK,
  testnet: TEST_NETWORK,
  signet: TEST_NETWORK,
  regtest: { ...TEST_NETWORK, bech32: 'bcrt' },
};

/** The scriptPubKey (lowercase hex) an address pays to on `network`; throws if it is not an address of that network. */
export function addressToScript(address: string, network: BtcNetworkName): string {
  const decoded = Address(NETS[network]).decode(address);
  return Buffer.from(OutScript.encode(decoded)).toString('hex');
}

/** The address of a script on `network`, or null for scripts that have none (OP_RETURN, bare multisig…). */
export function scriptToAddress(script: Uint8Array, network: BtcNetworkName): string | null {
  try {
    return Address(NETS[network]).encode(OutScript.decode(script));
  } catch {
    return null;
  }
}
