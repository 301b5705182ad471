/** `enclave-signer/client` (docs/adapters.md). */
export { createSignerClient, RETRYABLE_METHODS, bigintJson } from './client.js';
export type { Principal, PublicKeyInfo, RpcTransaction, SignerClient, SignerClientOptions, SignerEndpoint } from './client.js';
export { EnclaveSignerConnectionError, EnclaveSignerRpcError } from './errors.js';
export type { EnclaveSignerErrorData } from './errors.js';
