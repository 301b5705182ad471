// @ts-check
/**
 * The ERC-20 issuer workflow end to end (issue 12 §4), against a signer in
 * proxy mode (`enclave-signer dev --downstream <node>`) in front of an EVM:
 *
 *   1. keys       the issuer and treasury keys (created once, found by label)
 *   2. policy     policy.mjs filled with the token address (predicted from the issuer's nonce),
 *                 the key ids and the KYC list; written to --policy-out and checked
 *   3. deploy     IssuerToken (compiled by build.mjs with solc-wasm) via eth_sendTransaction: mined
 *   4. mint       600 tokens to a KYC'd holder: mined, balance checked on chain
 *   5. transfer   1 token to a non-KYC'd address: refused (4001), never reaches the chain
 *   6. over cap   500 more tokens (cap 1,000 a day): refused (4001)
 *   7. burn       by the treasury: allowed; by the issuer: refused
 *
 * Where the refusals come from: with `--enforced` the appliance runs this
 * very policy (`enclave-signer dev --policy FILE`; the scenario checks that
 * signer_status reports the hash of the policy it wrote) and the refused
 * steps are sent to the socket, which must answer 4001 from the enclave.
 * Without it, the exact transactions of steps 4–7 are decided by
 * `enclave-signer policy explain` with the same engine (the appliance may run
 * any policy, e.g. the permissive dev one), and the refused steps are never sent.
 *
 *   node examples/erc20-issuer/scenario.mjs --socket S --node URL [--policy-out FILE] [--enforced] [--fund]
 *
 * One JSON line per step on stdout; exit 0 when every step came out as expected.
 */
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeFunctionResult, encodeDeployData, encodeFunctionData, getContractAddress } from 'viem';
import { loadArtifact } from './build.mjs';
import { issuerPolicy } from './policy.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, '..', '..', 'bin', 'enclave-signer.js');
const UNIT = 10n ** 18n;
export const KYC = ['0x1000000000000000000000000000000000000001', '0x1000000000000000000000000000000000000002'];
export const OUTSIDER = '0x2000000000000000000000000000000000000bad';
export const DAILY_MINT_CAP = 1000n * UNIT;

/** @typedef {{ code: number, message: string, data?: any }} RpcError */

/** JSON-RPC over the signing socket (HTTP on the Unix socket). Resolves { result } or { error }. */
function socketRpc(/** @type {string} */ socket, /** @type {string} */ method, /** @type {unknown} */ params) {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: params ?? [] });
  return /** @type {Promise<{ result?: any, error?: RpcError }>} */ (
    new Promise((resolve, reject) => {
      const req = request({ socketPath: socket, path: '/', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c) => (text += c)).on('end', () => resolve(JSON.parse(text)));
      });
      req.on('error', reject);
      req.end(body);
    })
  );
}

async function nodeRpc(/** @type {string} */ url, /** @type {string} */ method, /** @type {unknown[]} */ params = []) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
  const b = /** @type {{ result?: any, error?: RpcError }} */ (await res.json());
  if (b.error) throw new Error(`${method}: ${b.error.message}`);
  return b.result;
}

/** @typedef {{ socket: string, node: string, policyOut?: string, enforced?: boolean, fund?: boolean, log?: (step: Record<string, unknown>) => void }} ScenarioOptions */

/**
 * Runs the workflow; its scratch files (the policy unless --policy-out, `policy explain` requests)
 * go in a temporary directory removed at the end, passed or failed.
 * @param {ScenarioOptions} o
 */
