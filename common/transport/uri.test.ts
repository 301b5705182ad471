import { describe, expect, it } from 'vitest';
import { TransportError } from './errors.js';
import { formatTransportUri, parseTransportUri, VMADDR_CID_ANY, type TransportAddress } from './uri.js';

function badUri(uri: string): TransportError {
  try {
    parseTransportUri(uri);
  } catch (e) {
    expect(e).toBeInstanceOf(TransportError);
    expect((e as TransportError).code).toBe('TRANSPORT_BAD_URI');
    return e as TransportError;
  }
  throw new Error(`accepted ${JSON.stringify(uri)}`);
}

describe('parseTransportUri', () => {
  const good: [string, TransportAddress][] = [
    ['unix:/run/enclave-signer/bridge.sock', { scheme: 'unix', path: '/run/enclave-signer/bridge.sock' }],
    ['unix:///tmp/x.sock', { scheme: 'unix', path: '/tmp/x.sock' }],
    ['unix:rel/dir.sock', { scheme: 'unix', path: 'rel/dir.sock' }],
    ['unix:/tmp/with space.sock', { scheme: 'unix', path: '/tmp/with space.sock' }],
    ['tcp://127.0.0.1:0', { scheme: 'tcp', host: '127.0.0.1', port: 0 }],
    ['tcp://localhost:65535', { scheme: 'tcp', host: 'localhost', port: 65535 }],
    ['tcp://kms.eu-west-1.amazonaws.com:443', { scheme: 'tcp', host: 'kms.eu-west-1.amazonaws.com', port: 443 }],
    ['tcp://[::1]:8000', { scheme: 'tcp', host: '::1', port: 8000 }],
    ['tcp://[fe80::1:2]:1', { scheme: 'tcp', host: 'fe80::1:2', port: 1 }],
    ['vsock://3:8000', { scheme: 'vsock', cid: 3, port: 8000 }],
    ['vsock://0:0', { scheme: 'vsock', cid: 0, port: 0 }],
    ['vsock://4294967295:4294967295', { scheme: 'vsock', cid: VMADDR_CID_ANY, port: 0xffffffff }],
  ];
  for (const [uri, addr] of good) {
    it(`parses ${uri}`, () => {
      expect(parseTransportUri(uri)).toEqual(addr);
      expect(parseTransportUri(formatTransportUri(addr))).toEqual(addr);
    });
  }

  it('formats canonically', () => {
    expect(formatTransportUri(parseTransportUri('unix:///tmp/x'))).toBe('unix:/tmp/x');
    expect(formatTransportUri({ scheme: 'tcp', host: '::1', port: 5 })).toBe('tcp://[::1]:5');
    expect(formatTransportUri({ scheme: 'unix', path: '//odd' })).toBe('unix:////odd');
  });

  const bad: [string, string][] = [
    ['', 'no scheme'],
    ['/tmp/x.sock', 'no scheme'],
    ['http://127.0.0.1:80', 'unsupported scheme "http"'],
    ['TCP://127.0.0.1:80', 'unsupported scheme "TCP"'],
    ['unix:', 'empty socket path'],
    ['unix://host/path', 'no host part'],
    [`unix:/${'a'.repeat(107)}`, 'Linux allows at most 107'],
    ['unix:/tmp/a\0b', 'control characters'],
    ['unix:/tmp/a\nb', 'control characters'],
    [' unix:/tmp/x', 'leading or trailing whitespace'],
    ['tcp://127.0.0.1', 'missing ":port"'],
    ['tcp://127.0.0.1:', 'missing port'],
    ['tcp://:80', 'empty host'],
    ['tcp://127.0.0.1:65536', 'out of range'],
    ['tcp://127.0.0.1:080', 'leading zeros'],
    ['tcp://127.0.0.1:-1', 'decimal integer'],
    ['tcp://127.0.0.1:8o', 'decimal integer'],
    ['tcp://127.0.0.1:80/path', 'paths, queries'],
    ['tcp://127.0.0.1:80?x=1', 'paths, queries'],
    ['tcp://::1:80', 'brackets'],
    ['tcp://[::1:80', 'unterminated'],
    ['tcp://[127.0.0.1]:80', 'not an IPv6'],
    ['tcp://[::1]80', 'expected ":port"'],
    ['tcp://999.1.1.1:80', 'not a valid IPv4'],
    ['tcp://user@host:80', 'not an IPv4 address or host name'],
    ['tcp://bad_host:80', 'not an IPv4 address or host name'],
    ['vsock://3', 'missing ":port"'],
    ['vsock://:8000', 'decimal integer'],
    ['vsock://-1:8000', 'decimal integer'],
    ['vsock://4294967296:1', 'cid 4294967296 is out of range'],
    ['vsock://3:4294967296', 'port 4294967296 is out of range'],
    [`vsock://3:${'9'.repeat(400)}`, 'out of range'],
    ['vsock://03:8000', 'leading zeros'],
    ['vsock://0x3:8000', 'decimal integer'],
    ['vsock://3:8000:1', 'decimal integer'],
    ['vsock://3:8000/', 'decimal integer'],
  ];
  for (const [uri, why] of bad) {
    it(`rejects ${JSON.stringify(uri.length > 40 ? `${uri.slice(0, 40)}…` : uri)}: ${why}`, () => {
      expect(badUri(uri).message).toContain(why);
    });
  }

  it('rejects non-strings with a typed error', () => {
    expect(() => parseTransportUri(42 as unknown as string)).toThrow(TransportError);
  });
});
