/** `enclave-signer parent`: the parent proxy (parent/main.ts). */
export { runParent as parent } from '../parent/main.js';
