import { describe, expect, it } from 'vitest';
import { decodeCbor, encodeCbor, CborTag, type CborKey, type CborValue } from '../cbor.js';
import { BridgeError } from './errors.js';
import { encodeMessage, parseMessage, MAX_DEADLINE_MS, type BridgeMessage } from './messages.js';

const roundTrip = (m: BridgeMessage) => parseMessage(decodeCbor(encodeCbor(encodeMessage(m))));

function map(entries: [CborKey, CborValue][]): Map<CborKey, CborValue> {
  return new Map(entries);
}

function protocolError(v: CborValue): BridgeError {
  try {
    parseMessage(v);
  } catch (e) {
    expect(e).toBeInstanceOf(BridgeError);
    expect((e as BridgeError).code).toBe('BRIDGE_PROTOCOL');
    return e as BridgeError;
  }
  throw new Error(`accepted: ${JSON.stringify([...(v as Map<CborKey, CborValue>).entries()], (_, x) => (typeof x === 'bigint' ? String(x) : x))}`);
}

describe('messages round-trip through CBOR', () => {
  const msgs: BridgeMessage[] = [
    { t: 'hello', v: 1, role: 'parent' },
    { t: 'hello', v: 7, role: 'enclave', features: ['keys.v2', 'x'] },
    { t: 'req', id: 0, method: 'eth_signTransaction', params: map([['to', new Uint8Array(20)]]) },
    { t: 'req', id: 2 ** 53 - 1, method: 'keys/generate', params: null, deadline: 5000 },
    { t: 'req', id: 3, method: 'ping', params: undefined },
    { t: 'res', id: 3, result: [1, 'two', new Uint8Array([3])] },
    { t: 'res', id: 4, result: new CborTag(42, 'tagged') },
    { t: 'err', id: 5, error: { code: 'KEY_NOT_FOUND', message: 'no key k1' } },
    { t: 'err', id: 6, error: { code: 'INTERNAL', message: '', data: map([['hint', 'retry']]) } },
    { t: 'cancel', id: 9 },
    { t: 'bye' },
    { t: 'bye', error: { code: 'BRIDGE_VERSION', message: 'peer speaks v9' } },
  ];
  for (const m of msgs) {
    it(`${m.t} ${JSON.stringify(m, (_, x) => (x instanceof Map || x instanceof Uint8Array ? '…' : x))}`, () => {
      expect(roundTrip(m)).toEqual(m);
    });
  }

  it('puts keys in a fixed order so frames are byte-stable', () => {
    expect([...encodeMessage({ t: 'req', id: 1, method: 'm', params: 1, deadline: 2 }).keys()]).toEqual(['t', 'id', 'method', 'params', 'deadline']);
  });
});

describe('parseMessage rejects malformed messages with BRIDGE_PROTOCOL', () => {
  const req = (over: [CborKey, CborValue][] = [], drop: string[] = []) => {
    const m = map([
      ['t', 'req'],
      ['id', 1],
      ['method', 'ping'],
      ['params', null],
    ]);
    for (const k of drop) m.delete(k);
    for (const [k, v] of over) m.set(k, v);
    return m;
  };

  it('non-map messages', () => {
    for (const v of [null, 1, 'req', [], new Uint8Array(2), new CborTag(1, map([['t', 'cancel']]))] as CborValue[]) {
      expect(() => parseMessage(v)).toThrow(BridgeError);
    }
  });

  it('missing, non-text and unknown "t"', () => {
    protocolError(map([['id', 1]]));
    protocolError(map([['t', 1]]));
    expect(protocolError(map([['t', 'request']])).message).toContain('unknown message type');
    protocolError(map([['t', 'HELLO']]));
  });

  it('missing fields', () => {
    for (const k of ['id', 'method', 'params']) expect(protocolError(req([], [k])).message).toContain(`missing field "${k}"`);
    protocolError(map([['t', 'res'], ['id', 1]]));
    protocolError(map([['t', 'err'], ['id', 1]]));
    protocolError(map([['t', 'cancel']]));
    protocolError(map([['t', 'hello'], ['v', 1]]));
    protocolError(map([['t', 'hello'], ['role', 'parent']]));
  });

  it('unknown and non-text keys', () => {
    expect(protocolError(req([['extra', 1]])).message).toContain('unexpected field "extra"');
    protocolError(req([[7, 1]]));
    protocolError(map([['t', 'cancel'], ['id', 1], ['deadline', 5]]));
    protocolError(map([['t', 'bye'], ['reason', 'x']]));
  });

  it('bad ids', () => {
    for (const id of [-1, 1.5, 2 ** 53, 2n ** 64n - 1n, '1', null, true, new Uint8Array(1), Number.NaN, Infinity] as CborValue[]) {
      protocolError(req([['id', id]]));
      protocolError(map([['t', 'cancel'], ['id', id]]));
      protocolError(map([['t', 'res'], ['id', id], ['result', 1]]));
    }
  });

  it('bad method names', () => {
    for (const method of ['', ' ping', 'ping\n', 'a b', '9lives', 'x'.repeat(129), 1, null, new Uint8Array([0x70])] as CborValue[]) {
      protocolError(req([['method', method]]));
    }
  });

  it('bad deadlines', () => {
    for (const d of [0, -5, 1.5, MAX_DEADLINE_MS + 1, '100', null, 10n ** 20n] as CborValue[]) protocolError(req([['deadline', d]]));
    expect(parseMessage(req([['deadline', MAX_DEADLINE_MS]]))).toMatchObject({ deadline: MAX_DEADLINE_MS });
  });

  it('bad error bodies', () => {
    const err = (error: CborValue) => map([['t', 'err'], ['id', 1], ['error', error]]);
    protocolError(err('boom'));
    protocolError(err(map([['code', 'X']])));
    protocolError(err(map([['message', 'x']])));
    protocolError(err(map([['code', ''], ['message', 'x']])));
    protocolError(err(map([['code', 'has space'], ['message', 'x']])));
    protocolError(err(map([['code', 5], ['message', 'x']])));
    protocolError(err(map([['code', 'X'], ['message', 'x'.repeat(4097)]])));
    protocolError(err(map([['code', 'X'], ['message', 'x'], ['stack', 'at …']])));
    // bye errors carry no data
    protocolError(map([['t', 'bye'], ['error', map([['code', 'X'], ['message', 'x'], ['data', 1]])]]));
  });

  it('bad hellos', () => {
    const hello = (over: [CborKey, CborValue][]) => {
      const m = map([['t', 'hello'], ['v', 1], ['role', 'parent']]);
      for (const [k, v] of over) m.set(k, v);
      return m;
    };
    protocolError(hello([['v', -1]]));
    protocolError(hello([['v', '1']]));
    protocolError(hello([['v', 1.5]]));
    protocolError(hello([['role', 'host']]));
    protocolError(hello([['role', null]]));
    protocolError(hello([['features', 'a']]));
    protocolError(hello([['features', [1]]]));
    protocolError(hello([['features', ['UPPER']]]));
    protocolError(hello([['features', Array.from({ length: 65 }, (_, i) => `f${i}`)]]));
  });
});
