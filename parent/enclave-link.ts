/**
 * The parent's connection to the enclave: dials the bridge URI, completes the
 * hello, hands each open connection to `onConnect`, and when it drops (EOF,
 * garbage on the wire, a failed attestation) dials again with exponential
 * backoff. It knows nothing about attestation: a connection is only a pipe
 * until the gate (gate.ts) has verified who is on the other end.
 */
import { connectBridge, type BridgeError, type BridgePeer } from '../common/bridge/index.js';

export interface EnclaveLinkOptions {
  uri: string;
  reconnect: { minMs: number; maxMs: number };
  /** Per-attempt connect timeout. Default 5 s. */
  connectTimeoutMs?: number;
  /** Bridge frame cap (both directions). Default the bridge's (1 MiB). */
  maxFrameBytes?: number;
  /** A new connection passed the hello. `id` counts connections from 1. */
  onConnect: (peer: BridgePeer, id: number) => void;
  /** That connection closed, with the bridge's reason. */
  onDisconnect: (reason: BridgeError, id: number) => void;
  /** A dial failed; the link retries after `retryInMs`. */
  onConnectFailed?: (error: unknown, retryInMs: number) => void;
}

export interface EnclaveLink {
  /** The open connection, if any (attested or not: ask the gate). */
  readonly peer: BridgePeer | undefined;
  /** Connections that passed the hello, over the link's life. */
  readonly connections: number;
  /** Connections after the first one. */
  readonly reconnects: number;
  /** The connection reached a state worth keeping (attested): the next drop retries from the minimum delay. */
  markHealthy(): void;
  /** Closes `peer` if it is still the current connection; the link dials again after the backoff. */
  drop(peer: BridgePeer): void;
  /** Stops dialing and closes the connection. */
  close(): Promise<void>;
}

export function startEnclaveLink(opts: EnclaveLinkOptions): EnclaveLink {
  const { minMs, maxMs } = opts.reconnect;
  let delay = minMs;
  let current: BridgePeer | undefined;
  let connections = 0;
  let closed = false;
  const stop = new AbortController();

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (stop.signal.aborted) return resolve();
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        stop.signal.removeEventListener('abort', done);
        resolve();
      }
      stop.signal.addEventListener('abort', done, { once: true });
    });

  /** Full jitter on the upper half, so restarted parents do not dial in lockstep. */
  const nextDelay = (): number => {
    const d = delay;
    delay = Math.min(maxMs, delay * 2);
    return Math.round(d / 2 + Math.random() * (d / 2));
  };

  async function loop(): Promise<void> {
    while (!closed) {
      let peer: BridgePeer;
      try {
        peer = await connectBridge(opts.uri, {
          role: 'parent',
          connect: { timeoutMs: opts.connectTimeoutMs ?? 5_000, signal: stop.signal },
          ...(opts.maxFrameBytes === undefined ? {} : { maxFrameBytes: opts.maxFrameBytes }),
          helloTimeoutMs: opts.connectTimeoutMs ?? 5_000,
        });
      } catch (e) {
        if (closed) break;
        const wait = nextDelay();
        try {
          opts.onConnectFailed?.(e, wait);
        } catch {
          // logging hook only
        }
        await sleep(wait);
        continue;
      }
      if (closed) {
        peer.close();
        break;
      }
      const id = ++connections;
      current = peer;
      try {
        opts.onConnect(peer, id);
      } catch {
        peer.close(); // a handler bug must not leave an unchecked connection open
      }
      const reason = await peer.closed;
      if (current === peer) current = undefined;
      try {
        opts.onDisconnect(reason, id);
      } catch {
        // observer only
      }
      if (closed) break;
      await sleep(nextDelay());
    }
  }

  const running = loop();

  return {
    get peer() {
      return current;
    },
    get connections() {
      return connections;
    },
    get reconnects() {
      return Math.max(0, connections - 1);
    },
    markHealthy() {
      delay = minMs;
    },
    drop(peer) {
      if (peer === current) peer.close();
    },
    async close() {
      closed = true;
      stop.abort();
      current?.close();
      await running;
    },
  };
}
