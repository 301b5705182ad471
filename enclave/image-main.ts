/**
 * Entry point of the enclave image (bundled to /app/enclave.mjs by
 * build-eif.sh; its worker to /app/worker.mjs). Arguments come from the
 * image's `cmd`; defaults are the production ones (hardware NSM, vsock).
 */
import { processIo } from '../cli/io.js';
import { enclave } from '../cli/enclave.js';

process.exitCode = await enclave(process.argv.slice(2), processIo());
