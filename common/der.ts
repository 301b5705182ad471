/**
 * Minimal ASN.1 DER/BER reader and DER writer: enough for X.509 certificates
 * (attestation chains, the dev CA) and CMS EnvelopedData (KMS
 * CiphertextForRecipient, which is BER with indefinite lengths).
 *
 * The reader works on byte offsets and never copies; `strict` (DER) rejects
 * indefinite lengths and non-minimal length encodings, BER mode accepts them.
 */
import { SignerError } from './errors.js';

export class Asn1Error extends SignerError {
  constructor(message: string, readonly offset: number) {
    super('ASN1_MALFORMED', `${message} (at byte ${offset})`);
  }
}

export const TagClass = { Universal: 0, Application: 1, Context: 2, Private: 3 } as const;
export type TagClass = (typeof TagClass)[keyof typeof TagClass];

export interface Asn1Node {
  readonly cls: TagClass;
  readonly constructed: boolean;
  readonly tag: number;
  /** Offset of the first identifier byte. */
  readonly start: number;
  /** Offset of the first content byte. */
  readonly contentStart: number;
  /** Offset just past the content (before an end-of-contents marker for indefinite). */
  readonly contentEnd: number;
  /** Offset just past the whole element (including end-of-contents). */
  readonly end: number;
  readonly indefinite: boolean;
  /** Parsed in BER mode: children are read leniently too. */
  readonly ber: boolean;
  readonly buf: Uint8Array;
}

export const UNIVERSAL = {
  BOOLEAN: 1,
  INTEGER: 2,
  BIT_STRING: 3,
  OCTET_STRING: 4,
  NULL: 5,
  OID: 6,
  UTF8String: 12,
  SEQUENCE: 16,
  SET: 17,
  PrintableString: 19,
  IA5String: 22,
  UTCTime: 23,
  GeneralizedTime: 24,
} as const;

const MAX_DEPTH = 32;

/** Reads one element at `offset`. In BER mode, indefinite lengths are resolved by walking children. */
export function readNode(buf: Uint8Array, offset = 0, ber = false, depth = 0): Asn1Node {
  if (depth > MAX_DEPTH) throw new Asn1Error('nesting too deep', offset);
  let p = offset;
  const at = (i: number): number => {
    if (i >= buf.length) throw new Asn1Error('truncated', i);
    return buf[i]!;
  };
  const id = at(p++);
  const cls = (id >> 6) as TagClass;
  const constructed = (id & 0x20) !== 0;
  let tag = id & 0x1f;
  if (tag === 0x1f) {
    tag = 0;
    for (let i = 0; ; i++) {
      if (i > 3) throw new Asn1Error('tag number too large', p);
      const b = at(p++);
      if (i === 0 && b === 0x80) throw new Asn1Error('non-minimal tag number', p - 1);
      tag = (tag << 7) | (b & 0x7f);
      if (!(b & 0x80)) break;
    }
    if (tag < 0x1f) throw new Asn1Error('non-minimal tag number', offset);
  }
  const lb = at(p++);
  if (lb === 0x80) {
    if (!ber) throw new Asn1Error('indefinite length not allowed in DER', p - 1);
    if (!constructed) throw new Asn1Error('indefinite length on a primitive element', p - 1);
    const contentStart = p;
    for (;;) {
      if (at(p) === 0 && at(p + 1) === 0) {
        return { cls, constructed, tag, start: offset, contentStart, contentEnd: p, end: p + 2, indefinite: true, ber, buf };
      }
      p = readNode(buf, p, ber, depth + 1).end;
    }
  }
  let len: number;
  if (lb < 0x80) {
    len = lb;
  } else {
    const n = lb & 0x7f;
    if (n > 4) throw new Asn1Error('length field too long', p - 1);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + at(p++);
    if (!ber && (len < 0x80 || (n > 1 && buf[p - n] === 0))) throw new Asn1Error('non-minimal length encoding', p - n - 1);
  }
  const contentStart = p;
  const end = contentStart + len;
  if (end > buf.length) throw new Asn1Error(`element claims ${len} content bytes, only ${buf.length - contentStart} remain`, offset);
  return { cls, constructed, tag, start: offset, contentStart, contentEnd: end, end, indefinite: false, ber, buf };
}

