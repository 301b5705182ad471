/**
 * BENCH ONLY, never in an image: the enclave image's start (enclave/image.ts startImage) with the
 * simulated NSM in place of /dev/nsm, so bench/e2e.ts can time the start of the program the image
 * runs. It is bundled with build-eif.sh's own esbuild command (build/image-bundles.ts) into one
 * file beside a bundled worker.mjs, as /app/enclave.mjs and /app/worker.mjs are; the dev command
 * (`enclave-signer enclave`) instead loads several hundred unbundled modules, which is most of
 * its start-up time and not what an enclave pays.
 *
 * Same order as startImage: the configuration file, then the policy file, then the NSM, then
 * startEnclave. Usage: node cold-start-image.mjs LISTEN_URI KMS_PIPE_URI DEV_CA_DIR CONFIG POLICY
 */
import { loadOrCreateDevCa } from '../dev/ca/index.js';
import { readEnclaveConfig } from '../enclave/config.js';
import { startEnclave } from '../enclave/main.js';
import { createSimulatedNsm } from '../enclave/nsm/simulated.js';
import { loadPolicyFile } from '../enclave/policy/load.js';

const [listen, kmsPipe, caDir, configPath, policyPath] = process.argv.slice(2);
if (!listen || !kmsPipe || !caDir || !configPath || !policyPath) {
  process.stderr.write('usage: cold-start-image.mjs LISTEN_URI KMS_PIPE_URI DEV_CA_DIR CONFIG POLICY\n');
  process.exit(2);
}
const config = readEnclaveConfig(configPath);
const policy = loadPolicyFile(policyPath, 'image');
const nsm = createSimulatedNsm({ ca: loadOrCreateDevCa(caDir) });
const running = await startEnclave({
  listen,
  nsm,
  kms: { region: config.kms.region, pipe: kmsPipe, allowedKeyArns: config.kms.allowedKeyArns },
  policy,
  log: () => {},
});
process.once('SIGTERM', () => {
  running.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