export async function runScenario(o) {
  const work = mkdtempSync(join(tmpdir(), 'erc20-issuer-'));
  try {
    await scenario(o, work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * @param {ScenarioOptions} o
 * @param {string} work
 */
async function scenario(o, work) {
  const log = o.log ?? ((s) => process.stdout.write(`${JSON.stringify(s)}\n`));
  const ok = async (/** @type {string} */ method, /** @type {unknown} */ params) => {
    const r = await socketRpc(o.socket, method, params);
    if (r.error) throw new Error(`${method}: ${r.error.code} ${r.error.message}`);
    return r.result;
  };
  const receipt = async (/** @type {string} */ hash) => {
    const r = await nodeRpc(o.node, 'eth_getTransactionReceipt', [hash]);
    if (!r || r.status !== '0x1') throw new Error(`transaction ${hash} did not succeed: ${JSON.stringify(r)}`);
    return r;
  };

  // 1. keys
  const keys = /** @type {any[]} */ (await ok('signer_listKeys', {}));
  const keyFor = async (/** @type {string} */ label) => keys.find((k) => k.label === label) ?? (await ok('signer_createKey', { label }));
  const issuer = await keyFor('erc20-issuer');
  const treasury = await keyFor('erc20-treasury');
  if (o.fund) for (const k of [issuer, treasury]) await nodeRpc(o.node, 'hardhat_setBalance', [k.address, '0x8ac7230489e80000']); // 10 ETH
  const chainId = Number(await ok('eth_chainId', []));
  log({ step: 'keys', issuer: issuer.address, treasury: treasury.address, chainId });

  // 2. policy
  const nonce = BigInt(await nodeRpc(o.node, 'eth_getTransactionCount', [issuer.address, 'pending']));
  const token = getContractAddress({ from: issuer.address, nonce });
  const policy = issuerPolicy({ chainId, token, issuerKeyId: issuer.keyId, treasuryKeyId: treasury.keyId, kyc: KYC, dailyMintCap: DAILY_MINT_CAP });
  const policyFile = o.policyOut ?? join(work, 'policy.json');
  writeFileSync(policyFile, `${JSON.stringify(policy, null, 2)}\n`);
  execFileSync(process.execPath, [BIN, 'policy', 'check', policyFile], { stdio: 'pipe' });
  const policyHash = execFileSync(process.execPath, [BIN, 'policy', 'hash', policyFile], { encoding: 'utf8' }).trim();
  if (o.enforced) {
    // Enforced means the running enclave decides under THIS policy: refuse to run against another one.
    const status = await ok('signer_status', {});
    if (status?.policy?.hash !== policyHash) {
      throw new Error(`--enforced: the signer runs policy ${status?.policy?.hash ?? '(none)'}, not the one written to ${policyFile} (${policyHash}); start it with --policy ${policyFile}`);
    }
  }
  log({ step: 'policy', file: policyFile, hash: policyHash, token, rules: policy.rules.map((r) => r.id) });

  /** The decision of the policy engine on one transaction, as the enclave would see it (policy explain). */
  const explain = (/** @type {any} */ key, /** @type {Record<string, unknown>} */ tx, /** @type {unknown} */ windows) => {
    const req = { method: 'eth_signTransaction', keyId: key.keyId, request: { tx: { type: '0x2', chainId: `0x${chainId.toString(16)}`, nonce: '0x10', gas: '0x186a0', maxFeePerGas: '0x77359400', maxPriorityFeePerGas: '0x3b9aca00', value: '0x0', ...tx } }, ...(windows ? { windows } : {}) };
    const file = join(work, `req-${Math.random().toString(16).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(req));
    const out = execFileSync(process.execPath, [BIN, 'policy', 'explain', policyFile, '--request', file, '--json'], { encoding: 'utf8' });
    return /** @type {{ outcome: string, rule?: string, reason: string }} */ (JSON.parse(out).decision);
  };
  /** A refused send: 4001 from the socket (enforced) or the engine's refusal (explain), and the chain unchanged. */
  const refused = async (/** @type {string} */ step, /** @type {any} */ key, /** @type {Record<string, unknown>} */ tx, /** @type {unknown} */ windows) => {
    const before = await nodeRpc(o.node, 'eth_getTransactionCount', [key.address, 'pending']);
    let how;
    if (o.enforced) {
      // An explicit gas limit: the proxy would otherwise ask the node to estimate first, and a
      // transfer or burn by the issuer (it holds no tokens) reverts in the estimate — the refusal
      // must come from the enclave's policy, not from the node.
      const r = await socketRpc(o.socket, 'eth_sendTransaction', [{ from: key.address, gas: '0x30d40', ...tx }]);
      if (r.error?.code !== 4001) throw new Error(`${step}: expected 4001, got ${JSON.stringify(r)}`);
      how = { code: 4001, message: r.error.message, rule: r.error.data?.rule ?? null, dataCode: r.error.data?.code };
    } else {
      const d = explain(key, tx, windows);
      if (d.outcome !== 'refused') throw new Error(`${step}: the policy would not refuse: ${JSON.stringify(d)}`);
      how = { explain: d.outcome, reason: d.reason };
    }
    const after = await nodeRpc(o.node, 'eth_getTransactionCount', [key.address, 'pending']);
    if (after !== before) throw new Error(`${step}: a transaction reached the chain`);
    log({ step, refused: true, ...how, reachedChain: false });
  };

  // 3. deploy
  const { abi, bytecode, compiler } = loadArtifact();
  const deployData = encodeDeployData({ abi, bytecode, args: ['Issued Token', 'ISS'] });
  if (!o.enforced) {
    const d = explain(issuer, { data: deployData, to: null });
    if (d.outcome !== 'signed' || d.rule !== 'deploy-token') throw new Error(`deploy: ${JSON.stringify(d)}`);
  }
  const deployHash = await ok('eth_sendTransaction', [{ from: issuer.address, data: deployData }]);
  const deployed = await receipt(deployHash);
  if (deployed.contractAddress.toLowerCase() !== token.toLowerCase()) throw new Error(`deployed at ${deployed.contractAddress}, policy names ${token}`);
  log({ step: 'deploy', token: deployed.contractAddress, tx: deployHash, compiler });

  // 4. mint to a KYC'd holder
  const minted = 600n * UNIT;
  const mintData = encodeFunctionData({ abi, functionName: 'mint', args: [KYC[0], minted] });
  if (!o.enforced) {
    const d = explain(issuer, { to: token, data: mintData });
    if (d.outcome !== 'signed' || d.rule !== 'mint-kyc') throw new Error(`mint: ${JSON.stringify(d)}`);
  }
  const mintHash = await ok('eth_sendTransaction', [{ from: issuer.address, to: token, data: mintData }]);
  await receipt(mintHash);
  const balanceHex = await nodeRpc(o.node, 'eth_call', [{ to: token, data: encodeFunctionData({ abi, functionName: 'balanceOf', args: [KYC[0]] }) }, 'latest']);
  const balance = /** @type {bigint} */ (decodeFunctionResult({ abi, functionName: 'balanceOf', data: balanceHex }));
  if (balance !== minted) throw new Error(`balance ${balance}, expected ${minted}`);
  log({ step: 'mint', to: KYC[0], amount: String(minted), tx: mintHash, mined: true, balance: String(balance) });

  // 5. transfer to a non-KYC'd address
  await refused('transfer-outsider', issuer, { to: token, data: encodeFunctionData({ abi, functionName: 'transfer', args: [OUTSIDER, UNIT] }) });

  // 6. mint over the daily cap (600 signed in this window; 500 more > 1,000)
  const now = Math.floor(Date.now() / 1000);
  const window = { version: 1, rules: { 'mint-kyc': { [issuer.keyId]: [{ t: now, value: '0', amount: String(minted) }] } } };
  await refused('mint-over-cap', issuer, { to: token, data: encodeFunctionData({ abi, functionName: 'mint', args: [KYC[1], 500n * UNIT] }) }, window);

  // 7. burn: the treasury may, the issuer may not
  const burnData = encodeFunctionData({ abi, functionName: 'burn', args: [UNIT] });
  if (!o.enforced) {
    const d = explain(treasury, { to: token, data: burnData });
    if (d.outcome !== 'signed' || d.rule !== 'burn-treasury') throw new Error(`burn by treasury: ${JSON.stringify(d)}`);
    log({ step: 'burn-treasury', explain: d.outcome, rule: d.rule });
  }
  await refused('burn-issuer', issuer, { to: token, data: burnData });
  log({ step: 'done', ok: true, enforcedBy: o.enforced ? 'enclave' : 'policy explain' });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { socket: { type: 'string' }, node: { type: 'string' }, 'policy-out': { type: 'string' }, enforced: { type: 'boolean' }, fund: { type: 'boolean' } } });
  if (!values.socket || !values.node) {
    process.stderr.write('usage: scenario.mjs --socket S --node URL [--policy-out FILE] [--enforced] [--fund]\n');
    process.exit(2);
  }
  runScenario({ socket: values.socket, node: values.node, ...(values['policy-out'] ? { policyOut: values['policy-out'] } : {}), enforced: values.enforced === true, fund: values.fund === true }).catch((e) => {
    process.stderr.write(`scenario failed: ${e.message}\n`);
    process.exit(1);
  });
}
