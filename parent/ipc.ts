/**
 * Raw JSON-RPC over a stream socket, as geth's IPC endpoint speaks it: the
 * client writes JSON values back to back (ethers ends each with "\n", viem
 * does not), and every request value is answered with exactly one JSON value
 * followed by "\n" (ethers splits on newlines; viem counts braces, so both
 * read it). Answers go out as they complete; clients match them by id.
 *
 * Bounded: one message is at most `maxMessageBytes` (over it: an error value,
 * then the connection is closed); at most `maxPending` requests of one
 * connection run at once (reading pauses meanwhile); reading also pauses
 * while the client does not read its answers.
 *
 * Timed: a message must be complete within `messageTimeoutMs` of its first
 * byte (a client stalling mid-message is closed with an error value). A
 * connection between complete messages is idle, which is legitimate: ethers'
 * IpcSocketProvider opens one socket and keeps it for the life of the
 * process, and never reconnects. So idle connections are closed only after
 * `idleTimeoutMs`, which is off by default; the server's connection cap
 * closes the least recently active idle one when room is needed.
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createJsonStreamSplitter } from './json-stream.js';
import { RPC, errorResponse } from './jsonrpc.js';
import { CancellationSource, type Cancellation } from '../common/cancellation.js';

const EMPTY = Buffer.alloc(0);

export interface IpcOptions {
  /** Handles one message; resolves with the serialized answer, or undefined for notifications only. */
  handle(message: Buffer, cancellation: Cancellation): Promise<string | undefined>;
  maxMessageBytes: number;
  /** Default 64. */
  maxPending?: number;
  /** Unsent answer bytes above which reading pauses. Default 1 MiB. */
  maxWriteBufferBytes?: number;
  /** From a message's first byte to its last. Default 30 s. */
  messageTimeoutMs?: number;
  /** Idle (nothing in flight, no partial message, no bytes either way) before closing. Default 0: never. */
  idleTimeoutMs?: number;
  /** Told when a request starts and when it has been answered (the server's connection cap). */
  onRequestStart?: () => void;
  onRequestEnd?: () => void;
}

