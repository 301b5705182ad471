/**
 * One end of a bridge connection: hello exchange, a multiplexing RPC client,
 * and (when given a handler) an RPC server — over any byte Duplex (unix, tcp,
 * vsock sockets).
 *
 * The peer is symmetric: either side may send requests, and requests in each
 * direction have their own id space (`req`/`cancel` go to the receiver's
 * server half, `res`/`err` to its client half). In practice the parent is the
 * client and the enclave serves.
 *
 * Connection state machine (docs/bridge.md):
 *
 *   hello ──valid peer hello──▶ open ──bye / error / EOF / close()──▶ closed
 *     └───────────── bad first message, timeout, version/role mismatch ──┘
 *
 * Our hello is sent the moment the peer is created; requests may be pipelined
 * behind it. A frame whose body cannot be read (bad CBOR, too deep, over the
 * cap — its length prefix still good) fails only the request it belongs to:
 * an `err` for its id when the id can be read, else it is dropped and
 * reported (issue 8, finding 2: one hostile request must not cost every
 * client its connection). Anything else wrong on the wire — a length the
 * reader cannot skip, an invalid message, a message out of place — closes
 * the connection with a typed reason, sends that reason to the peer in a `bye` when the stream still
 * allows it, rejects every pending request with BRIDGE_DISCONNECTED and aborts
 * every running handler's signal. Nothing here throws out of an event handler.
 */
import type { Duplex } from 'node:stream';
import type { CborValue } from '../cbor.js';
import { jsonToCbor } from '../cbor-json.js';
import { CancellationSource, cancellationOf, type Cancellation } from '../cancellation.js';
import { isSignerError } from '../errors.js';
import { ChurnMap } from '../churn-map.js';
import { BridgeError, BridgeRemoteError, asBridgeError, type BridgeErrorCode } from './errors.js';
import { createFrameReader, encodeFrame, resolveMaxFrameBytes, type BadFrame, type FrameEvent } from './frame.js';
import {
  PROTOCOL_VERSION,
  SUPPORTED_VERSIONS,
  MAX_DEADLINE_MS,
  MAX_ERROR_MESSAGE_LENGTH,
  encodeMessage,
  isValidDeadline,
  isValidErrorCode,
  isValidFeature,
  isValidMethod,
  parseMessage,
  type BridgeMessage,
  type BridgeRole,
  type ErrorMessage,
  type HelloMessage,
  type RequestMessage,
  type WireError,
} from './messages.js';

export interface BridgeRequestContext {
  /**
   * Cancelled when the peer cancels, the deadline passes, or the connection drops; `reason` is a
   * BridgeError. No EventTarget per request (common/cancellation.ts); code that needs an
   * AbortSignal reads `cancellation.signal`, which is made on first use.
   */
  readonly cancellation: Cancellation;
  /** Absolute deadline on this side's clock (Date.now() ms), when the request carried one. */
  deadline?: number;
  /** The request id, for logs. */
  id: number;
}

export type BridgeHandler = (method: string, params: CborValue, ctx: BridgeRequestContext) => Promise<CborValue>;

export type BridgeErrorEvent =
  /** The connection closed for a reason other than an orderly hang-up. */
  | { kind: 'connection' }
  /** A handler threw (or returned something that cannot be sent); the peer saw only `code`/`message`. */
  | { kind: 'handler'; id: number; method: string }
  /**
   * A frame could not be read (BRIDGE_BAD_FRAME / BRIDGE_FRAME_TOO_LARGE); the
   * connection lives on. `id`/`t` when they could be read from the frame;
   * `answered` when the request it carried got an `err`, or our pending
   * request it answered was rejected.
   */
  | { kind: 'frame'; t?: string; id?: number; answered: boolean };

