/**
 * Entry point of the enclave image (bundled to /app/enclave.mjs by
 * build-eif.sh; its worker to /app/worker.mjs). The production composition
 * root: hardware NSM, the pinned CMK(s) from /app/enclave-config.json
 * (measured), vsock. Nothing from cli/ or dev/ is reachable from here.
 */
import { runImage } from './image.js';

process.exitCode = await runImage(process.argv.slice(2));
