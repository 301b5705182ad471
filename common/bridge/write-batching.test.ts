/**
 * How the bridge writes: every frame written in one turn of the event loop
 * leaves in one write of the stream (peer.ts, writeFrame). At 64 clients the
 * enclave's answers complete in separate callbacks of the same turn (one per
 * worker message, one per timer); flushing at the end of each callback cost a
 * syscall per answer, and woke the parent once per answer.
 *
 * Two peers over an in-memory stream pair that counts the writes each side makes.
 */
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { CborValue } from '../cbor.js';
import { createBridgePeer, type BridgePeer } from './peer.js';

interface Side {
  stream: Duplex;
  /** Calls of the stream's write or writev: what a socket turns into one syscall each. */
  writes: number;
}

/** Two connected streams; what one side writes, the other reads, chunk by chunk. */
function streamPair(): [Side, Side] {
  const sides: Side[] = [];
  const make = (other: () => Side): Side => {
    const side: Side = {
      writes: 0,
      stream: new Duplex({
        read() {},
        write(chunk: Buffer, _enc, cb) {
          side.writes++;
          other().stream.push(chunk);
          cb();
        },
        writev(chunks, cb) {
          side.writes++;
          for (const { chunk } of chunks) other().stream.push(chunk as Buffer);
          cb();
        },
        final(cb) {
          other().stream.push(null);
          cb();
        },
      }),
    };
    return side;
  };
  sides.push(make(() => sides[1]!), make(() => sides[0]!));
  return [sides[0]!, sides[1]!];
}

const peers: BridgePeer[] = [];
afterEach(() => {
  for (const p of peers.splice(0)) p.close();
});

describe('bridge writes', () => {
  it('answers completed in separate callbacks of one event-loop turn leave in one write', async () => {
    const [enclaveSide, parentSide] = streamPair();
    // Each answer completes in its own callback, and the eight callbacks run in the same turn: they
    // are queued together with setImmediate, in one synchronous loop, once all eight requests are
    // being handled (however the requests were split across reads), and node runs every immediate
    // queued before its check phase in that phase. (Timers were used here first: eight
    // setTimeout(…, 1) in one loop do not share one expiry — node reads the clock again for each —
    // so on a loaded box the first could fire a turn before the rest: 2 of 300 runs.)
    const waiting: (() => void)[] = [];
    const handler = (_method: string, params: CborValue) =>
      new Promise<CborValue>((r) => {
        waiting.push(() => r(params));
        if (waiting.length === 8) for (const done of waiting.splice(0)) setImmediate(done);
      });
    const enclave = createBridgePeer(enclaveSide.stream, { role: 'enclave', handler });
    const parent = createBridgePeer(parentSide.stream, { role: 'parent' });
    peers.push(enclave, parent);
    await Promise.all([enclave.ready, parent.ready]);

    const before = enclaveSide.writes;
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => parent.request('echo', i)));
    expect(answers).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // One write for the eight answers (it was eight while the flush ran after every callback).
    expect(enclaveSide.writes - before).toBe(1);
  });

  it('a lone answer is written in the turn it completes (no wait for more)', async () => {
    const [enclaveSide, parentSide] = streamPair();
    const enclave = createBridgePeer(enclaveSide.stream, { role: 'enclave', handler: async (_m, p) => p });
    const parent = createBridgePeer(parentSide.stream, { role: 'parent' });
    peers.push(enclave, parent);
    await Promise.all([enclave.ready, parent.ready]);
    for (let i = 0; i < 3; i++) {
      const before = enclaveSide.writes;
      expect(await parent.request('echo', i)).toBe(i);
      expect(enclaveSide.writes - before).toBe(1);
    }
  });
});
