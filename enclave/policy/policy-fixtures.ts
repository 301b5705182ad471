/** Policies shared by the decision table, the property test and the benchmark (test-only). */
import { DEV_POLICY_DOCUMENT } from './dev-policy.js';
import {
  ALICE_ADDR, BLOCKED, BOB_ADDR, DELEGATE_OK, ETH, FOREIGN, KEY_1, KYC_1, KYC_2, PAYEE_1, PAYEE_2, PERMIT2, SEAPORT,
  STRANGER, UNISWAP_ROUTER, USDC, WETH,
} from './test-fixtures.js';

/** Universal Router `execute(bytes,bytes[],uint256)`. */
export const EXECUTE = '0x3593564c';

export const HOT_RULES: unknown[] = [
  { id: 'blocklist', effect: 'deny', to: [BLOCKED] },
  { id: 'btc-sanctioned', effect: 'deny', btc: { network: 'bitcoin', outputs: [FOREIGN] } },
  {
    id: 'eth-small', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [ALICE_ADDR, BOB_ADDR],
    maxValueWei: ETH.toString(), window: { seconds: 86400, maxValueWei: (3n * ETH).toString(), maxCount: 5 },
  },
  { id: 'usdc-kyc', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], erc20: { tokens: [USDC], recipients: [KYC_1, KYC_2], maxAmount: '1000000000' } },
  { id: 'usdc-approve-router', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], erc20: { tokens: [USDC], functions: ['approve'], spenders: [UNISWAP_ROUTER], maxAmount: '1000000000000' } },
  { id: 'router-calls', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], calls: { contracts: [UNISWAP_ROUTER], selectors: [EXECUTE] }, maxValueWei: (5n * ETH).toString(), maxFeeWei: (ETH / 20n).toString() },
  { id: 'deploy', effect: 'allow', ops: ['eth_signTransaction'], contractCreation: true, principals: ['backend'] },
  { id: 'delegation', effect: 'allow', ops: ['eth_signTransaction', 'signer_signAuthorization'], delegates: [DELEGATE_OK], principals: ['backend'] },
  { id: 'permit-router', effect: 'allow', ops: ['eth_signTypedData_v4'], typedData: { domains: [{ chainId: 1, verifyingContract: USDC }], primaryTypes: ['Permit'], permitSpenders: [UNISWAP_ROUTER], permitMaxAmount: '1000000000' } },
  { id: 'permit2-router', effect: 'allow', ops: ['eth_signTypedData_v4'], typedData: { domains: [{ chainId: 1, verifyingContract: PERMIT2 }], permitSpenders: [UNISWAP_ROUTER], permitTokens: [USDC, WETH], permitMaxAmount: (10n ** 24n).toString() } },
  { id: 'seaport-offers', effect: 'allow', ops: ['eth_signTypedData_v4'], typedData: { domains: [{ chainId: 1, verifyingContract: SEAPORT }], primaryTypes: ['OrderComponents'], permitSpenders: [SEAPORT], permitMaxAmount: '1000000000000' } },
  { id: 'mail', effect: 'allow', ops: ['eth_signTypedData_v4'], typedData: { domains: [{ chainId: 1 }], primaryTypes: ['Mail'] } },
  { id: 'backend-messages', effect: 'allow', ops: ['personal_sign'], principals: ['backend'] },
  { id: 'digest-backend', effect: 'allow', ops: ['signer_signDigest'], principals: ['backend'], keys: [KEY_1] },
  { id: 'keys', effect: 'allow', ops: ['signer_deriveKey', 'signer_createKey'] },
  { id: 'treasury', effect: 'allow', ops: ['eth_signTransaction'], to: [STRANGER], approvals: { threshold: 2, from: ['alice', 'bob', 'carol'] } },
  { id: 'btc-out', effect: 'allow', ops: ['signer_signPsbt'], btc: { network: 'bitcoin', outputs: [PAYEE_1, PAYEE_2], maxOutputSats: '100000000', maxFeeSats: '50000' } },
];

/** The shipped permissive dev policy's rules. */
export const DEV_RULES: unknown[] = JSON.parse(JSON.stringify(DEV_POLICY_DOCUMENT.rules)) as unknown[];
