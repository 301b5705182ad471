/**
 * common/bridge/: the frame reader (u32 length ‖ one CBOR item) the parent
 * and the enclave read each other with, salvageHeader, the strict decoder,
 * and parseMessage, the guard every decoded frame passes.
 */
import { encodeCbor, type CborValue } from '../../common/cbor.js';
import { BridgeError } from '../../common/bridge/errors.js';
import { createFrameDecoder, createFrameReader, encodeFrame, salvageHeader, type FrameEvent } from '../../common/bridge/frame.js';
import { encodeMessage, parseMessage, type BridgeMessage } from '../../common/bridge/messages.js';
import { deepEqual, invariant, typed, utf8 } from '../check.js';
import type { FuzzTarget } from '../engine.js';
import { CBOR, frameHeader, type Mutator } from '../mutate.js';

const SMALL_CAP = 256;

const MESSAGES: BridgeMessage[] = [
  { t: 'hello', v: 1, role: 'parent', features: ['receipts', 'audit'] },
  { t: 'hello', v: 1, role: 'enclave' },
  { t: 'req', id: 1, method: 'signDigest', params: new Map<string, CborValue>([['keyId', 'k-1'], ['digest', new Uint8Array(32).fill(7)]]), deadline: 30000 },
  { t: 'req', id: 2, method: 'kms.decrypt', params: [1, 'two', null, true, new Uint8Array(3), -5, 1.5] },
  { t: 'res', id: 1, result: new Map<string, CborValue>([['signature', new Uint8Array(65)], ['recoveryId', 1]]) },
  { t: 'err', id: 2, error: { code: 'SIGN_INVALID_PARAMS', message: 'digest must be 32 bytes', data: new Map([['field', 'digest']]) } },
  { t: 'cancel', id: 9 },
  { t: 'bye', error: { code: 'SHUTDOWN', message: 'bye' } },
  { t: 'bye' },
];

function frames(ms: BridgeMessage[]): Uint8Array {
  const parts = ms.map((m) => encodeFrame(encodeMessage(m)));
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Mutates the CBOR body of the first frame (the CBOR mutators need the item at offset 0). */
const bodyMutator =
  (m: Mutator): Mutator =>
  (x, rng, ctx) => {
    if (x.length < 5) return m(x, rng, ctx);
    const len = new DataView(x.buffer, x.byteOffset, 4).getUint32(0);
    const end = Math.min(x.length, 4 + len);
    const body = m(x.subarray(4, end), rng, ctx);
    const out = new Uint8Array(4 + body.length + (x.length - end));
    new DataView(out.buffer).setUint32(0, rng.oneIn(8) ? len : body.length);
    out.set(body, 4);
    out.set(x.subarray(end), 4 + body.length);
    return out;
  };

type Summary = { ok: true; value: CborValue } | { ok: false; code: string; t?: string; id?: number };
const summarise = (evs: FrameEvent[]): Summary[] => evs.map((e) => (e.ok ? { ok: true, value: e.value } : { ok: false, code: e.bad.error.code, t: e.bad.t, id: e.bad.id }));

/** Feeds `x` to a reader in the given chunk sizes; returns the events and whether the reader stopped. */
function read(x: Uint8Array, cap: number | undefined, sizes: (i: number) => number): { events: Summary[]; stopped: boolean } {
  const r = createFrameReader(cap === undefined ? {} : { maxFrameBytes: cap });
  const events: Summary[] = [];
  let o = 0;
  let i = 0;
  while (o < x.length) {
    const n = Math.max(1, sizes(i++));
    let evs: FrameEvent[] | undefined;
    try {
      evs = r.push(x.subarray(o, o + n));
    } catch (e) {
      if (!(e instanceof BridgeError)) throw e;
      invariant(r.bufferedBytes === 0, 'a stopped reader still holds bytes');
      return { events, stopped: true };
    }
    events.push(...summarise(evs));
    invariant(r.bufferedBytes <= 4 + (cap ?? 1024 * 1024), `reader holds ${r.bufferedBytes} bytes, above 4 + cap`);
    o += n;
  }
  return { events, stopped: false };
}

export const bridgeTarget: FuzzTarget = {
  name: 'bridge',
  description:
    'createFrameReader fed the byte stream whole, byte by byte (streams up to 64 bytes) and in 1..61-byte chunks, and whole with a 256-byte cap (oversized-frame skipping); createFrameDecoder; salvageHeader; ' +
    'parseMessage on every decoded frame. Only BridgeError escapes; the three chunkings yield the same frames (chunking never changes meaning); ' +
    'bufferedBytes stays ≤ 4 + cap; a message parseMessage accepts re-encodes to a frame that decodes and parses to the same message.',
  cover: ['/common/bridge/', '/common/cbor.'],
  maxLen: 1024,
  seeds() {
    const single = MESSAGES.map((m) => frames([m]));
    return [...single, frames(MESSAGES), frames([MESSAGES[0]!, MESSAGES[2]!, MESSAGES[6]!]), Uint8Array.of(0, 0, 0, 0), Uint8Array.of(0, 0, 1, 0, 0xa1, 0x61, 0x74, 0x63, 0x72, 0x65, 0x71)];
  },
  dict: [utf8('hello'), utf8('req'), utf8('res'), utf8('err'), utf8('cancel'), utf8('bye'), utf8('deadline'), utf8('params'), encodeCbor('t'), encodeCbor('id'), Uint8Array.of(0, 0x10, 0, 1)],
  mutators: [frameHeader, frameHeader, ...CBOR.map(bodyMutator)],
  run(x) {
    // The small cap exercises oversized-frame skipping; chunking equivalence is checked at the default cap.
    read(x, SMALL_CAP, () => x.length);
    const whole = read(x, undefined, () => x.length);
    const bytewise = x.length <= 64 ? [read(x, undefined, () => 1)] : [];
    const mixed = read(x, undefined, (i) => 1 + ((i * 37 + (x[i % Math.max(1, x.length)] ?? 0)) % 61));
    for (const other of [...bytewise, mixed]) {
      // A push that stops the reader loses that push's earlier events, so only a prefix must agree.
      const n = whole.stopped ? Math.min(whole.events.length, other.events.length) : whole.events.length;
      invariant(other.stopped === whole.stopped && (whole.stopped || other.events.length === n), 'chunking changed the outcome');
      for (let i = 0; i < n; i++) invariant(deepEqual(whole.events[i], other.events[i]), `chunking changed frame ${i}`);
    }
    for (const ev of whole.events) {
      if (!ev.ok) continue;
      const msg = typed(() => parseMessage(ev.value), BridgeError);
      if (!msg) continue;
      const again = typed(() => createFrameDecoder().push(encodeFrame(encodeMessage(msg))), BridgeError);
      invariant(again !== undefined && again.length === 1, `accepted ${msg.t} message does not re-encode to one frame`);
      invariant(deepEqual(parseMessage(again[0]!), msg), `accepted ${msg.t} message changes when re-encoded`);
    }
    typed(() => createFrameDecoder().push(x), BridgeError);
    if (x.length > 4) salvageHeader(x.subarray(4));
  },
};
