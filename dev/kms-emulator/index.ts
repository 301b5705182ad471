/** The local KMS emulator (development only). See docs/kms-emulator.md. */
export {
  startKmsEmulator,
  DEFAULT_REGION,
  DEFAULT_ACCOUNT_ID,
  DEFAULT_MAX_BODY_BYTES,
  type KmsEmulator,
  type KmsEmulatorOptions,
  type KmsFaults,
  type KmsEmulatorCredential,
} from './server.js';
export { startKmsLocal, DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY, DEFAULT_DATA_DIR, DEFAULT_CA_DIR, type KmsLocalConfig, type KmsLocalEndpoint, type RunningKmsLocal } from './local.js';
export { KmsError, KmsEmulatorError, isKmsError, type KmsErrorType } from './errors.js';
export { SUPPORTED_OPERATIONS, type PresetKey } from './operations.js';
export { parseKeyPolicy, evaluatePolicy, defaultKeyPolicy, type KeyPolicy, type RequestContext, type PolicyDecision } from './policy.js';
export { verifySigV4, signRequestHeaders, type SigV4Credential, type RawRequest } from './sigv4.js';
export { STATE_FILE, STATE_FORMAT, type EmulatorState, type KeyRecord, type AliasRecord } from './state.js';
