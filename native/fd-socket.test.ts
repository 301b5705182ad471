/**
 * FdSocket over a real kernel socket pair (AF_UNIX): the stream code is
 * family-agnostic, so everything but vsock's connect/accept is proven here;
 * the QEMU test (test/vm/) runs the same streams over AF_VSOCK.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { loadNativeAddon } from './addon.js';
import { FdSocket } from './fd-socket.js';

const addon = loadNativeAddon();

const closed = new WeakMap<FdSocket, Promise<unknown>>();

function pair(opts: { allowHalfOpen?: boolean; readableHighWaterMark?: number } = {}): [FdSocket, FdSocket] {
  const [a, b] = addon.socketPair();
  const socks: [FdSocket, FdSocket] = [new FdSocket(addon, a, opts), new FdSocket(addon, b, opts)];
  // Listen for 'close' from the start: it can fire in the same tick as 'end' or 'error'
  // (and not with events.once, which rejects on 'error').
  for (const s of socks) closed.set(s, new Promise((resolve) => s.once('close', resolve)));
  return socks;
}

const closeOf = (s: FdSocket) => closed.get(s)!;

function collect(s: FdSocket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve, reject) => {
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('FdSocket', () => {
  it('carries bytes both ways and ends cleanly', async () => {
    const [a, b] = pair();
    const gotB = collect(b);
    const gotA = collect(a);
    a.write('hello ');
    a.end('world');
    expect((await gotB).toString()).toBe('hello world');
    // allowHalfOpen false (net.Socket's default): b ends its side when a's ends.
    expect((await gotA).length).toBe(0);
    await Promise.all([closeOf(a), closeOf(b)]);
    expect(a.fd).toBe(-1);
    expect(b.fd).toBe(-1);
    expect(a.bytesWritten).toBe(11);
    expect(b.bytesRead).toBe(11);
  });

  it('supports half-close when asked', async () => {
    const [a, b] = pair({ allowHalfOpen: true });
    const gotB = collect(b);
    a.end('question');
    expect((await gotB).toString()).toBe('question');
    const gotA = collect(a);
    b.end('answer after the peer finished writing');
    expect((await gotA).toString()).toBe('answer after the peer finished writing');
    await Promise.all([closeOf(a), closeOf(b)]);
  });

  it('moves 8 MiB intact with backpressure on both sides', async () => {
    const [a, b] = pair({ readableHighWaterMark: 64 * 1024 });
    const payload = randomBytes(8 * 1024 * 1024);
    const want = createHash('sha256').update(payload).digest('hex');

    b.pause();
    const h = createHash('sha256');
    let received = 0;
    b.on('data', (c: Buffer) => {
      h.update(c);
      received += c.length;
    });
    const ended = once(b, 'end');

    // Write until the stream says stop; with the reader paused it must stop well short of 8 MiB.
    let off = 0;
    const CHUNK = 256 * 1024;
    while (off < payload.length && a.write(payload.subarray(off, off + CHUNK))) off += CHUNK;
    off += CHUNK;
    for (let i = 0; i < 20; i++) await tick();
    expect(off).toBeLessThan(payload.length);
    // The kernel took only what fits in the socket buffers; the rest waits in the writable buffer.
    expect(a.bytesWritten).toBeLessThan(payload.length / 2);
    expect(a.writableLength).toBeGreaterThan(0);
    // The paused reader stopped reading near its high-water mark instead of draining the socket.
    expect(b.readableLength).toBeLessThanOrEqual(64 * 1024 + 64 * 1024);
    expect(received).toBe(0);

    b.resume();
    while (off < payload.length) {
      if (!a.write(payload.subarray(off, off + CHUNK))) await once(a, 'drain');
      off += CHUNK;
    }
    a.end();
    await ended;
    expect(received).toBe(payload.length);
    expect(h.digest('hex')).toBe(want);
  });

  it('flushes corked writes as one writev, in order', async () => {
    const [a, b] = pair();
    const got = collect(b);
    a.cork();
    const parts: string[] = [];
    for (let i = 0; i < 300; i++) {
      parts.push(`${i},`);
      a.write(`${i},`);
    }
    a.write(Buffer.alloc(0)); // empty writes complete too
    process.nextTick(() => a.uncork());
    a.end();
    expect((await got).toString()).toBe(parts.join(''));
  });

  it('a peer that goes away is an error event, never a crash', async () => {
    const [a, b] = pair();
    b.destroy();
    await closeOf(b);
    const err = once(a, 'error');
    // Keep writing: the kernel answers EPIPE (or ECONNRESET) once it knows the peer is gone.
    const big = Buffer.alloc(1 << 20);
    a.write(big);
    a.write(big);
    const [e] = (await err) as [NodeJS.ErrnoException];
    expect(['EPIPE', 'ECONNRESET']).toContain(e.code);
    await closeOf(a);
    expect(a.fd).toBe(-1);
  });

  it('the reader of a destroyed peer sees end of stream', async () => {
    const [a, b] = pair({ allowHalfOpen: true });
    const got = collect(b);
    a.write('last words');
    await tick();
    a.destroy();
    expect((await got).toString()).toBe('last words');
    b.destroy();
  });

  it('destroy() with pending writes closes the fd and stops polling', async () => {
    const [a, b] = pair();
    b.pause();
    const big = Buffer.alloc(4 << 20);
    a.write(big);
    await tick();
    expect(a.writableLength).toBeGreaterThan(0);
    a.destroy();
    await closeOf(a);
    expect(a.fd).toBe(-1);
    b.destroy();
    await closeOf(b);
  });
});
