/**
 * Connection bookkeeping for one listener: a cap that keeps room for working
 * clients, and the HTTP header/request deadlines.
 *
 * At the cap a new connection is not refused: the connection that is doing
 * the least is closed instead — first one that has never been answered
 * (undetected, half a request line, half a message), oldest first; then the
 * least recently active idle one. Only a connection with a request in flight
 * is never evicted. So idle or trickling connections, however many, cannot
 * shut a fresh client out; only as many requests actually in flight can
 * (and those are bounded by the dispatcher's in-flight limit and deadlines).
 *
 * HTTP deadlines are kept here rather than by node's http.Server: the Unix
 * socket's HTTP server never listens (connections are handed to it after
 * sniffing), and node only enforces `headersTimeout`/`requestTimeout` from a
 * timer it starts on 'listening' — so on the Unix socket they did nothing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Header fields node keeps per request: server.ts sets http.Server#maxHeadersCount to it, and
 * http.ts refuses a request that reaches it. Node drops the fields after it without a word, so a
 * request with more was answered for what was missing (a 415 for a Content-Type sent as the
 * 101st field; session 25's review). Such a request is refused for what it is instead (431).
 */
export const MAX_HEADER_FIELDS = 100;

export interface Tracked {
  readonly socket: Socket;
  readonly openedAt: number;
  lastActiveAt: number;
  /** Requests being handled (body complete, answer not yet sent). */
  inFlight: number;
  /** Answers sent on this connection. */
  answered: number;
}

export interface ConnectionTracker {
  /**
   * Registers a new connection. At the cap, closes the least useful idle
   * connection to make room; when every connection is busy, closes the new
   * one and returns undefined.
   */
  admit(socket: Socket): Tracked | undefined;
  get(socket: Socket): Tracked | undefined;
  begin(t: Tracked | undefined): void;
  end(t: Tracked | undefined): void;
  readonly size: number;
  /** Connections closed to make room (for tests and logs). */
  readonly evicted: number;
  destroyAll(): void;
}

export function createConnectionTracker(maxConnections: number, now: () => number = Date.now): ConnectionTracker {
  const live = new Map<Socket, Tracked>();
  let evicted = 0;

  /** The idle connection whose loss costs least: never answered and oldest, else least recently active. */
  function victim(): Tracked | undefined {
    let best: Tracked | undefined;
    for (const t of live.values()) {
      if (t.inFlight > 0) continue;
      if (!best) best = t;
      else if ((t.answered === 0) !== (best.answered === 0)) {
        if (t.answered === 0) best = t;
      } else if (t.answered === 0 ? t.openedAt < best.openedAt : t.lastActiveAt < best.lastActiveAt) best = t;
    }
    return best;
  }

  return {
    admit(socket) {
      if (live.size >= maxConnections) {
        const v = victim();
        if (!v) {
          socket.destroy();
          return undefined;
        }
        live.delete(v.socket);
        evicted++;
        v.socket.destroy();
      }
      const t: Tracked = { socket, openedAt: now(), lastActiveAt: now(), inFlight: 0, answered: 0 };
      live.set(socket, t);
      socket.once('close', () => live.delete(socket));
      return t;
    },
    get: (socket) => live.get(socket),
    begin(t) {
      if (!t) return;
      t.inFlight++;
      t.lastActiveAt = now();
    },
    end(t) {
      if (!t) return;
      t.inFlight = Math.max(0, t.inFlight - 1);
      t.answered++;
      t.lastActiveAt = now();
    },
    get size() {
      return live.size;
    },
    get evicted() {
      return evicted;
    },
    destroyAll() {
      for (const s of live.keys()) s.destroy();
      live.clear();
    },
  };
}

export interface HttpDeadlines {
  /** From the connection's detection (or the previous answer) to complete request headers. */
  headersTimeoutMs: number;
  /** From complete headers to the answer sent (body upload + handling). */
  requestTimeoutMs: number;
}

const TIMEOUT_408 = 'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';

/**
 * Puts one HTTP connection under deadlines: while no request is being
 * handled, the next request's headers must arrive within `headersTimeoutMs`;
 * a request must be answered within `requestTimeoutMs`. Over the first:
 * 408, then closed; over the second: closed. The server's request handler
 * calls `httpRequestStarted` to move from one deadline to the other.
 */
export function guardHttpConnection(socket: Socket, d: HttpDeadlines): void {
  let timer: NodeJS.Timeout | undefined;
  let active = 0;
  const arm = (ms: number, headersPhase: boolean) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (headersPhase && socket.writable) socket.end(TIMEOUT_408);
      socket.destroy();
    }, ms);
    timer.unref();
  };
  arm(d.headersTimeoutMs, true);
  socket.once('close', () => clearTimeout(timer));
  guards.set(socket, {
    onRequest(res) {
      active++;
      arm(d.requestTimeoutMs, false);
      res.once('close', () => {
        active--;
        if (socket.destroyed) return clearTimeout(timer);
        if (active === 0) arm(d.headersTimeoutMs, true);
      });
    },
  });
}

const guards = new WeakMap<Socket, { onRequest(res: ServerResponse): void }>();

/** Call first in the HTTP request handler: moves the connection's deadline from "headers" to "answer". */
export function httpRequestStarted(req: IncomingMessage, res: ServerResponse): void {
  guards.get(req.socket)?.onRequest(res);
}
