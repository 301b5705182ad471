/**
 * The addon's error contract, on this machine. Deliberately no vsock* call:
 * the development machine must never open an AF_VSOCK socket (real vsock is
 * tested in a QEMU guest, test/vm/). Argument parsing is shared by every
 * function (common.c), so it is exercised here through the fd and NSM ones.
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNativeAddon } from './addon.js';

const addon = loadNativeAddon();
const dir = mkdtempSync(join(tmpdir(), 'es-native-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function thrown(f: () => unknown): NodeJS.ErrnoException {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(Error);
    return e as NodeJS.ErrnoException;
  }
  throw new Error('expected a throw');
}

describe('native addon', () => {
  it('loads once and exposes the kernel constants', () => {
    expect(loadNativeAddon()).toBe(addon);
    expect(addon.abiVersion).toBe(1);
    expect(addon.constants).toMatchObject({
      VMADDR_CID_ANY: 0xffffffff,
      VMADDR_CID_LOCAL: 1,
      VMADDR_CID_HOST: 2,
      VMADDR_PORT_ANY: 0xffffffff,
      POLL_READABLE: 1,
      POLL_WRITABLE: 2,
      NSM_REQUEST_MAX_SIZE: 0x1000,
      NSM_RESPONSE_MAX_SIZE: 0x3000,
    });
  });

  it('rejects bad arguments with typed codes, never a crash', () => {
    expect(thrown(() => addon.close('3' as unknown as number)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(thrown(() => addon.close(-1)).code).toBe('ERR_OUT_OF_RANGE');
    expect(thrown(() => addon.close(1.5)).code).toBe('ERR_OUT_OF_RANGE');
    expect(thrown(() => addon.close(Number.NaN)).code).toBe('ERR_OUT_OF_RANGE');
    expect(thrown(() => addon.close(2 ** 31)).code).toBe('ERR_OUT_OF_RANGE');
    expect(thrown(() => (addon.close as () => void)()).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(thrown(() => addon.read(0, [1, 2] as unknown as Uint8Array)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(thrown(() => addon.read(0, new Uint16Array(4) as unknown as Uint8Array)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(thrown(() => addon.read(0, new Uint8Array(0))).code).toBe('ERR_OUT_OF_RANGE');
    expect(thrown(() => addon.writev(0, new Uint8Array(1) as unknown as Uint8Array[])).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(thrown(() => addon.writev(0, [])).code).toBe('ERR_OUT_OF_RANGE');
    expect(thrown(() => addon.writev(0, ['x' as unknown as Uint8Array])).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(thrown(() => addon.pollCreate(0, 'cb' as unknown as () => void)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(thrown(() => addon.pollSet({} as never, 1)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(thrown(() => addon.pollClose(null as never)).code).toBe('ERR_INVALID_ARG_TYPE');
  });

  it('reports syscall failures as errno-coded errors like node does', () => {
    // Far above any open descriptor (and RLIMIT_NOFILE), so surely not someone else's.
    const a = 1_000_000;
    const e = thrown(() => addon.close(a));
    expect(e.code).toBe('EBADF');
    expect(e.errno).toBe(-9);
    expect(e.syscall).toBe('close');
    expect(e.message).toMatch(/^close EBADF/);
    expect(thrown(() => addon.read(a, new Uint8Array(4))).code).toBe('EBADF');
    expect(thrown(() => addon.writev(a, [new Uint8Array(4)])).code).toBe('EBADF');
    expect(thrown(() => addon.shutdownWrite(a)).code).toBe('EBADF');
    expect(thrown(() => addon.socketError(a)).code).toBe('EBADF');
  });

  it('does non-blocking reads and writes on a socket pair', () => {
    const [a, b] = addon.socketPair();
    try {
      const buf = new Uint8Array(16);
      expect(addon.read(a, buf)).toBe(-1); // nothing yet: would block, not hang
      expect(addon.writev(b, [Buffer.from('he'), Buffer.from('llo')])).toBe(5);
      expect(addon.read(a, buf)).toBe(5);
      expect(Buffer.from(buf.subarray(0, 5)).toString()).toBe('hello');
      expect(addon.socketError(a)).toBe(0);
      addon.shutdownWrite(b);
      expect(addon.read(a, buf)).toBe(0); // end of stream
      // A full socket buffer says "would block" instead of blocking the event loop.
      const big = new Uint8Array(1 << 20);
      let total = 0;
      for (;;) {
        const n = addon.writev(a, [big]);
        if (n < 0) break;
        total += n;
      }
      expect(total).toBeGreaterThan(0);
    } finally {
      addon.close(a);
      addon.close(b);
    }
  });

  it('writing to a closed peer is EPIPE, not SIGPIPE', () => {
    const [a, b] = addon.socketPair();
    addon.close(b);
    try {
      expect(thrown(() => addon.writev(a, [new Uint8Array(10)])).code).toBe('EPIPE');
    } finally {
      addon.close(a);
    }
  });

  it('cannot poll a regular file (epoll refuses it) and says so', () => {
    const path = join(dir, 'regular');
    writeFileSync(path, 'x');
    const fd = openSync(path, 'r');
    try {
      expect(thrown(() => addon.pollCreate(fd, () => {})).code).toBe('EPERM');
    } finally {
      closeSync(fd);
    }
  });

  describe('NSM ioctl', () => {
    it('nsmOpen of a missing device is ENOENT', () => {
      const e = thrown(() => addon.nsmOpen(join(dir, 'no-such-nsm')));
      expect(e.code).toBe('ENOENT');
      expect(e.syscall).toBe('open');
      expect(thrown(() => addon.nsmOpen(42 as unknown as string)).code).toBe('ERR_INVALID_ARG_TYPE');
      expect(thrown(() => addon.nsmOpen('')).code).toBe('ERR_OUT_OF_RANGE');
      expect(thrown(() => addon.nsmOpen('a\0b')).code).toBe('ERR_OUT_OF_RANGE');
    });

    it('the ioctl on something that is not the NSM fails with ENOTTY, sync and async', async () => {
      const path = join(dir, 'not-nsm');
      writeFileSync(path, '');
      const fd = addon.nsmOpen(path);
      try {
        const req = new Uint8Array([0x6b, ...Buffer.from('DescribeNSM')]);
        const e = thrown(() => addon.nsmProcessSync(fd, req));
        expect(e.code).toBe('ENOTTY');
        expect(e.syscall).toBe('ioctl');
        await expect(addon.nsmProcess(fd, req)).rejects.toMatchObject({ code: 'ENOTTY', syscall: 'ioctl' });
      } finally {
        addon.close(fd);
      }
    });

    it('enforces the driver request limits before any ioctl', () => {
      expect(thrown(() => addon.nsmProcessSync(0, new Uint8Array(0x1001))).code).toBe('EMSGSIZE');
      expect(thrown(() => addon.nsmProcess(0, new Uint8Array(0x1001))).code).toBe('EMSGSIZE');
      expect(thrown(() => addon.nsmProcessSync(0, new Uint8Array(0))).code).toBe('ERR_OUT_OF_RANGE');
      expect(thrown(() => addon.nsmProcess(0, 'x' as unknown as Uint8Array)).code).toBe('ERR_INVALID_ARG_TYPE');
    });

    it('an ioctl on a descriptor that is not open rejects with EBADF', async () => {
      await expect(addon.nsmProcess(1_000_000, new Uint8Array([1]))).rejects.toMatchObject({ code: 'EBADF' });
    });
  });
});
