/**
 * The hardware NSM's error paths. No /dev/nsm exists off Nitro, so the
 * success path is verified on a real enclave (docs/native.md); here we prove
 * that a missing device is a clear NSM_UNAVAILABLE, and that a device that
 * does not speak the NSM ioctl becomes a typed NsmError, never a crash.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NSM_DEVICE_PATH, NsmUnavailableError, openHardwareNsm } from './hardware.js';
import { NsmError } from './nsm.js';

const dir = mkdtempSync(join(tmpdir(), 'es-nsm-hw-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function openFails(path?: string): NsmUnavailableError {
  try {
    openHardwareNsm(path === undefined ? {} : { devicePath: path });
  } catch (e) {
    expect(e).toBeInstanceOf(NsmUnavailableError);
    return e as NsmUnavailableError;
  }
  throw new Error('expected NSM_UNAVAILABLE');
}

describe('openHardwareNsm', () => {
  it.skipIf(existsSync(NSM_DEVICE_PATH))('says NSM_UNAVAILABLE, with a hint, when /dev/nsm is absent', () => {
    const e = openFails();
    expect(e.code).toBe('NSM_UNAVAILABLE');
    expect(e.message).toContain('/dev/nsm');
    expect(e.message).toContain('ENOENT');
    expect(e.hint).toMatch(/Nitro Enclave/);
    expect((e.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('says NSM_UNAVAILABLE for any missing device path', () => {
    const e = openFails(join(dir, 'nope'));
    expect(e.code).toBe('NSM_UNAVAILABLE');
    expect(e.toJSON()).toMatchObject({ code: 'NSM_UNAVAILABLE' });
  });

  it('turns an ioctl the device does not understand into NSM_INTERNAL_ERROR', async () => {
    const fake = join(dir, 'not-an-nsm');
    writeFileSync(fake, '');
    const nsm = openHardwareNsm({ devicePath: fake });
    expect(nsm.kind).toBe('hardware');
    const err = await nsm.describeNsm().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NsmError);
    expect((err as NsmError).code).toBe('NSM_INTERNAL_ERROR');
    expect((err as NsmError).message).toContain('ENOTTY');
    expect(((err as NsmError).cause as NodeJS.ErrnoException).code).toBe('ENOTTY');
    // Argument checks happen before the device is asked.
    await expect(nsm.getRandom(0)).rejects.toMatchObject({ code: 'NSM_INVALID_ARGUMENT' });
    // Requests larger than the driver's buffer never reach the ioctl.
    await expect(nsm.extendPcr(16, new Uint8Array(0x1001))).rejects.toMatchObject({ code: 'NSM_INPUT_TOO_LARGE' });
    nsm.close();
    nsm.close();
    await expect(nsm.attest({})).rejects.toMatchObject({ code: 'NSM_INVALID_OPERATION' });
  });

  it('close() while requests are in flight lets them finish first', async () => {
    const fake = join(dir, 'busy');
    writeFileSync(fake, '');
    const nsm = openHardwareNsm({ devicePath: fake });
    const pending = [nsm.describePcr(0), nsm.describePcr(1), nsm.getRandom(32)].map((p) => p.catch((e: unknown) => e));
    nsm.close();
    for (const r of await Promise.all(pending)) {
      // Each reached the (fake) device and got its real answer, not EBADF from a closed fd.
      expect((r as NsmError).code).toBe('NSM_INTERNAL_ERROR');
      expect((r as NsmError).message).toContain('ENOTTY');
    }
  });
});
