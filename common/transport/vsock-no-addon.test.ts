/**
 * Where the native addon cannot be loaded, vsock is TRANSPORT_UNAVAILABLE and
 * the hardware NSM is NSM_UNAVAILABLE — typed errors, not a crash at import.
 * Its own file: the loader caches its first answer per process.
 */
import { describe, expect, it } from 'vitest';
import { NATIVE_ADDON_ENV, loadNativeAddon } from '../../native/addon.js';
import { openHardwareNsm } from '../../enclave/nsm/hardware.js';
import { vsockTransport } from './vsock.js';

process.env[NATIVE_ADDON_ENV] = '/nonexistent/enclave_native.node';

describe('without the native addon', () => {
  it('vsock connect and listen are TRANSPORT_UNAVAILABLE, naming the cause', async () => {
    // Valid addresses: with no addon there is nothing that could open a socket.
    const c = await vsockTransport.connect({ scheme: 'vsock', cid: 3, port: 8000 }, {}).catch((e: unknown) => e);
    expect(c).toMatchObject({ code: 'TRANSPORT_UNAVAILABLE' });
    expect((c as Error).message).toContain('/nonexistent/enclave_native.node');
    expect((c as { cause: { code: string } }).cause.code).toBe('NATIVE_ADDON_UNAVAILABLE');
    const l = await vsockTransport.listen({ scheme: 'vsock', cid: 0xffffffff, port: 5000 }, () => {}, {}).catch((e: unknown) => e);
    expect(l).toMatchObject({ code: 'TRANSPORT_UNAVAILABLE' });
  });

  it('the hardware NSM is NSM_UNAVAILABLE', () => {
    expect(() => openHardwareNsm()).toThrow(expect.objectContaining({ code: 'NSM_UNAVAILABLE' }));
  });

  it('the loader keeps failing the same way', () => {
    expect(() => loadNativeAddon()).toThrow(expect.objectContaining({ code: 'NATIVE_ADDON_UNAVAILABLE' }));
  });
});