export interface BridgePeerOptions {
  /** Our role, announced in hello. */
  role: BridgeRole;
  /** The role the peer must announce. Default: the other one. */
  expectPeerRole?: BridgeRole;
  /** Features we offer; the connection uses the intersection with the peer's. */
  features?: readonly string[];
  /** Serves the peer's requests. Without it, requests are answered with BRIDGE_NOT_SERVING. */
  handler?: BridgeHandler;
  /** Cap on one frame's CBOR body, both directions. Default 1 MiB. */
  maxFrameBytes?: number;
  /** Handlers allowed to run at once on this connection; beyond it requests get BRIDGE_BUSY. Default 256. */
  maxInFlight?: number;
  /** Deadline for requests that do not pass one. Default 30 s. */
  defaultDeadlineMs?: number;
  /** Time allowed for the peer's hello. Default 10 s. */
  helloTimeoutMs?: number;
  /**
   * When a peer with a handler has more than this many response bytes queued
   * because the other side is not reading, it stops reading new requests until
   * the queue drains. Default 8 MiB.
   */
  maxWriteBufferBytes?: number;
  /** How long to wait for our `bye` to flush before destroying the stream. Default 1 s. */
  closeLingerMs?: number;
  /** Observability hook (logging). Exceptions thrown by it are swallowed. */
  onError?: (error: unknown, event: BridgeErrorEvent) => void;
}

export interface BridgePeerInfo {
  /** Negotiated protocol version. */
  version: number;
  /** The role the peer announced. */
  role: BridgeRole;
  /** Features both sides offered. */
  features: string[];
}

export interface RequestOptions {
  /** Milliseconds to wait for the response (1..2^31-1). Default: the peer's defaultDeadlineMs. */
  deadlineMs?: number;
  /** Aborting it rejects the request with BRIDGE_CANCELLED and cancels it on the peer. */
  signal?: AbortSignal;
  /** The same as `signal`, in the form that costs no EventTarget listener per request (common/cancellation.ts). */
  cancellation?: Cancellation;
}

export interface BridgePeer {
  readonly role: BridgeRole;
  /** Resolves once the peer's hello is accepted; rejects with the reason if the connection closes first. */
  readonly ready: Promise<BridgePeerInfo>;
  /** Resolves (never rejects) with the reason once the connection is closed. */
  readonly closed: Promise<BridgeError>;
  /** The peer's negotiated info, once ready. */
  readonly info: BridgePeerInfo | undefined;
  readonly isOpen: boolean;
  /** Our requests awaiting a response. */
  readonly pendingRequests: number;
  /** Peer requests whose handlers are still running (counted against maxInFlight). */
  readonly runningHandlers: number;
  /**
   * Sends a request and resolves with the peer's result. Rejects with
   * BridgeRemoteError (the peer's error code), or BridgeError: BRIDGE_TIMEOUT,
   * BRIDGE_CANCELLED, BRIDGE_DISCONNECTED, BRIDGE_FRAME_TOO_LARGE / BRIDGE_ENCODE
   * (nothing was sent), BRIDGE_BAD_ARGUMENT.
   */
  request(method: string, params: CborValue, opts?: RequestOptions): Promise<CborValue>;
  /** Orderly close: sends `bye`, rejects pending requests, aborts running handlers. Idempotent. */
  close(): void;
}

const DEFAULTS = {
  maxInFlight: 256,
  defaultDeadlineMs: 30_000,
  helloTimeoutMs: 10_000,
  maxWriteBufferBytes: 8 * 1024 * 1024,
  closeLingerMs: 1_000,
};

/** Bye codes we adopt as our own close reason, so both ends report e.g. BRIDGE_VERSION. */
const CONNECTION_CODES: ReadonlySet<string> = new Set<BridgeErrorCode>([
  'BRIDGE_FRAME_TOO_LARGE',
  'BRIDGE_BAD_FRAME',
  'BRIDGE_PROTOCOL',
  'BRIDGE_VERSION',
  'BRIDGE_HANDSHAKE',
  'BRIDGE_BUSY',
]);

const GENERIC_INTERNAL: WireError = { code: 'INTERNAL', message: 'internal error' };

function positiveInt(name: string, v: number | undefined, dflt: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1 || v > max) throw new BridgeError('BRIDGE_BAD_ARGUMENT', `${name} must be an integer in 1..${max}, got ${String(v)}`);
  return v;
}

