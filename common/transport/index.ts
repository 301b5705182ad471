export { connect, listen, registerTransport } from './registry.js';
export { TransportError, type TransportErrorCode } from './errors.js';
export type { ConnectOptions, ConnectionHandler, ListenOptions, Transport, TransportListener } from './types.js';
export {
  parseTransportUri,
  formatTransportUri,
  MAX_UNIX_PATH_BYTES,
  VMADDR_CID_ANY,
  VMADDR_CID_HOST,
  VMADDR_PORT_ANY,
  VSOCK_CID_PARENT,
  type AddressFor,
  type TcpAddress,
  type TransportAddress,
  type TransportScheme,
  type UnixAddress,
  type VsockAddress,
} from './uri.js';
