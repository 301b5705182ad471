/** The Nitro Secure Module: interface, wire messages, client, and the simulated device. */
export {
  NsmError,
  nsmErrorCode,
  wireErrorCode,
  PCR_LENGTH,
  NSM_MAX_PCRS,
  NSM_READONLY_PCRS,
  NSM_MAX_INPUT,
  NSM_REQUEST_MAX_SIZE,
  NSM_RESPONSE_MAX_SIZE,
  NSM_RANDOM_CHUNK,
  NSM_MAX_RANDOM,
  NSM_WIRE_ERROR_CODES,
  type Nsm,
  type NsmErrorCode,
  type NsmWireErrorCode,
  type AttestRequest,
  type PcrDescription,
  type NsmDescription,
} from './nsm.js';
export { encodeRequest, decodeRequest, encodeResponse, decodeResponse, type NsmRequest, type NsmResponse, type NsmDigest } from './messages.js';
export { createNsmClient, type NsmTransport } from './client.js';
export {
  createSimulatedNsm,
  createSimulatedNsmDevice,
  simulatedImagePcrs,
  pcrExtendFromZero,
  instancePcr,
  iamRolePcr,
  SIMULATED_NSM_VERSION,
  DEFAULT_IMAGE_ID,
  DEFAULT_INSTANCE_ID,
  DEFAULT_IAM_ROLE_ARN,
  type SimulatedNsmOptions,
  type SimulatedNsmDevice,
} from './simulated.js';