function otherRole(r: BridgeRole): BridgeRole {
  return r === 'parent' ? 'enclave' : 'parent';
}

/**
 * What a thrown value may tell the peer: a SignerError's code, message and
 * hint; for anything else only that something failed. Stack traces never
 * cross the bridge.
 */
export function toWireError(e: unknown): WireError {
  if (!isSignerError(e) || !isValidErrorCode(e.code)) return { ...GENERIC_INTERNAL };
  const message = typeof e.message === 'string' ? e.message.slice(0, MAX_ERROR_MESSAGE_LENGTH) : '';
  const out: WireError = { code: e.code, message };
  const data = new Map<string, CborValue>();
  if (typeof e.hint === 'string') data.set('hint', e.hint.slice(0, MAX_ERROR_MESSAGE_LENGTH));
  // Signing refusals name the offending request field (SigningError.field).
  const field = (e as { field?: unknown }).field;
  if (typeof field === 'string') data.set('field', field.slice(0, 256));
  // A refusal the enclave recorded carries its signed audit record (docs/audit.md):
  // the parent persists it before it relays the refusal.
  const audit = (e as { auditRecord?: unknown }).auditRecord;
  if (audit instanceof Uint8Array && audit.length <= 64 * 1024) data.set('audit', audit);
  // A refusal that changed the enclave's shared (fleet-scope) state carries the sealed record:
  // ciphertext and its position only (docs/scale-out.md); the parent stores it before relaying.
  const sealed = (e as { sealedState?: unknown }).sealedState;
  if (sealed !== null && typeof sealed === 'object') data.set('sealedState', jsonToCbor(sealed));
  // Structured refusal details (the policy's deciding rule, an approval's id…): short
  // strings, integers, null and string lists only, never anything from a secret.
  const extra = (e as { wireData?: unknown }).wireData;
  if (extra !== null && typeof extra === 'object') {
    for (const [k, v] of Object.entries(extra).slice(0, 16)) {
      if (data.has(k) || k.length > 32) continue;
      if (v === null || (typeof v === 'number' && Number.isSafeInteger(v))) data.set(k, v);
      else if (typeof v === 'string') data.set(k, v.slice(0, 256));
      else if (Array.isArray(v) && v.length <= 64 && v.every((x) => typeof x === 'string')) data.set(k, v.map((x: string) => x.slice(0, 128)));
    }
  }
  if (data.size > 0) out.data = data;
  return out;
}

/** The detach of a request made without a cancellation. */
const notAttached = (): void => {};

interface Pending {
  resolve: (v: CborValue) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout;
  detach: () => void;
}

interface InFlight {
  cancel: CancellationSource;
  timer: NodeJS.Timeout | undefined;
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Takes ownership of `stream`: attaches its listeners, sends our hello, and
 * destroys the stream when the connection closes.
 */
export function createBridgePeer(stream: Duplex, opts: BridgePeerOptions): BridgePeer {
  return new Peer(stream, opts);
}

function remoteError(msg: ErrorMessage): BridgeRemoteError {
  return new BridgeRemoteError(msg.error.code, msg.error.message, msg.error.data);
}

class Peer implements BridgePeer {
  readonly role: BridgeRole;
  readonly ready: Promise<BridgePeerInfo>;
  readonly closed: Promise<BridgeError>;
  readonly #stream: Duplex;
  readonly #expectPeerRole: BridgeRole;
  readonly #maxFrameBytes: number;
  readonly #maxInFlight: number;
  readonly #defaultDeadlineMs: number;
  readonly #maxWriteBufferBytes: number;
  readonly #closeLingerMs: number;
  readonly #ourFeatures: string[];
  readonly #handler: BridgeHandler | undefined;
  readonly #onError: BridgePeerOptions['onError'];
  readonly #decoder: ReturnType<typeof createFrameReader>;
  #state: 'hello' | 'open' | 'closed' = 'hello';
  #info: BridgePeerInfo | undefined;
  #closeReason: BridgeError | undefined;
  #nextId = 1;
  // Not plain Maps: requests come and go thousands of times a second (common/churn-map.ts says why).
  readonly #pending = new ChurnMap<number, Pending>();
  readonly #inflight = new ChurnMap<number, InFlight>();
  #running = 0;
  #corked = false;
  #readPaused = false;
  /** Frames not yet handled (only non-empty while paused for flow control). */
  #backlog: FrameEvent[] = [];
  #helloTimer: NodeJS.Timeout | undefined;
  readonly #readyD = deferred<BridgePeerInfo>();
  readonly #closedD = deferred<BridgeError>();

