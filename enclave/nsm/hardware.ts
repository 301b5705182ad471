/**
 * The hardware NSM: /dev/nsm inside a Nitro Enclave, through the native
 * addon's ioctl (native/src/nsm.c). Everything above the ioctl — CBOR
 * messages, size limits, error mapping, response checks — is the same client
 * the simulated NSM uses (client.ts), so the only hardware-specific code is
 * opening the device and moving bytes.
 *
 * The ioctl runs on libuv's thread pool; close() waits for requests still in
 * flight before it closes the descriptor, so a late ioctl can never land on a
 * recycled fd number.
 *
 * Verified here only on its error paths (no /dev/nsm on a development
 * machine); the real device is exercised on a Nitro host (docs/native.md).
 */
import { SignerError } from '../../common/errors.js';
import { loadNativeAddon, type NativeAddon } from '../../native/addon.js';
import { createNsmClient, type NsmTransport } from './client.js';
import { NsmError, type Nsm } from './nsm.js';

export const NSM_DEVICE_PATH = '/dev/nsm';

/** There is no usable NSM in this process: not in an enclave, driver missing, no permission, or no addon. */
export class NsmUnavailableError extends SignerError {
  constructor(message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super('NSM_UNAVAILABLE', message, opts);
  }
}

export interface HardwareNsmOptions {
  /** Device node; default /dev/nsm. */
  devicePath?: string;
}

function errnoCode(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}

function openHint(code: string): string {
  switch (code) {
    case 'ENOENT':
      return 'the NSM device only exists inside a Nitro Enclave (nsm.ko loaded); use the simulated NSM in development';
    case 'EACCES':
    case 'EPERM':
      return 'the process may not open the NSM device: run the enclave application as root';
    default:
      return 'is this a Nitro Enclave with the nsm driver loaded?';
  }
}

/**
 * Opens the NSM device. Throws NsmUnavailableError (NSM_UNAVAILABLE) when the
 * device or the native addon is missing; request failures later surface as
 * NsmError from the client (an ioctl errno becomes NSM_INTERNAL_ERROR, except
 * EMSGSIZE, which is NSM_INPUT_TOO_LARGE as in nsm-api's driver).
 */
export function openHardwareNsm(opts: HardwareNsmOptions = {}): Nsm {
  const path = opts.devicePath ?? NSM_DEVICE_PATH;
  let addon: NativeAddon;
  try {
    addon = loadNativeAddon();
  } catch (e) {
    throw new NsmUnavailableError(`cannot use the NSM at ${path}: ${(e as Error).message}`, {
      cause: e,
      hint: (e as { hint?: string }).hint ?? 'build the native addon with `npm run build:native`',
    });
  }
  let fd: number;
  try {
    fd = addon.nsmOpen(path);
  } catch (e) {
    const code = errnoCode(e);
    throw new NsmUnavailableError(`cannot open the NSM device ${path}: ${code}`, { cause: e, hint: openHint(code) });
  }

  let inFlight = 0;
  let closing = false;
  let fdOpen = true;
  const release = () => {
    if (!fdOpen) return;
    fdOpen = false;
    try {
      addon.close(fd);
    } catch {
      /* nothing left to release */
    }
  };

  const transport: NsmTransport = {
    async process(request: Uint8Array): Promise<Uint8Array> {
      // The client refuses calls after close(); this guards the fd against a caller racing close().
      if (!fdOpen || closing) throw new NsmError('NSM_INVALID_OPERATION', 'the NSM handle is closed');
      inFlight++;
      try {
        return await addon.nsmProcess(fd, request);
      } catch (e) {
        const code = errnoCode(e);
        if (code === 'EMSGSIZE') throw new NsmError('NSM_INPUT_TOO_LARGE', `the NSM driver refused a ${request.length}-byte request as too large`, { cause: e });
        throw new NsmError('NSM_INTERNAL_ERROR', `NSM ioctl on ${path} failed: ${code}`, { cause: e });
      } finally {
        inFlight--;
        if (closing && inFlight === 0) release();
      }
    },
    close(): void {
      closing = true;
      if (inFlight === 0) release();
    },
  };
  return createNsmClient(transport, 'hardware');
}
