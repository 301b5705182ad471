/**
 * A deterministic cpio writer, "newc" format (the one the Linux initramfs
 * unpacker reads, magic 070701), for the EIF ramdisks.
 *
 * Everything that could vary between two builds of the same inputs is fixed:
 * entries are sorted by path (bytewise), missing parent directories are
 * added, inode numbers are 1, 2, 3… in that order, uid/gid are 0, every mtime
 * is the same (SOURCE_DATE_EPOCH or 0), and modes are 0755 for directories
 * and executables, 0644 for other files, 0777 for symlinks. Each record is
 *
 *   "070701" + 13 × 8 hex digits (ino mode uid gid nlink mtime filesize
 *   devmajor devminor rdevmajor rdevminor namesize check)
 *   name + NUL, padded to 4 bytes; data, padded to 4 bytes
 *
 * and the archive ends with the "TRAILER!!!" record. Not compressed: nitro-cli
 * builds its ramdisks uncompressed too (linuxkit "kernel+initrd-nogz").
 */
import { EifError } from '../attestation/eif/errors.js';
import { sourceDateEpoch } from './source-date.js';

export type CpioEntry =
  | { path: string; type: 'dir' }
  | { path: string; type: 'file'; data: Uint8Array; executable?: boolean }
  | { path: string; type: 'symlink'; target: string };

export interface CpioOptions {
  /** mtime of every entry, seconds. Default: SOURCE_DATE_EPOCH, or 0. */
  mtime?: number;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const TRAILER = 'TRAILER!!!';
const MAX_FILE = 0xffffffff; // newc sizes are 32-bit

function bad(message: string): EifError {
  return new EifError('EIF_INPUT', `cpio: ${message}`);
}

/** Paths are relative, '/'-separated, without '.', '..' or empty components. */
export function checkCpioPath(path: string): string {
  if (typeof path !== 'string' || path.length === 0) throw bad('empty path');
  if (path.length > 4095) throw bad(`path longer than 4095 bytes: ${path.slice(0, 60)}…`);
  if (path.startsWith('/')) throw bad(`path must be relative: ${path}`);
  if (path.includes('\0')) throw bad('path contains NUL');
  for (const c of path.split('/')) if (c === '' || c === '.' || c === '..') throw bad(`bad path component in ${JSON.stringify(path)}`);
  if (path === TRAILER) throw bad(`"${TRAILER}" is reserved`);
  return path;
}

const te = new TextEncoder();

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

interface Rec {
  name: Uint8Array;
  mode: number;
  nlink: number;
  data: Uint8Array;
}

function compareBytes(a: string, b: string): number {
  // Bytewise UTF-8 order (not UTF-16 code units), the same as `LC_ALL=C sort`.
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Writes entries as one newc archive (see the module comment). */
export function writeCpio(entries: readonly CpioEntry[], opts: CpioOptions = {}): Uint8Array {
  const mtime = opts.mtime ?? sourceDateEpoch();
  if (!Number.isSafeInteger(mtime) || mtime < 0 || mtime > 0xffffffff) throw bad(`mtime ${mtime} does not fit newc's 32-bit field`);

  const byPath = new Map<string, CpioEntry>();
  for (const e of entries) {
    const p = checkCpioPath(e.path);
    if (byPath.has(p)) throw bad(`duplicate path ${p}`);
    if (e.type === 'file' && !(e.data instanceof Uint8Array)) throw bad(`file ${p} has no data`);
    if (e.type === 'file' && e.data.length > MAX_FILE) throw bad(`file ${p} is larger than 4 GiB`);
    if (e.type === 'symlink' && (typeof e.target !== 'string' || e.target.length === 0 || e.target.includes('\0'))) throw bad(`symlink ${p} has a bad target`);
    if (e.type !== 'dir' && e.type !== 'file' && e.type !== 'symlink') throw bad(`unknown entry type for ${p}`);
    byPath.set(p, e);
  }
  // The kernel's unpacker does not create parents: add them.
  for (const p of [...byPath.keys()]) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const existing = byPath.get(parent);
      if (existing === undefined) byPath.set(parent, { path: parent, type: 'dir' });
      else if (existing.type !== 'dir') throw bad(`${parent} is a ${existing.type} but ${p} is inside it`);
    }
  }

  const recs: Rec[] = [...byPath.keys()].sort(compareBytes).map((p) => {
    const e = byPath.get(p)!;
    const name = te.encode(p);
    if (e.type === 'dir') return { name, mode: S_IFDIR | 0o755, nlink: 2, data: new Uint8Array(0) };
    if (e.type === 'symlink') return { name, mode: S_IFLNK | 0o777, nlink: 1, data: te.encode(e.target) };
    return { name, mode: S_IFREG | (e.executable === true ? 0o755 : 0o644), nlink: 1, data: e.data };
  });
  recs.push({ name: te.encode(TRAILER), mode: 0, nlink: 1, data: new Uint8Array(0) });

  const chunks: Uint8Array[] = [];
  let ino = 0;
  for (const r of recs) {
    const isTrailer = r.mode === 0;
    const fields = [isTrailer ? 0 : ++ino, r.mode, 0, 0, r.nlink, isTrailer ? 0 : mtime, r.data.length, 0, 0, 0, 0, r.name.length + 1, 0];
    const head = te.encode('070701' + fields.map(hex8).join(''));
    chunks.push(head, r.name, new Uint8Array(1 + pad4(head.length + r.name.length + 1)));
    if (r.data.length > 0) chunks.push(r.data, new Uint8Array(pad4(r.data.length)));
  }
  return new Uint8Array(Buffer.concat(chunks));
}

export interface CpioListing {
  path: string;
  mode: number;
  ino: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  size: number;
  data: Uint8Array;
}

/** Reads a newc archive back (for tests and `build/` tooling; strict about framing). */
export function readCpio(bytes: Uint8Array): CpioListing[] {
  const out: CpioListing[] = [];
  const td = new TextDecoder('utf-8', { fatal: true });
  let p = 0;
  for (;;) {
    if (p + 110 > bytes.length) throw bad(`truncated header at ${p}`);
    const head = Buffer.from(bytes.subarray(p, p + 110)).toString('latin1');
    if (!head.startsWith('070701')) throw bad(`bad magic at ${p}`);
    const f = (i: number): number => {
      const s = head.slice(6 + 8 * i, 14 + 8 * i);
      if (!/^[0-9a-fA-F]{8}$/.test(s)) throw bad(`bad header field at ${p}`);
      return parseInt(s, 16);
    };
    const namesize = f(11);
    const size = f(6);
    const nameStart = p + 110;
    if (namesize < 1 || nameStart + namesize > bytes.length) throw bad(`bad name size at ${p}`);
    const name = td.decode(bytes.subarray(nameStart, nameStart + namesize - 1));
    const dataStart = nameStart + namesize + pad4(110 + namesize);
    if (dataStart + size > bytes.length) throw bad(`truncated data for ${name}`);
    if (name === TRAILER) return out;
    out.push({ path: name, ino: f(0), mode: f(1), uid: f(2), gid: f(3), nlink: f(4), mtime: f(5), size, data: bytes.subarray(dataStart, dataStart + size) });
    p = dataStart + size + pad4(size);
  }
}
