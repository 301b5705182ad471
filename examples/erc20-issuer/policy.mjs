// @ts-check
/**
 * The issuer's signing policy (docs/policy.md language), made from the
 * deployment's facts: the token address, the two key ids and the KYC list.
 *
 *   deploy-token   the issuer key may create one contract a day (the token)
 *   mint-kyc       the issuer key may mint the token only to KYC'd addresses,
 *                  at most `dailyMintCap` base units per rolling 24 h
 *   transfer-kyc   the issuer key may transfer the token only to KYC'd addresses
 *   burn-treasury  only the treasury key may burn (its own balance: burn(uint256))
 *
 * Everything else — a transfer or mint to anyone else, approve, transferFrom,
 * other contracts, ether payments, burns by the issuer — is refused (deny by
 * default), with 4001 on the socket.
 */

/**
 * @param {{ chainId: number, token: string, issuerKeyId: string, treasuryKeyId: string, kyc: string[], dailyMintCap: bigint }} p
 */
export function issuerPolicy(p) {
  const token = [p.token.toLowerCase()];
  const kyc = p.kyc.map((a) => a.toLowerCase());
  const common = { effect: 'allow', ops: ['eth_signTransaction'], chainIds: [p.chainId] };
  return {
    policyVersion: 1,
    name: 'erc20-issuer',
    description: 'Mint and transfer only to KYC-checked holders, with a daily mint cap; burn only from the treasury.',
    rules: [
      { id: 'deploy-token', ...common, keys: [p.issuerKeyId], contractCreation: true, window: { seconds: 86400, maxCount: 1 } },
      {
        id: 'mint-kyc', ...common, keys: [p.issuerKeyId],
        erc20: { tokens: token, functions: ['mint'], recipients: kyc, maxAmount: String(p.dailyMintCap) },
        window: { seconds: 86400, maxAmount: String(p.dailyMintCap) },
      },
      { id: 'transfer-kyc', ...common, keys: [p.issuerKeyId], erc20: { tokens: token, functions: ['transfer'], recipients: kyc } },
      { id: 'burn-treasury', ...common, keys: [p.treasuryKeyId], erc20: { tokens: token, functions: ['burn'] } },
    ],
  };
}
