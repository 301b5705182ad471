/**
 * Finds and loads the native addon (native/build/Release/enclave_native.node,
 * built from native/src by `npm ci`). Loading is lazy — nothing touches it
 * until a vsock transport or the hardware NSM is actually used — and cached.
 *
 * The addon's functions are thin: every one maps to one or two syscalls, takes
 * plain numbers and Uint8Arrays, and throws an Error whose `code` is an errno
 * name ("ECONNREFUSED", "ENOENT"…) or ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE.
 * Everything with state (streams, listeners, the NSM client) lives in
 * TypeScript on top.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, parse } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Set to an absolute .node path to load the addon from somewhere else (e.g. inside an enclave image). */
export const NATIVE_ADDON_ENV = 'ENCLAVE_SIGNER_NATIVE_ADDON';
const ADDON_RELATIVE = join('native', 'build', 'Release', 'enclave_native.node');

/** An opaque libuv poll handle (an N-API external). */
export type PollHandle = { readonly __brand: 'PollHandle' };

export interface NativeAddon {
  readonly abiVersion: number;
  readonly constants: {
    readonly VMADDR_CID_ANY: number;
    readonly VMADDR_CID_LOCAL: number;
    readonly VMADDR_CID_HOST: number;
    readonly VMADDR_PORT_ANY: number;
    /** Bits for pollSet and the poll callback (libuv's UV_READABLE/UV_WRITABLE/UV_DISCONNECT). */
    readonly POLL_READABLE: number;
    readonly POLL_WRITABLE: number;
    readonly POLL_DISCONNECT: number;
    readonly NSM_REQUEST_MAX_SIZE: number;
    readonly NSM_RESPONSE_MAX_SIZE: number;
  };

  // ---- non-blocking fd I/O (any stream socket)
  /** Bytes read into `buffer` (> 0), 0 at end of stream, -1 when it would block. */
  read(fd: number, buffer: Uint8Array): number;
  /** Bytes the kernel took from `chunks` (at most the first 64), or -1 when it would block. Never raises SIGPIPE. */
  writev(fd: number, chunks: readonly Uint8Array[]): number;
  shutdownWrite(fd: number): void;
  close(fd: number): void;
  /** Pending SO_ERROR as an errno number (0 = none). */
  socketError(fd: number): number;
  /** A connected non-blocking AF_UNIX stream pair (tests of the fd stream without vsock). */
  socketPair(): [number, number];
  /** Watches `fd` on the event loop; `callback(status, events)` with status < 0 a negated errno. Idle until pollSet. */
  pollCreate(fd: number, callback: (status: number, events: number) => void): PollHandle;
  /** Which events to watch (0 = none). */
  pollSet(handle: PollHandle, events: number): void;
  /** Stops watching at once (the fd may be closed right after); idempotent. */
  pollClose(handle: PollHandle): void;

  // ---- AF_VSOCK (sockets are non-blocking and close-on-exec)
  /** socket + bind + listen → listening fd. */
  vsockListen(cid: number, port: number, backlog: number): number;
  /** socket + non-blocking connect. If !connected, wait for writability, then socketError(fd). */
  vsockConnect(cid: number, port: number): { fd: number; connected: boolean };
  /** accept4 → the new connection, or null when none is pending. */
  vsockAccept(fd: number): { fd: number; cid: number; port: number } | null;
  vsockLocalAddress(fd: number): { cid: number; port: number };
  vsockRemoteAddress(fd: number): { cid: number; port: number };

  // ---- Nitro Secure Module
  /** open(path, O_RDWR | O_CLOEXEC); default /dev/nsm. */
  nsmOpen(path?: string): number;
  /** The NSM_IOCTL_RAW ioctl on the libuv thread pool. Keep `fd` open until it settles. */
  nsmProcess(fd: number, request: Uint8Array): Promise<Uint8Array>;
  /** The same ioctl on the calling thread. */
  nsmProcessSync(fd: number, request: Uint8Array): Uint8Array;
}

/**
 * The addon is missing or unusable here. Shaped like common/errors.ts's
 * SignerError (code, hint, cause) but not derived from it: native/ is the
 * bottom layer and imports nothing of ours (docs/boundaries.md). Its callers
 * (the vsock transport, the hardware NSM) wrap it in their own SignerError.
 */
export class NativeAddonError extends Error {
  readonly code = 'NATIVE_ADDON_UNAVAILABLE';
  readonly hint: string | undefined;
  override readonly cause: unknown;

  constructor(message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(message);
    this.name = 'NativeAddonError';
    this.hint = opts.hint;
    this.cause = opts.cause;
  }
}

/** Where the addon would be loaded from: $ENCLAVE_SIGNER_NATIVE_ADDON, else the nearest native/build/Release above this module. */
export function nativeAddonPath(): string | undefined {
  const fromEnv = process.env[NATIVE_ADDON_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  // Works from the sources (native/addon.ts), from tsc output (dist/native/addon.js) and from bundles.
  let dir = dirname(fileURLToPath(import.meta.url));
  const root = parse(dir).root;
  for (;;) {
    const candidate = join(dir, ADDON_RELATIVE);
    if (existsSync(candidate)) return candidate;
    if (dir === root) return undefined;
    dir = dirname(dir);
  }
}

let cached: NativeAddon | undefined;
let failure: NativeAddonError | undefined;

/** Loads the addon once; throws NativeAddonError (NATIVE_ADDON_UNAVAILABLE) when it is missing or unusable here. */
export function loadNativeAddon(): NativeAddon {
  if (cached !== undefined) return cached;
  if (failure !== undefined) throw failure;
  const path = nativeAddonPath();
  if (path === undefined) {
    failure = new NativeAddonError('the native addon is not built (no native/build/Release/enclave_native.node)', {
      hint: `run \`npm ci\` or \`npm run build:native\`, or set ${NATIVE_ADDON_ENV} to the .node file`,
    });
    throw failure;
  }
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(path);
  } catch (e) {
    failure = new NativeAddonError(`cannot load the native addon ${path}: ${(e as Error)?.message ?? String(e)}`, {
      cause: e,
      hint: 'rebuild it on this machine with `npm run build:native`',
    });
    throw failure;
  }
  const m = mod as Partial<NativeAddon> & { unsupported?: string };
  if (typeof m.unsupported === 'string') {
    failure = new NativeAddonError(m.unsupported);
    throw failure;
  }
  if (m.abiVersion !== 1 || typeof m.vsockConnect !== 'function' || typeof m.nsmProcess !== 'function') {
    failure = new NativeAddonError(`${path} is not the addon this code expects (abiVersion ${String(m.abiVersion)}, want 1)`, {
      hint: 'rebuild it with `npm run build:native`',
    });
    throw failure;
  }
  cached = m as NativeAddon;
  return cached;
}
