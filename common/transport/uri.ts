/**
 * Transport URIs name where a bridge listens or connects:
 *
 *   unix:/abs/path  unix:///abs/path  unix:rel/path   Unix domain socket
 *   tcp://host:port                                   TCP (dev and tests; hosts: IPv4, [IPv6], DNS name)
 *   vsock://cid:port                                  AF_VSOCK (cid, port: decimal u32)
 *
 * Parsing is strict and total: a URI either becomes a typed address or a
 * TRANSPORT_BAD_URI error that says what is wrong — a typo in a deployment
 * config must fail at start-up, not connect somewhere unexpected.
 */
import { isIP } from 'node:net';
import { TransportError } from './errors.js';

export type TransportScheme = 'unix' | 'tcp' | 'vsock';

export interface UnixAddress {
  scheme: 'unix';
  path: string;
}

export interface TcpAddress {
  scheme: 'tcp';
  /** IPv4 literal, IPv6 literal (without brackets) or DNS name. */
  host: string;
  /** 0..65535; 0 asks listen() for an ephemeral port. */
  port: number;
}

export interface VsockAddress {
  scheme: 'vsock';
  /** Context id, u32: 1 local, 2 host, 3 the parent instance as seen from a Nitro enclave, 0xFFFFFFFF any. */
  cid: number;
  /** u32. */
  port: number;
}

export type TransportAddress = UnixAddress | TcpAddress | VsockAddress;
export type AddressFor<S extends TransportScheme> = Extract<TransportAddress, { scheme: S }>;

export const VMADDR_CID_ANY = 0xffffffff;
export const VMADDR_CID_HOST = 2;
/** The parent EC2 instance as seen from inside a Nitro enclave. */
export const VSOCK_CID_PARENT = 3;
export const VMADDR_PORT_ANY = 0xffffffff;

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
export const MAX_UNIX_PATH_BYTES = 107;

const U32_MAX = 0xffffffff;
const DECIMAL_RE = /^(?:0|[1-9][0-9]*)$/;
const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

function show(uri: string): string {
  return JSON.stringify(uri.length > 200 ? `${uri.slice(0, 200)}…` : uri);
}

function bad(uri: string, why: string, hint?: string): never {
  throw new TransportError('TRANSPORT_BAD_URI', `bad transport URI ${show(uri)}: ${why}`, hint === undefined ? {} : { hint });
}

function parseDecimal(uri: string, s: string, what: string, max: number): number {
  if (!DECIMAL_RE.test(s)) bad(uri, `${what} must be a decimal integer without leading zeros, got ${JSON.stringify(s)}`);
  // Length check first: a 400-digit number must not round to something in range.
  if (s.length > String(max).length || Number(s) > max) bad(uri, `${what} ${s} is out of range 0..${max}`);
  return Number(s);
}

function parseUnix(uri: string): UnixAddress {
  let path = uri.slice('unix:'.length);
  if (path.startsWith('//')) {
    // unix:///abs/path is the common "empty authority" spelling; unix://x/... is not a thing.
    if (!path.startsWith('///')) bad(uri, 'a unix URI has no host part', 'write unix:/path/to.sock or unix:///path/to.sock');
    path = path.slice(2);
  }
  if (path.length === 0) bad(uri, 'empty socket path');
  if (path.includes('\0')) bad(uri, 'socket path contains a NUL byte');
  const bytes = Buffer.byteLength(path, 'utf8');
  if (bytes > MAX_UNIX_PATH_BYTES) bad(uri, `socket path is ${bytes} bytes, Linux allows at most ${MAX_UNIX_PATH_BYTES}`, 'use a shorter directory, e.g. under /run or /tmp');
  return { scheme: 'unix', path };
}

function parseTcp(uri: string): TcpAddress {
  const rest = uri.slice('tcp://'.length);
  let host: string;
  let portText: string;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) bad(uri, 'unterminated [IPv6] host');
    host = rest.slice(1, close);
    if (isIP(host) !== 6) bad(uri, `${JSON.stringify(host)} is not an IPv6 address`);
    if (rest[close + 1] !== ':') bad(uri, 'expected ":port" after the host', 'write tcp://host:port');
    portText = rest.slice(close + 2);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon < 0) bad(uri, 'missing ":port"', 'write tcp://host:port');
    host = rest.slice(0, colon);
    portText = rest.slice(colon + 1);
    if (host.includes(':')) bad(uri, 'IPv6 hosts must be written in brackets', 'write tcp://[::1]:port');
    if (host.length === 0) bad(uri, 'empty host');
    if (isIP(host) !== 4 && !HOSTNAME_RE.test(host)) bad(uri, `${JSON.stringify(host.slice(0, 64))} is not an IPv4 address or host name`);
    if (/^[0-9.]+$/.test(host) && isIP(host) !== 4) bad(uri, `${JSON.stringify(host)} is not a valid IPv4 address`);
  }
  if (portText.length === 0) bad(uri, 'missing port number');
  if (/[/?#]/.test(portText)) bad(uri, 'paths, queries and fragments are not allowed', 'write tcp://host:port');
  const port = parseDecimal(uri, portText, 'port', 65535);
  return { scheme: 'tcp', host, port };
}

function parseVsock(uri: string): VsockAddress {
  const rest = uri.slice('vsock://'.length);
  const colon = rest.indexOf(':');
  if (colon < 0) bad(uri, 'missing ":port"', 'write vsock://cid:port, e.g. vsock://3:8000');
  const cid = parseDecimal(uri, rest.slice(0, colon), 'cid', U32_MAX);
  const port = parseDecimal(uri, rest.slice(colon + 1), 'port', U32_MAX);
  return { scheme: 'vsock', cid, port };
}

/** Parses and validates a transport URI. Throws TransportError TRANSPORT_BAD_URI. */
export function parseTransportUri(uri: string): TransportAddress {
  if (typeof uri !== 'string') throw new TransportError('TRANSPORT_BAD_URI', `transport URI must be a string, got ${typeof uri}`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(uri)) bad(uri, 'control characters in the URI');
  if (uri.trim() !== uri) bad(uri, 'leading or trailing whitespace');
  if (uri.startsWith('unix:')) return parseUnix(uri);
  if (uri.startsWith('tcp://')) return parseTcp(uri);
  if (uri.startsWith('vsock://')) return parseVsock(uri);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(uri)?.[1];
  return bad(
    uri,
    scheme === undefined ? 'no scheme' : `unsupported scheme "${scheme}"`,
    'use unix:/path, tcp://host:port or vsock://cid:port',
  );
}

/** Inverse of parseTransportUri (canonical spelling). */
export function formatTransportUri(a: TransportAddress): string {
  switch (a.scheme) {
    case 'unix':
      return a.path.startsWith('//') ? `unix://${a.path}` : `unix:${a.path}`;
    case 'tcp':
      return `tcp://${isIP(a.host) === 6 ? `[${a.host}]` : a.host}:${a.port}`;
    case 'vsock':
      return `vsock://${a.cid}:${a.port}`;
  }
}