  constructor(stream: Duplex, opts: BridgePeerOptions) {
    if (opts.role !== 'parent' && opts.role !== 'enclave') throw new BridgeError('BRIDGE_BAD_ARGUMENT', 'role must be "parent" or "enclave"');
    this.role = opts.role;
    this.#stream = stream;
    this.#expectPeerRole = opts.expectPeerRole ?? otherRole(opts.role);
    this.#maxFrameBytes = resolveMaxFrameBytes(opts.maxFrameBytes);
    this.#maxInFlight = positiveInt('maxInFlight', opts.maxInFlight, DEFAULTS.maxInFlight);
    this.#defaultDeadlineMs = positiveInt('defaultDeadlineMs', opts.defaultDeadlineMs, DEFAULTS.defaultDeadlineMs, MAX_DEADLINE_MS);
    const helloTimeoutMs = positiveInt('helloTimeoutMs', opts.helloTimeoutMs, DEFAULTS.helloTimeoutMs, MAX_DEADLINE_MS);
    this.#maxWriteBufferBytes = positiveInt('maxWriteBufferBytes', opts.maxWriteBufferBytes, DEFAULTS.maxWriteBufferBytes);
    this.#closeLingerMs = positiveInt('closeLingerMs', opts.closeLingerMs, DEFAULTS.closeLingerMs, MAX_DEADLINE_MS);
    this.#ourFeatures = [...new Set(opts.features ?? [])].sort();
    for (const f of this.#ourFeatures) if (!isValidFeature(f)) throw new BridgeError('BRIDGE_BAD_ARGUMENT', `invalid feature name ${JSON.stringify(f)}`);
    this.#handler = opts.handler;
    this.#onError = opts.onError;
    this.#decoder = createFrameReader({ maxFrameBytes: this.#maxFrameBytes });
    this.ready = this.#readyD.promise;
    this.ready.catch(() => {}); // a caller that never awaits `ready` must not crash the process
    this.closed = this.#closedD.promise;

    // ---------------------------------------------------------- wiring
    stream.on('data', this.#onData);
    stream.on('drain', () => {
      if (this.#readPaused && this.#state !== 'closed') {
        this.#readPaused = false;
        stream.resume();
        this.#pump();
      }
    });
    stream.on('end', () => this.#fail(new BridgeError('BRIDGE_DISCONNECTED', 'peer closed the connection'), false));
    stream.on('close', () => this.#fail(new BridgeError('BRIDGE_DISCONNECTED', 'connection closed'), false));
    // Always listening for 'error': an unhandled stream error would crash the process.
    stream.on('error', (e: NodeJS.ErrnoException) => this.#fail(new BridgeError('BRIDGE_DISCONNECTED', `connection error: ${e.code ?? e.message}`, { cause: e }), false));

    this.#helloTimer = setTimeout(
      () => this.#fail(new BridgeError('BRIDGE_HANDSHAKE', `no hello from the peer within ${helloTimeoutMs} ms`), true),
      helloTimeoutMs,
    );
    this.#helloTimer.unref();

    const hello: HelloMessage = { t: 'hello', v: PROTOCOL_VERSION, role: opts.role };
    if (this.#ourFeatures.length > 0) hello.features = this.#ourFeatures;
    if (stream.destroyed) this.#fail(new BridgeError('BRIDGE_DISCONNECTED', 'stream was already destroyed'), false);
    else this.#send(hello);
  }

  get info(): BridgePeerInfo | undefined {
    return this.#info;
  }

  get isOpen(): boolean {
    return this.#state !== 'closed';
  }

  get pendingRequests(): number {
    return this.#pending.size;
  }

  get runningHandlers(): number {
    return this.#running;
  }

  close(): void {
    this.#fail(new BridgeError('BRIDGE_DISCONNECTED', 'connection closed by this side'), true);
  }

  #report(error: unknown, event: BridgeErrorEvent): void {
    try {
      this.#onError?.(error, event);
    } catch {
      // a logging hook must not take the connection (or the process) down
    }
  }

  // ------------------------------------------------------------ writing

  readonly #uncork = (): void => {
    if (!this.#corked) return;
    this.#corked = false;
    this.#stream.uncork();
  };

  /**
   * Writes one frame. Frames written in the same turn of the event loop go out in one syscall:
   * the stream is corked at the first and uncorked in the turn's check phase (setImmediate),
   * after the I/O callbacks that ran in it. Uncorking at the end of each callback (nextTick) wrote
   * once per answer, because answers complete one per callback (a worker's message, a timer);
   * at 64 clients that was a syscall and a wake-up of the other side per answer
   * (docs/performance.md, "Session 12"). A lone frame still leaves in the turn it was written.
   */
  #writeFrame(frame: Uint8Array): void {
    const stream = this.#stream;
    if (this.#state === 'closed' || stream.destroyed || !stream.writable) return;
    if (!this.#corked) {
      this.#corked = true;
      stream.cork();
      setImmediate(this.#uncork);
    }
    stream.write(frame);
    // Flow control for the serving side: a peer that sends requests but does
    // not read responses would otherwise grow our write queue without bound.
    if (this.#handler && !this.#readPaused && stream.writableLength > this.#maxWriteBufferBytes) {
      this.#readPaused = true;
      stream.pause();
    }
  }

  #send(msg: BridgeMessage): void {
    // Messages we build ourselves always encode; a result/params too large is handled by callers.
    this.#writeFrame(encodeFrame(encodeMessage(msg), { maxFrameBytes: this.#maxFrameBytes }));
  }

  #sendError(id: number, error: WireError): void {
    this.#send({ t: 'err', id, error });
  }

  // ------------------------------------------------------------ closing

  #fail(reason: BridgeError, sendBye: boolean): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closeReason = reason;
    clearTimeout(this.#helloTimer);

    const gone = new BridgeError('BRIDGE_DISCONNECTED', `connection closed before the response arrived: ${reason.message}`, { cause: reason });
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.detach();
      p.reject(gone);
    }
    this.#pending.clear();
    const abortReason = new BridgeError('BRIDGE_DISCONNECTED', `connection closed: ${reason.message}`, { cause: reason });
    for (const f of this.#inflight.values()) {
      clearTimeout(f.timer);
      f.cancel.abort(abortReason);
    }
    this.#inflight.clear();
    this.#backlog = [];

    this.#readyD.reject(reason);
    this.#closedD.resolve(reason);
    if (reason.code !== 'BRIDGE_DISCONNECTED') this.#report(reason, { kind: 'connection' });

    const stream = this.#stream;
    stream.removeListener('data', this.#onData);
    if (sendBye && !stream.destroyed && stream.writable) {
      const bye: BridgeMessage = reason.code === 'BRIDGE_DISCONNECTED' ? { t: 'bye' } : { t: 'bye', error: { code: reason.code, message: reason.message.slice(0, MAX_ERROR_MESSAGE_LENGTH) } };
      this.#uncork();
      // end() flushes the bye before FIN; we keep draining (and discarding)
      // input meanwhile, because closing with unread input would reset a TCP
      // connection and could lose the bye. The linger timer bounds it all.
      stream.end(encodeFrame(encodeMessage(bye), { maxFrameBytes: this.#maxFrameBytes }));
      stream.resume();
      const t = setTimeout(() => stream.destroy(), this.#closeLingerMs);
      t.unref();
      stream.once('close', () => clearTimeout(t));
    } else {
      stream.destroy();
    }
  }

  // ------------------------------------------------------------ reading

  readonly #onData = (chunk: Uint8Array): void => {
    if (this.#state === 'closed') return;
    try {
      for (const f of this.#decoder.push(chunk)) this.#backlog.push(f);
    } catch (e) {
      return this.#fail(asBridgeError(e, 'BRIDGE_BAD_FRAME', 'frame decoding failed'), true);
    }
    this.#pump();
  };

  /**
   * Handles decoded frames in order. While reading is paused for flow control
   * the rest of the current chunk waits here (at most one chunk's worth, since
   * nothing more is read), so a burst of requests cannot bypass the pause.
   */
  #pump(): void {
    while (this.#backlog.length > 0 && !this.#readPaused && this.isOpen) {
      const ev = this.#backlog.shift()!;
      if (!ev.ok) {
        this.#onBadFrame(ev.bad);
        continue;
      }
      let msg: BridgeMessage;
      try {
        msg = parseMessage(ev.value);
      } catch (e) {
        return this.#fail(asBridgeError(e, 'BRIDGE_PROTOCOL', 'invalid message'), true);
      }
      this.#handle(msg);
    }
  }

  /**
   * A frame we could not read, the stream still in sync. Before the peer's
   * hello there is no connection to keep: that is fatal. Otherwise the request
   * it carried gets an `err` (its id was read from the front of the frame), or
   * our pending request it answered is rejected; anything else is dropped.
   */
  #onBadFrame(bad: BadFrame): void {
    if (this.#state === 'hello') return this.#fail(bad.error, true);
    const { t, id } = bad;
    const code = bad.error.code as BridgeErrorCode;
    let answered = false;
    if (t === 'req' && id !== undefined && !this.#inflight.has(id)) {
      // An id still in flight is not answered: its requester would take this for the earlier request's answer.
      this.#sendError(id, { code, message: `request ${id} could not be read: ${bad.error.message}`.slice(0, MAX_ERROR_MESSAGE_LENGTH) });
      answered = true;
    } else if ((t === 'res' || t === 'err') && id !== undefined) {
      const p = this.#pending.get(id);
      if (p) {
        this.#pending.delete(id);
        clearTimeout(p.timer);
        p.detach();
        // Always BRIDGE_BAD_FRAME here: BRIDGE_FRAME_TOO_LARGE from request() means "yours was too big, nothing sent".
        p.reject(new BridgeError('BRIDGE_BAD_FRAME', `the response to request ${id} could not be read: ${bad.error.message}`, { cause: bad.error }));
        answered = true;
      }
    }
    this.#report(bad.error, { kind: 'frame', ...(t === undefined ? {} : { t }), ...(id === undefined ? {} : { id }), answered });
  }

  #handle(msg: BridgeMessage): void {
    if (msg.t === 'bye') {
      const e = msg.error;
      const code: BridgeErrorCode = e && CONNECTION_CODES.has(e.code) ? (e.code as BridgeErrorCode) : 'BRIDGE_DISCONNECTED';
      return this.#fail(new BridgeError(code, e ? `peer closed the connection: ${e.code}: ${e.message}` : 'peer closed the connection'), false);
    }
    if (msg.t === 'hello') return this.#onHello(msg);
    if (this.#state === 'hello') return this.#fail(new BridgeError('BRIDGE_PROTOCOL', `expected hello as the first message, got "${msg.t}"`), true);
    switch (msg.t) {
      case 'req':
        return this.#onRequest(msg);
      case 'cancel':
        return this.#onCancel(msg.id);
      case 'res':
      case 'err':
        return this.#onResponse(msg);
    }
  }

  #onHello(msg: HelloMessage): void {
    if (this.#state !== 'hello') return this.#fail(new BridgeError('BRIDGE_PROTOCOL', 'second hello on an open connection'), true);
    // Negotiation: each side announces its highest version; both run the lower
    // one, which each side must support (checked independently on both ends).
    const version = Math.min(PROTOCOL_VERSION, msg.v);
    if (!SUPPORTED_VERSIONS.includes(version)) {
      return this.#fail(
        new BridgeError('BRIDGE_VERSION', `peer speaks bridge protocol v${msg.v}, this side speaks v${SUPPORTED_VERSIONS.join('/')}`, {
          hint: 'deploy parent and enclave builds with a common bridge protocol version',
        }),
        true,
      );
    }
    if (msg.role !== this.#expectPeerRole) {
      return this.#fail(new BridgeError('BRIDGE_HANDSHAKE', `peer announced role "${msg.role}", expected "${this.#expectPeerRole}"`), true);
    }
    const theirs = new Set(msg.features ?? []);
    const info: BridgePeerInfo = { version, role: msg.role, features: this.#ourFeatures.filter((f) => theirs.has(f)) };
    this.#info = info;
    this.#state = 'open';
    clearTimeout(this.#helloTimer);
    this.#readyD.resolve(info);
  }

  // ------------------------------------------------------------ server half

  #onRequest(msg: RequestMessage): void {
    const { id } = msg;
    const handler = this.#handler;
    if (!handler) return this.#sendError(id, { code: 'BRIDGE_NOT_SERVING', message: 'this side of the bridge does not serve requests' });
    if (this.#inflight.has(id)) return this.#fail(new BridgeError('BRIDGE_PROTOCOL', `request id ${id} is already in flight`), true);
    if (this.#running >= this.#maxInFlight) {
      return this.#sendError(id, { code: 'BRIDGE_BUSY', message: `more than ${this.#maxInFlight} requests in flight on this connection` });
    }

    const entry: InFlight = { cancel: new CancellationSource(), timer: undefined };
    this.#inflight.set(id, entry);
    this.#running++;
    const ctx: BridgeRequestContext = { cancellation: entry.cancel, id };
    if (msg.deadline !== undefined) {
      const budget = msg.deadline;
      ctx.deadline = Date.now() + budget;
      entry.timer = setTimeout(() => {
        if (this.#inflight.get(id) !== entry) return;
        this.#inflight.delete(id);
        const e = new BridgeError('BRIDGE_TIMEOUT', `deadline of ${budget} ms passed before the handler finished`);
        entry.cancel.abort(e);
        this.#sendError(id, { code: e.code, message: e.message });
      }, budget);
    }

    let p: Promise<CborValue>;
    try {
      p = Promise.resolve(handler(msg.method, msg.params, ctx));
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (result) => this.#finish(id, msg.method, entry, { ok: true, result }),
      (error: unknown) => this.#finish(id, msg.method, entry, { ok: false, error }),
    );
  }

  #finish(id: number, method: string, entry: InFlight, outcome: { ok: true; result: CborValue } | { ok: false; error: unknown }): void {
    this.#running--;
    // Cancelled, timed out or disconnected: the peer gets nothing more for this
    // id, and an error thrown after the abort is the expected way to stop.
    if (this.#inflight.get(id) !== entry) return;
    this.#inflight.delete(id);
    clearTimeout(entry.timer);
    if (this.#state === 'closed') return;
    if (!outcome.ok) {
      this.#report(outcome.error, { kind: 'handler', id, method });
      return this.#sendError(id, toWireError(outcome.error));
    }
    let frame: Uint8Array;
    try {
      frame = encodeFrame(encodeMessage({ t: 'res', id, result: outcome.result }), { maxFrameBytes: this.#maxFrameBytes });
    } catch (e) {
      this.#report(e, { kind: 'handler', id, method });
      const tooLarge = e instanceof BridgeError && e.code === 'BRIDGE_FRAME_TOO_LARGE';
      return this.#sendError(id, tooLarge ? { code: 'BRIDGE_RESULT_TOO_LARGE', message: `result does not fit in a ${this.#maxFrameBytes}-byte frame` } : { ...GENERIC_INTERNAL });
    }
    this.#writeFrame(frame);
  }

  #onCancel(id: number): void {
    const entry = this.#inflight.get(id);
    if (!entry) return; // already answered: the cancel crossed our response on the wire
    this.#inflight.delete(id);
    clearTimeout(entry.timer);
    entry.cancel.abort(new BridgeError('BRIDGE_CANCELLED', 'request cancelled by the peer'));
  }

  // ------------------------------------------------------------ client half

  #onResponse(msg: Extract<BridgeMessage, { t: 'res' | 'err' }>): void {
    const p = this.#pending.get(msg.id);
    if (!p) {
      // Ids are issued in increasing order, so an id we never issued is a
      // protocol violation; an older one is a late answer to a request we
      // already timed out or cancelled, and is dropped.
      if (msg.id >= this.#nextId || msg.id < 1) return this.#fail(new BridgeError('BRIDGE_PROTOCOL', `response for request id ${msg.id}, which was never sent`), true);
      return;
    }
    this.#pending.delete(msg.id);
    clearTimeout(p.timer);
    p.detach();
    if (msg.t === 'res') p.resolve(msg.result);
    else p.reject(remoteError(msg));
  }

  /** An arrow property, so `const { request } = peer` keeps working as it did with the closure. */
  readonly request = (method: string, params: CborValue, ropts: RequestOptions = {}): Promise<CborValue> => {
    return new Promise<CborValue>((resolve, reject) => {
      if (this.#state === 'closed') {
        return reject(new BridgeError('BRIDGE_DISCONNECTED', `connection is closed: ${this.#closeReason?.message ?? 'closed'}`, { cause: this.#closeReason }));
      }
      if (!isValidMethod(method)) return reject(new BridgeError('BRIDGE_BAD_ARGUMENT', `invalid method name ${JSON.stringify(String(method).slice(0, 64))}`));
      const deadlineMs = ropts.deadlineMs ?? this.#defaultDeadlineMs;
      if (!isValidDeadline(deadlineMs)) return reject(new BridgeError('BRIDGE_BAD_ARGUMENT', `deadlineMs must be an integer in 1..${MAX_DEADLINE_MS}`));
      const cancel = ropts.cancellation ?? (ropts.signal ? cancellationOf(ropts.signal) : undefined);
      if (cancel?.aborted) return reject(new BridgeError('BRIDGE_CANCELLED', 'request cancelled before it was sent', { cause: cancel.reason }));

      const id = this.#nextId++;
      let frame: Uint8Array;
      try {
        frame = encodeFrame(encodeMessage({ t: 'req', id, method, params, deadline: deadlineMs }), { maxFrameBytes: this.#maxFrameBytes });
      } catch (e) {
        return reject(e); // BRIDGE_ENCODE / BRIDGE_FRAME_TOO_LARGE: nothing sent, connection unaffected
      }

      const pending = this.#pending;
      const abandon = (e: BridgeError) => {
        if (pending.get(id) !== entry) return;
        pending.delete(id);
        clearTimeout(entry.timer);
        entry.detach();
        reject(e);
        // The state may have changed since the request was made; re-read it.
        if (this.isOpen) this.#send({ t: 'cancel', id });
      };
      const onAbort = () => abandon(new BridgeError('BRIDGE_CANCELLED', 'request cancelled by the caller', { cause: cancel?.reason }));
      const entry: Pending = {
        resolve,
        reject,
        timer: setTimeout(() => abandon(new BridgeError('BRIDGE_TIMEOUT', `no response to "${method}" within ${deadlineMs} ms`)), deadlineMs),
        detach: notAttached,
      };
      pending.set(id, entry);
      if (cancel) entry.detach = cancel.onAbort(onAbort);
      this.#writeFrame(frame);
    });
  };
}

/**
 * Turns a connection away before any peer is created (e.g. too many
 * connections): sends a `bye` with the reason instead of a hello, then closes.
 * (A bye is valid as the first message, so the other side reports the reason.)
 */
export function rejectConnection(stream: Duplex, reason: BridgeError, lingerMs = DEFAULTS.closeLingerMs): void {
  stream.on('error', () => {});
  if (stream.destroyed || !stream.writable) return void stream.destroy();
  const bye = encodeFrame(encodeMessage({ t: 'bye', error: { code: reason.code, message: reason.message.slice(0, MAX_ERROR_MESSAGE_LENGTH) } }));
  stream.end(bye);
  stream.resume();
  const t = setTimeout(() => stream.destroy(), lingerMs);
  t.unref();
  stream.once('close', () => clearTimeout(t));
}
