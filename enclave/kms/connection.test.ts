/**
 * --kms-ca (finding 10a of issue 8): the extra CA is added to Node's bundled
 * roots, never instead of them. A real KMS endpoint (publicly rooted) must
 * still verify when an emulator CA is configured too; this machine cannot
 * reach one, so the constructed CA list is checked, and a real TLS handshake
 * through the agent shows the extra CA is honoured and others are not.
 */
import { get as httpsGet, createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as netConnect } from 'node:net';
import { rootCertificates } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevCa } from '../../dev/ca/index.js';
import { kmsHttpsAgent, kmsTrustAnchors } from './connection.js';

const ca = createDevCa();
const other = createDevCa();
const tlsCert = ca.issueTlsServerCert(['kms.dev.local']);

describe('finding 10a: --kms-ca is an extra trust anchor', () => {
  it('the CA list keeps every one of Node\'s bundled roots and adds the extra CA', () => {
    const list = kmsTrustAnchors(tlsCert.caPem)!;
    expect(rootCertificates.length).toBeGreaterThan(50);
    for (const root of rootCertificates) expect(list).toContain(root);
    expect(list).toContain(tlsCert.caPem);
    expect(list).toHaveLength(rootCertificates.length + 1);
    // Without --kms-ca Node's defaults apply unchanged.
    expect(kmsTrustAnchors(undefined)).toBeUndefined();
    expect(kmsTrustAnchors([])).toBeUndefined();
  });

  describe('TLS through the agent', () => {
    let server: Server;
    let port: number;
    beforeAll(async () => {
      server = createServer({ cert: tlsCert.chainPem, key: tlsCert.keyPem }, (_req, res) => res.end('kms-ok'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    const fetchVia = (extra: string) =>
      new Promise<string>((resolve, reject) => {
        const agent = kmsHttpsAgent({
          servername: 'kms.dev.local',
          ca: extra,
          dial: () => new Promise((ok, bad) => {
            const s = netConnect({ host: '127.0.0.1', port }, () => ok(s));
            s.once('error', bad);
          }),
        });
        const req = httpsGet({ host: 'kms.dev.local', path: '/', agent }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => {
            agent.destroy();
            resolve(body);
          });
        });
        req.on('error', (e) => {
          agent.destroy();
          reject(e);
        });
      });

    it('a server certified by the extra CA is accepted', async () => {
      expect(await fetchVia(tlsCert.caPem)).toBe('kms-ok');
    });

    it('a server certified by any other CA is still refused', async () => {
      await expect(fetchVia(other.issueTlsServerCert(['kms.dev.local']).caPem)).rejects.toThrow(/certificate/i);
    });
  });
});
