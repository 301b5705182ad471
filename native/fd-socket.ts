/**
 * A Node Duplex over a connected, non-blocking stream-socket fd, driven by the
 * addon's read/writev and a libuv poll handle. It exists because net.Socket
 * refuses AF_VSOCK fds (libuv classifies them as "UNKNOWN", see
 * native/src/fdio.c); it behaves like a net.Socket for everything a bridge
 * needs: data, end, half-close, cork/uncork, destroy, errors with codes.
 *
 * Backpressure, both ways:
 * - reading: we watch for readability only while the stream asks for data
 *   (_read called and push() still returning true). When the consumer stops,
 *   push() returns false, we stop watching, and the kernel's receive buffer
 *   fills, which stalls the peer's writes.
 * - writing: a write's callback fires only once the kernel took every byte; if
 *   the socket buffer is full we watch for writability and resume. Until then
 *   Writable buffers up to writableHighWaterMark and write() returns false.
 *
 * The socket owns the fd from construction and closes it on destroy.
 */
import { Duplex } from 'node:stream';
import { getSystemErrorName } from 'node:util';
import type { NativeAddon, PollHandle } from './addon.js';

/** Read size per syscall; like libuv's. */
const READ_CHUNK = 64 * 1024;
/** writev takes at most this many iovecs per call (the addon's MAX_IOV). */
const MAX_IOV = 64;

export interface FdSocketOptions {
  /** Keep the write side open after the peer ends (default false, like net.Socket). */
  allowHalfOpen?: boolean;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
  /** For messages and debugging, e.g. "vsock://3:5000". */
  remote?: string;
}

/** A Node-style system error from a negated errno (a libuv status). */
export function systemError(status: number, syscall: string): NodeJS.ErrnoException {
  let code: string;
  try {
    code = getSystemErrorName(status);
  } catch {
    code = `ERRNO_${-status}`;
  }
  const e = new Error(`${syscall} ${code}`) as NodeJS.ErrnoException;
  e.code = code;
  e.errno = status;
  e.syscall = syscall;
  return e;
}

interface PendingWrite {
  chunks: Uint8Array[];
  next: number;
  cb: (error?: Error | null) => void;
}

export class FdSocket extends Duplex {
  readonly remote: string;
  readonly #addon: NativeAddon;
  #fd: number;
  #poll: PollHandle | null;
  #events = 0;
  #wantRead = false;
  #inReadLoop = false;
  #pending: PendingWrite | null = null;
  #scratch: Buffer | null = null;
  #bytesRead = 0;
  #bytesWritten = 0;

  constructor(addon: NativeAddon, fd: number, opts: FdSocketOptions = {}) {
    super({
      allowHalfOpen: opts.allowHalfOpen ?? false,
      ...(opts.readableHighWaterMark === undefined ? {} : { readableHighWaterMark: opts.readableHighWaterMark }),
      ...(opts.writableHighWaterMark === undefined ? {} : { writableHighWaterMark: opts.writableHighWaterMark }),
    });
    this.#addon = addon;
    this.#fd = fd;
    this.remote = opts.remote ?? `fd:${fd}`;
    try {
      this.#poll = addon.pollCreate(fd, (status, events) => this.#onPoll(status, events));
    } catch (e) {
      // We own the fd from the first line on: never leak it.
      this.#fd = -1;
      this.#poll = null;
      try {
        addon.close(fd);
      } catch {
        /* already failing */
      }
      throw e;
    }
  }