/** Parses `buf` as exactly one element. */
export function parseDer(buf: Uint8Array, ber = false): Asn1Node {
  const n = readNode(buf, 0, ber);
  if (n.end !== buf.length) throw new Asn1Error(`${buf.length - n.end} trailing byte(s)`, n.end);
  return n;
}

export function children(n: Asn1Node): Asn1Node[] {
  if (!n.constructed) throw new Asn1Error('expected a constructed element', n.start);
  const out: Asn1Node[] = [];
  const ber = n.ber;
  let p = n.contentStart;
  while (p < n.contentEnd) {
    const c = readNode(n.buf, p, ber);
    out.push(c);
    p = c.end;
  }
  if (p !== n.contentEnd) throw new Asn1Error('children overrun their parent', p);
  return out;
}

export function parseBer(buf: Uint8Array): Asn1Node {
  return parseDer(buf, true);
}

export function content(n: Asn1Node): Uint8Array {
  return n.buf.subarray(n.contentStart, n.contentEnd);
}

export function whole(n: Asn1Node): Uint8Array {
  return n.buf.subarray(n.start, n.end);
}

export function expect(n: Asn1Node | undefined, tag: number, what: string, cls: TagClass = TagClass.Universal): Asn1Node {
  if (!n) throw new Asn1Error(`missing ${what}`, -1);
  if (n.cls !== cls || n.tag !== tag) throw new Asn1Error(`expected ${what}, found class ${n.cls} tag ${n.tag}`, n.start);
  return n;
}

export function decodeOid(b: Uint8Array): string {
  if (b.length === 0) throw new Asn1Error('empty OID', 0);
  const parts: number[] = [];
  let v = 0;
  for (let i = 0; i < b.length; i++) {
    const x = b[i]!;
    if (v === 0 && x === 0x80) throw new Asn1Error('non-minimal OID arc', i);
    v = v * 128 + (x & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER) throw new Asn1Error('OID arc too large', i);
    if (!(x & 0x80)) {
      if (parts.length === 0) {
        const first = v < 40 ? 0 : v < 80 ? 1 : 2;
        parts.push(first, v - first * 40);
      } else parts.push(v);
      v = 0;
    } else if (i === b.length - 1) throw new Asn1Error('truncated OID', i);
  }
  return parts.join('.');
}

export function readOid(n: Asn1Node | undefined, what = 'OBJECT IDENTIFIER'): string {
  return decodeOid(content(expect(n, UNIVERSAL.OID, what)));
}

/** Returns the unsigned magnitude of a non-negative INTEGER as bytes without leading zeros. */
export function readUnsignedInt(n: Asn1Node | undefined, what = 'INTEGER'): Uint8Array {
  const c = content(expect(n, UNIVERSAL.INTEGER, what));
  if (c.length === 0) throw new Asn1Error(`empty ${what}`, n!.start);
  if (c[0]! & 0x80) throw new Asn1Error(`negative ${what}`, n!.start);
  let i = 0;
  while (i < c.length - 1 && c[i] === 0) i++;
  return c.subarray(i);
}

export function readSmallInt(n: Asn1Node | undefined, what = 'INTEGER'): number {
  const c = readUnsignedInt(n, what);
  if (c.length > 4) throw new Asn1Error(`${what} too large`, n!.start);
  let v = 0;
  for (const b of c) v = v * 256 + b;
  return v;
}

