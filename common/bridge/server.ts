/**
 * A bridge server: listens on a transport URI and runs one BridgePeer with
 * `handler` per accepted connection. A connection that misbehaves is dropped
 * on its own; the listener and every other connection keep serving.
 */
import type { Duplex } from 'node:stream';
import { listen, type ListenOptions } from '../transport/index.js';
import { BridgeError } from './errors.js';
import { createBridgePeer, rejectConnection, type BridgeHandler, type BridgePeer, type BridgePeerOptions } from './peer.js';

export interface BridgeServerOptions extends Omit<BridgePeerOptions, 'handler'> {
  /** Connections served at once; more are turned away with a BRIDGE_BUSY bye. Default 64. */
  maxConnections?: number;
  /** Called with each new peer (e.g. to log its hello once `peer.ready` resolves). */
  onPeer?: (peer: BridgePeer) => void;
  /** Passed to the transport's listen(). */
  listen?: ListenOptions;
}

export interface BridgeServer {
  /** Where it listens (tcp port 0 resolved). */
  readonly uri: string;
  /** Peers currently connected. */
  readonly peers: ReadonlySet<BridgePeer>;
  /** Stops accepting, closes every connection (bye; handlers aborted), resolves when all are closed. */
  close(): Promise<void>;
}

export async function serveBridge(uri: string, handler: BridgeHandler, opts: BridgeServerOptions): Promise<BridgeServer> {
  const { maxConnections = 64, onPeer, listen: listenOpts, ...peerOpts } = opts;
  if (!Number.isSafeInteger(maxConnections) || maxConnections < 1) {
    throw new BridgeError('BRIDGE_BAD_ARGUMENT', `maxConnections must be a positive integer, got ${String(maxConnections)}`);
  }
  const peers = new Set<BridgePeer>();
  /** Settles when each accepted stream is fully closed (after a bye has had its linger time). */
  const streamsClosed = new Set<Promise<void>>();
  let closing = false;

  const onConnection = (stream: Duplex) => {
    if (closing) return void stream.destroy();
    const done = new Promise<void>((r) => stream.once('close', () => r()));
    streamsClosed.add(done);
    void done.then(() => streamsClosed.delete(done));
    if (peers.size >= maxConnections) {
      const reason = new BridgeError('BRIDGE_BUSY', `server already has ${maxConnections} connections`);
      try {
        peerOpts.onError?.(reason, { kind: 'connection' });
      } catch {
        // logging hook only
      }
      return rejectConnection(stream, reason);
    }
    const peer = createBridgePeer(stream, { ...peerOpts, handler });
    peers.add(peer);
    void peer.closed.then(() => peers.delete(peer));
    try {
      onPeer?.(peer);
    } catch {
      // the hook's bug must not break serving
    }
  };

  const listener = await listen(uri, onConnection, listenOpts ?? {});
  return {
    uri: listener.uri,
    peers,
    async close() {
      closing = true;
      const all = [...peers];
      for (const p of all) p.close();
      // Give each bye the chance to reach the peer (bounded by closeLingerMs)
      // before the listener destroys whatever is left.
      await Promise.all([...streamsClosed]);
      await listener.close();
    },
  };
}
