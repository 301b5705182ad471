/** `enclave-signer/client` (docs/adapters.md). */
export { AUTH_RPC_CODE, createSignerClient, RETRYABLE_METHODS, bigintJson } from './client.js';
export type { Principal, PublicKeyInfo, RpcTransaction, SignerClient, SignerClientOptions, SignerEndpoint } from './client.js';
export type { ApprovalStatus, ApprovalView, WaitForApprovalOptions } from './approvals.js';
export { APPROVAL_REQUIRED_CODE, ApprovalRequiredError, ApprovalTimeoutError, EnclaveSignerConnectionError, EnclaveSignerRpcError } from './errors.js';
export type { EnclaveSignerErrorData } from './errors.js';
export { MAX_REQUEST_TTL_SECONDS } from './principal.js';
export type { PrincipalCredentials } from './principal.js';
