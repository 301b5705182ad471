/**
 * Connects to a bridge server and completes the hello exchange.
 */
import { connect, type ConnectOptions } from '../transport/index.js';
import { createBridgePeer, type BridgePeer, type BridgePeerOptions } from './peer.js';

export interface ConnectBridgeOptions extends BridgePeerOptions {
  /** Passed to the transport's connect() (timeout, abort signal). */
  connect?: ConnectOptions;
}

/**
 * Resolves with a peer whose hello exchange succeeded. Rejects with a
 * TransportError (could not connect) or the BridgeError that closed the
 * connection during the hello (BRIDGE_VERSION, BRIDGE_HANDSHAKE, …).
 */
export async function connectBridge(uri: string, opts: ConnectBridgeOptions): Promise<BridgePeer> {
  const { connect: connectOpts, ...peerOpts } = opts;
  const stream = await connect(uri, connectOpts ?? {});
  let peer: BridgePeer;
  try {
    peer = createBridgePeer(stream, peerOpts);
  } catch (e) {
    stream.destroy(); // bad options: do not leak the connection we just opened
    throw e;
  }
  await peer.ready; // on rejection the peer has already closed the stream
  return peer;
}