  /** The descriptor, or -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  get bytesRead(): number {
    return this.#bytesRead;
  }

  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  #watch(bit: number, on: boolean): void {
    const events = on ? this.#events | bit : this.#events & ~bit;
    if (events === this.#events || this.#poll === null) return;
    try {
      this.#addon.pollSet(this.#poll, events);
      this.#events = events;
    } catch (e) {
      // Callers check #fd after every step, so destroying here unwinds them.
      this.destroy(e as Error);
    }
  }

  #onPoll(status: number, events: number): void {
    // Called from the event loop by the addon: nothing may escape (it would be an uncaught exception).
    try {
      if (this.#fd < 0) return;
      if (status < 0) {
        // libuv reports a socket error condition (POLLERR) as EBADF and stops the handle;
        // the socket's pending error says what actually happened (ECONNRESET…).
        let errno = 0;
        try {
          errno = this.#addon.socketError(this.#fd);
        } catch {
          /* keep libuv's status */
        }
        this.destroy(errno !== 0 ? systemError(-errno, 'read') : systemError(status, 'poll'));
        return;
      }
      const { POLL_READABLE, POLL_WRITABLE } = this.#addon.constants;
      // Errors and hang-ups are reported as the events we watch; the next read/write returns them.
      if (events & POLL_WRITABLE && this.#pending !== null) this.#flush();
      if (events & POLL_READABLE && this.#wantRead && this.#fd >= 0) this.#readLoop();
    } catch (e) {
      this.destroy(e as Error);
    }
  }

  override _read(): void {
    this.#wantRead = true;
    if (!this.#inReadLoop) this.#readLoop();
  }

  #readLoop(): void {
    const { POLL_READABLE } = this.#addon.constants;
    this.#inReadLoop = true;
    try {
      while (this.#wantRead && this.#fd >= 0) {
        this.#scratch ??= Buffer.allocUnsafe(READ_CHUNK);
        let n: number;
        try {
          n = this.#addon.read(this.#fd, this.#scratch);
        } catch (e) {
          this.destroy(e as Error);
          return;
        }
        if (n < 0) {
          this.#watch(POLL_READABLE, true);
          return;
        }
        if (n === 0) {
          this.#wantRead = false;
          this.#watch(POLL_READABLE, false);
          this.push(null);
          return;
        }
        this.#bytesRead += n;
        const chunk = Buffer.allocUnsafe(n);
        this.#scratch.copy(chunk, 0, 0, n);
        if (!this.push(chunk)) this.#wantRead = false;
      }
      // The consumer is full: let the kernel buffer (and then the peer) wait.
      if (this.#fd >= 0) this.#watch(POLL_READABLE, false);
    } finally {
      this.#inReadLoop = false;
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (error?: Error | null) => void): void {
    this.#startWrite([chunk], cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (error?: Error | null) => void): void {
    this.#startWrite(
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  #startWrite(chunks: Uint8Array[], cb: (error?: Error | null) => void): void {
    const nonEmpty = chunks.filter((c) => c.length > 0);
    if (nonEmpty.length === 0) {
      cb();
      return;
    }
    this.#pending = { chunks: nonEmpty, next: 0, cb };
    this.#flush();
  }

  #flush(): void {
    const p = this.#pending;
    if (p === null) return;
    const { POLL_WRITABLE } = this.#addon.constants;
    while (p.next < p.chunks.length) {
      if (this.#fd < 0) return;
      const batch = p.next === 0 && p.chunks.length <= MAX_IOV ? p.chunks : p.chunks.slice(p.next, p.next + MAX_IOV);
      let n: number;
      try {
        n = this.#addon.writev(this.#fd, batch);
      } catch (e) {
        this.#pending = null;
        this.#watch(POLL_WRITABLE, false);
        p.cb(e as Error);
        return;
      }
      if (n < 0) {
        this.#watch(POLL_WRITABLE, true);
        return;
      }
      this.#bytesWritten += n;
      while (n > 0) {
        const c = p.chunks[p.next]!;
        if (c.length <= n) {
          n -= c.length;
          p.next++;
        } else {
          p.chunks[p.next] = c.subarray(n);
          n = 0;
        }
      }
    }
    this.#pending = null;
    this.#watch(POLL_WRITABLE, false);
    p.cb();
  }

  override _final(cb: (error?: Error | null) => void): void {
    if (this.#fd < 0) {
      cb();
      return;
    }
    try {
      this.#addon.shutdownWrite(this.#fd);
    } catch (e) {
      // The peer already went away: nothing left to tell it.
      if ((e as NodeJS.ErrnoException).code !== 'ENOTCONN') {
        cb(e as Error);
        return;
      }
    }
    cb();
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.#wantRead = false;
    this.#pending = null;
    const poll = this.#poll;
    const fd = this.#fd;
    this.#poll = null;
    this.#fd = -1;
    this.#scratch = null;
    // Stop watching before closing: the fd number may be reused right away.
    if (poll !== null) this.#addon.pollClose(poll);
    if (fd >= 0) {
      try {
        this.#addon.close(fd);
      } catch (e) {
        cb(error ?? (e as Error));
        return;
      }
    }
    cb(error);
  }
}