/** Decodes UTCTime / GeneralizedTime (the Z forms X.509 requires). */
export function readTime(n: Asn1Node | undefined, what = 'time'): Date {
  if (!n) throw new Asn1Error(`missing ${what}`, -1);
  const s = Buffer.from(content(n)).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (n.tag === UNIVERSAL.UTCTime && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (n.tag === UNIVERSAL.GeneralizedTime && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    year = Number(m[1]);
  } else throw new Asn1Error(`malformed ${what} ${JSON.stringify(s)}`, n.start);
  const d = new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  if (Number.isNaN(d.getTime())) throw new Asn1Error(`invalid ${what}`, n.start);
  return d;
}

/** BIT STRING with zero unused bits → its bytes. */
export function readBitStringBytes(n: Asn1Node | undefined, what = 'BIT STRING'): Uint8Array {
  const c = content(expect(n, UNIVERSAL.BIT_STRING, what));
  if (c.length === 0 || c[0] !== 0) throw new Asn1Error(`${what} has unused bits`, n!.start);
  return c.subarray(1);
}

// ------------------------------------------------------------------ writer

function lengthBytes(len: number): number[] {
  if (len < 0x80) return [len];
  const out: number[] = [];
  while (len > 0) {
    out.unshift(len & 0xff);
    len = Math.floor(len / 256);
  }
  return [0x80 | out.length, ...out];
}

export function tlv(identifier: number, body: Uint8Array): Uint8Array {
  const head = [identifier, ...lengthBytes(body.length)];
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

function cat(parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

export const der = {
  seq: (...items: Uint8Array[]) => tlv(0x30, cat(items)),
  set: (...items: Uint8Array[]) => tlv(0x31, cat(items)),
  /** Non-negative integer from unsigned big-endian bytes, a number or a bigint. */
  int(v: Uint8Array | number | bigint): Uint8Array {
    let b: Uint8Array;
    if (v instanceof Uint8Array) b = v;
    else {
      let x = BigInt(v);
      if (x < 0n) throw new Asn1Error('negative INTEGER not supported', 0);
      const arr: number[] = [];
      do {
        arr.unshift(Number(x & 0xffn));
        x >>= 8n;
      } while (x > 0n);
      b = Uint8Array.from(arr);
    }
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    b = b.subarray(i);
    if (b.length === 0) b = Uint8Array.of(0);
    if (b[0]! & 0x80) b = cat([Uint8Array.of(0), b]);
    return tlv(0x02, b);
  },
  oid(s: string): Uint8Array {
    const arcs = s.split('.').map(Number);
    const out: number[] = [];
    const enc = (v: number) => {
      const tmp = [v & 0x7f];
      v = Math.floor(v / 128);
      while (v > 0) {
        tmp.unshift((v & 0x7f) | 0x80);
        v = Math.floor(v / 128);
      }
      out.push(...tmp);
    };
    enc(arcs[0]! * 40 + arcs[1]!);
    for (const a of arcs.slice(2)) enc(a);
    return tlv(0x06, Uint8Array.from(out));
  },
  null: () => Uint8Array.of(0x05, 0x00),
  bool: (b: boolean) => Uint8Array.of(0x01, 0x01, b ? 0xff : 0x00),
  octets: (b: Uint8Array) => tlv(0x04, b),
  bits: (b: Uint8Array) => tlv(0x03, cat([Uint8Array.of(0), b])),
  utf8: (s: string) => tlv(0x0c, Buffer.from(s, 'utf8')),
  printable: (s: string) => tlv(0x13, Buffer.from(s, 'latin1')),
  /** UTCTime before 2050, GeneralizedTime after, as RFC 5280 requires. */
  time(d: Date): Uint8Array {
    const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
    const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
    const y = d.getUTCFullYear();
    if (y >= 1950 && y < 2050) return tlv(0x17, Buffer.from(digits.slice(2) + 'Z', 'latin1'));
    return tlv(0x18, Buffer.from(digits + 'Z', 'latin1'));
  },
  /** [n] EXPLICIT (constructed context tag around one element). */
  explicit: (n: number, inner: Uint8Array) => tlv(0xa0 | n, inner),
  /** [n] IMPLICIT primitive. */
  implicitPrim: (n: number, body: Uint8Array) => tlv(0x80 | n, body),
  /** [n] IMPLICIT constructed. */
  implicitCons: (n: number, body: Uint8Array) => tlv(0xa0 | n, body),
};
