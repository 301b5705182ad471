export { BridgeError, BridgeRemoteError, type BridgeErrorCode } from './errors.js';
export {
  createFrameDecoder,
  createFrameReader,
  encodeFrame,
  salvageHeader,
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_CBOR_LIMITS,
  FRAME_HEADER_BYTES,
  MAX_FRAME_BYTES_LIMIT,
  type BadFrame,
  type FrameDecoder,
  type FrameDecoderOptions,
  type FrameEvent,
  type FrameOptions,
  type FrameReader,
  type FrameReaderOptions,
} from './frame.js';
export {
  encodeMessage,
  parseMessage,
  PROTOCOL_VERSION,
  SUPPORTED_VERSIONS,
  MAX_DEADLINE_MS,
  type BridgeMessage,
  type BridgeMessageType,
  type BridgeRole,
  type ByeMessage,
  type CancelMessage,
  type ErrorMessage,
  type HelloMessage,
  type RequestMessage,
  type ResponseMessage,
  type WireError,
} from './messages.js';
export {
  createBridgePeer,
  rejectConnection,
  toWireError,
  type BridgeErrorEvent,
  type BridgeHandler,
  type BridgePeer,
  type BridgePeerInfo,
  type BridgePeerOptions,
  type BridgeRequestContext,
  type RequestOptions,
} from './peer.js';
export { serveBridge, type BridgeServer, type BridgeServerOptions } from './server.js';
export { connectBridge, type ConnectBridgeOptions } from './client.js';
