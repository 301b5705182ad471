/**
 * The vsock transport on the development machine: only paths that never open
 * an AF_VSOCK socket (the machine's CIDs lead outside our sandbox). Real vsock
 * connect/listen/accept and data transfer are proven in a QEMU guest by
 * test/vm/vsock.system.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TransportError } from './errors.js';
import { connect, listen, registerTransport } from './registry.js';
import type { Transport } from './types.js';
import type { VsockAddress } from './uri.js';
import { registerVsockTransport, unavailableVsockTransport, vsockTransport } from './vsock.js';

async function rejectsWith(p: Promise<unknown>, code: string): Promise<TransportError> {
  const e = await p.then(
    () => {
      throw new Error(`expected ${code}, resolved`);
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(TransportError);
  expect((e as TransportError).code).toBe(code);
  return e as TransportError;
}

const restore: (() => void)[] = [];
afterEach(() => {
  while (restore.length > 0) restore.pop()!();
});

describe('vsock transport (no sockets opened)', () => {
  it('is not installed by default: vsock URIs are TRANSPORT_UNAVAILABLE without touching a socket', async () => {
    const e = await rejectsWith(connect('vsock://3:8000'), 'TRANSPORT_UNAVAILABLE');
    expect(e.message).toContain('vsock://3:8000');
    expect(e.hint).toContain('registerVsockTransport');
    await rejectsWith(listen('vsock://4294967295:5000', () => {}), 'TRANSPORT_UNAVAILABLE');
  });

  it('registerVsockTransport installs the real transport and hands back an undo', async () => {
    // Swap in a recorder in place of the default, then let registerVsockTransport replace it.
    const seen: string[] = [];
    const recorder: Transport<VsockAddress> = {
      connect: async (a) => {
        seen.push(`connect ${a.cid}:${a.port}`);
        throw new TransportError('TRANSPORT_CONNECT_FAILED', 'recorder');
      },
      listen: async () => {
        throw new TransportError('TRANSPORT_LISTEN_FAILED', 'recorder');
      },
    };
    restore.push(registerTransport('vsock', recorder));
    const undo = await registerVsockTransport();
    // Through the registry now: a connect to the "any" CID is refused before any socket exists.
    await rejectsWith(connect('vsock://4294967295:5000'), 'TRANSPORT_BAD_URI');
    expect(seen).toEqual([]);
    undo();
    await rejectsWith(connect('vsock://3:5000'), 'TRANSPORT_CONNECT_FAILED');
    expect(seen).toEqual(['connect 3:5000']);
  });

  it('validates before it opens anything', async () => {
    const a = (cid: number, port: number): VsockAddress => ({ scheme: 'vsock', cid, port });
    await rejectsWith(vsockTransport.connect(a(0xffffffff, 5000), {}), 'TRANSPORT_BAD_URI');
    await rejectsWith(vsockTransport.connect(a(3, 0xffffffff), {}), 'TRANSPORT_BAD_URI');
    await rejectsWith(vsockTransport.connect(a(3, 5000), { timeoutMs: 0 }), 'TRANSPORT_BAD_URI');
    await rejectsWith(vsockTransport.connect(a(3, 5000), { timeoutMs: 1.5 }), 'TRANSPORT_BAD_URI');
    await rejectsWith(vsockTransport.connect(a(3, 5000), { signal: AbortSignal.abort() }), 'TRANSPORT_CONNECT_FAILED');
    await rejectsWith(vsockTransport.listen(a(0xffffffff, 5000), () => {}, { backlog: 0 }), 'TRANSPORT_LISTEN_FAILED');
    await rejectsWith(vsockTransport.listen(a(0xffffffff, 5000), () => {}, { backlog: 70000 }), 'TRANSPORT_LISTEN_FAILED');
  });

  it('the default placeholder never opens sockets', async () => {
    await rejectsWith(unavailableVsockTransport.connect({ scheme: 'vsock', cid: 3, port: 1 }, {}), 'TRANSPORT_UNAVAILABLE');
    await rejectsWith(unavailableVsockTransport.listen({ scheme: 'vsock', cid: 3, port: 1 }, () => {}, {}), 'TRANSPORT_UNAVAILABLE');
  });
});
