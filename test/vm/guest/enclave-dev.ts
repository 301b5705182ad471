/**
 * The DEV enclave entry of the appliance VM test (bundled to
 * /vmtest/enclave-dev.mjs, its worker to /vmtest/worker.mjs): the dev command
 * `enclave-signer enclave`, which alone can run the simulated NSM. The image's
 * own /app/enclave.mjs runs only the hardware NSM (enclave/image.ts), which a
 * QEMU guest does not have; the harness starts this with the image's node,
 * the image's addon and the image's measured /app/enclave-config.json.
 * Never part of an image.
 */
import { enclave } from '../../../cli/enclave.js';
import { processIo } from '../../../cli/io.js';

process.exitCode = await enclave(process.argv.slice(2), processIo());