/** Serves one connection; `initial` holds bytes already read while sniffing the protocol. */
export function serveIpc(socket: Duplex, initial: Buffer, opts: IpcOptions): void {
  const maxPending = opts.maxPending ?? 64;
  // 1 MiB, not 8: this is held per connection, up to maxConnections (1024) of them, in one
  // heap (~4 GiB by default); at 8 MiB about 480 connections that never read took the parent
  // down (review finding, ipc-flow.test.ts). It only pauses reading: a client that reads
  // its answers never notices it.
  const maxWriteBuffer = opts.maxWriteBufferBytes ?? 1024 * 1024;
  const messageTimeoutMs = opts.messageTimeoutMs ?? 30_000;
  const splitter = createJsonStreamSplitter(opts.maxMessageBytes);
  // One per connection; requests register on it without an EventTarget listener each (common/cancellation.ts).
  const gone = new CancellationSource();
  let pending = 0;
  let ending = false; // no more requests will be read (client ended, or we are closing)
  let paused = false;
  /** Set once the stream is unusable: sent after the answers still owed, then the connection ends. */
  let fatalError: string | undefined;

  const write = (text: string) => {
    if (socket.destroyed || !socket.writable) return;
    socket.write(`${text}\n`);
  };

  /**
   * Complete messages read but not started yet: they wait while the connection is at its limits.
   * Review finding: the limits used to be checked only after a whole read was dispatched (one
   * 64 KiB read of `{}` is 32,768 messages), so a client that never read its answers made the
   * parent buffer answers without bound. Now a message starts only within the limits; what one
   * read brought beyond them waits here (at most one read's worth: reading is paused meanwhile).
   */
  let queued: Buffer[] = [];
  let queuedHead = 0;
  const atLimit = () => pending >= maxPending || socket.writableLength > maxWriteBuffer;

  const flowControl = () => {
    while (queuedHead < queued.length && !atLimit() && !socket.destroyed) {
      const v = queued[queuedHead]!;
      queued[queuedHead++] = EMPTY;
      start(v);
    }
    if (queuedHead === queued.length && queuedHead > 0) {
      queued = [];
      queuedHead = 0;
    }
    // Once ending, nothing more is parsed: what arrives is discarded (fatal) or nothing arrives (end).
    const wantPause = !ending && (queuedHead < queued.length || atLimit());
    if (wantPause && !paused) {
      paused = true;
      socket.pause();
    } else if (!wantPause && paused) {
      paused = false;
      socket.resume();
    }
  };

  const finishIfDone = () => {
    if (!ending || pending > 0 || queuedHead < queued.length || socket.destroyed || !socket.writable) return;
    if (fatalError !== undefined) write(fatalError);
    socket.end();
  };

  /**
   * A final error value, then close: after it the byte stream cannot be
   * trusted to be in sync. Requests already read are answered first.
   */
  const fatal = (code: number, message: string) => {
    ending = true;
    fatalError = JSON.stringify(errorResponse(null, code, message));
    socket.removeListener('data', onData);
    socket.resume(); // discard what else arrives; nothing more is parsed
    finishIfDone();
    clearTimeout(messageTimer);
    // Do not wait long for a client that never reads.
    const t = setTimeout(() => socket.destroy(), 5_000);
    t.unref();
    socket.once('close', () => clearTimeout(t));
  };

  /** Running while a message is incomplete: a stalled client holds no connection for long. */
  let messageTimer: NodeJS.Timeout | undefined;
  const onMessageTimeout = () => {
    messageTimer = undefined;
    if (ending || socket.destroyed) return;
    // Reading is paused by us (too many pending, unread answers): the rest may be waiting in the kernel.
    if (paused) {
      messageTimer = setTimeout(onMessageTimeout, messageTimeoutMs);
      messageTimer.unref();
      return;
    }
    fatal(RPC.INVALID_REQUEST, `invalid request: message not completed within ${messageTimeoutMs} ms; closing the connection`);
  };
  const watchMessage = () => {
    if (splitter.pending === 0) {
      clearTimeout(messageTimer);
      messageTimer = undefined;
    } else if (messageTimer === undefined) {
      messageTimer = setTimeout(onMessageTimeout, messageTimeoutMs);
      messageTimer.unref();
    }
  };

  function start(v: Buffer): void {
    pending++;
    opts.onRequestStart?.();
    opts.handle(v, gone).then(
      (answer) => {
        if (answer !== undefined) write(answer);
      },
      () => write(JSON.stringify(errorResponse(null, RPC.INTERNAL_ERROR, 'internal error'))),
    ).finally(() => {
      pending--;
      opts.onRequestEnd?.();
      flowControl();
      finishIfDone();
    });
  }

  function onData(chunk: Buffer): void {
    if (ending) return;
    const { values, error } = splitter.push(chunk);
    // A message that completed restarts the clock for the next one.
    if (values.length > 0) {
      clearTimeout(messageTimer);
      messageTimer = undefined;
    }
    for (const v of values) queued.push(v);
    if (error) {
      if (error.kind === 'too_large') fatal(RPC.INVALID_REQUEST, `invalid request: message larger than ${error.limit} bytes; closing the connection`);
      else fatal(RPC.PARSE_ERROR, 'parse error: expected a JSON object or array; closing the connection');
      // The messages read before the error are still answered, first.
      flowControl();
      return;
    }
    watchMessage();
    flowControl();
  }

  socket.on('data', onData);
  socket.on('drain', flowControl);
  socket.on('end', () => {
    ending = true;
    finishIfDone();
  });
  socket.on('error', () => {}); // a reset by the client is its business; 'close' follows
  socket.on('close', () => {
    clearTimeout(messageTimer);
    queued = []; // nobody to answer
    queuedHead = 0;
    gone.abort(new Error('client disconnected'));
  });
  if (opts.idleTimeoutMs && socket instanceof Socket) {
    socket.setTimeout(opts.idleTimeoutMs);
    socket.on('timeout', () => {
      if (pending === 0 && queuedHead === queued.length && splitter.pending === 0 && !ending) socket.end();
    });
  }
  if (initial.length > 0) onData(initial);
  // Not when the first read already reached the limits: server.ts hands the socket over paused,
  // and an unconditional resume here undid that pause for good (`paused` stayed set, so it was
  // never paused again while the limits held: review finding, see ipc-flow.test.ts).
  if (!paused) socket.resume();
}
