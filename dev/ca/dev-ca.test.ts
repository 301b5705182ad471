import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyChain, checkValidity } from '../../attestation/chain.js';
import { derToPem } from '../../attestation/roots.js';
import { KeyUsage, parseCertificate } from '../../attestation/x509.js';
import { spkiOf } from './certificate.js';
import { ATTESTATION_LEAF_LIFETIME_MS, createDevCa, DEV_ROOT_CN, DEV_ROOT_NAME, loadOrCreateDevCa, type DevCa } from './dev-ca.js';

const HOUR = 3600_000;
const ca = createDevCa();
const other = createDevCa();

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const tmp = mkdtempSync(join(tmpdir(), 'devca-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('dev CA shape', () => {
  it('root: self-issued P-384 CA with the DEV name, pathLen 1, keyCertSign+cRLSign, SKI', () => {
    const r = parseCertificate(ca.root.certDer);
    expect(r.subject).toBe(`O=enclave-signer,OU=DEV,CN=${DEV_ROOT_CN}`);
    expect(Buffer.from(r.issuerDer)).toEqual(Buffer.from(r.subjectDer));
    expect(r.ca).toBe(true);
    expect(r.pathLen).toBe(1);
    expect(r.keyUsage).toEqual(new Set([KeyUsage.keyCertSign, KeyUsage.cRLSign]));
    expect(r.curve).toBe('1.3.132.0.34');
    expect(r.signatureHash).toBe('sha384');
    expect(Buffer.from(spkiOf(ca.root.key))).toEqual(Buffer.from(r.spkiDer));
  });

  it('intermediate: CA, pathLen 0, issued by the root', () => {
    const i = parseCertificate(ca.intermediate.certDer);
    expect(i.ca).toBe(true);
    expect(i.pathLen).toBe(0);
    expect(i.keyUsage?.has(KeyUsage.keyCertSign)).toBe(true);
    expect(Buffer.from(i.issuerDer)).toEqual(Buffer.from(parseCertificate(ca.root.certDer).subjectDer));
  });

  it('trustRoot is the root DER pinned by fingerprint under the DEV name', () => {
    expect(ca.trustRoot.name).toBe(DEV_ROOT_NAME);
    expect(Buffer.from(ca.trustRoot.der)).toEqual(Buffer.from(ca.root.certDer));
    expect(ca.trustRoot.fingerprint).toBe(parseCertificate(ca.root.certDer).fingerprint);
    expect(ca.trustRoot.fingerprint).not.toBe(other.trustRoot.fingerprint);
  });
});

describe('attestation leaves', () => {
  const now = new Date('2031-03-04T05:06:07.890Z');
  const dated = createDevCa({ now: new Date('2031-01-01T00:00:00Z') });
  const leaf = dated.issueAttestationLeaf('i-0123456789abcdef0-enc0123456789abcdef.dev', now);
  const cert = parseCertificate(leaf.certDer);

  it('lives three hours from the whole second of issue, CA:false, digitalSignature, P-384', () => {
    expect(cert.notBefore.toISOString()).toBe('2031-03-04T05:06:07.000Z');
    expect(cert.notAfter.getTime() - cert.notBefore.getTime()).toBe(ATTESTATION_LEAF_LIFETIME_MS);
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(new Set([KeyUsage.digitalSignature]));
    expect(cert.subject).toBe('O=enclave-signer,OU=DEV,CN=i-0123456789abcdef0-enc0123456789abcdef.dev');
    expect(Buffer.from(spkiOf(leaf.key))).toEqual(Buffer.from(cert.spkiDer));
    expect(leaf.key.type).toBe('private');
  });

  it('passes the verifier chain checks against the dev root, and only during its 3 hours', () => {
    const chain = verifyChain(leaf.certDer, [dated.root.certDer, dated.intermediate.certDer], dated.trustRoot);
    expect(chain.certs).toHaveLength(3);
    expect(() => checkValidity(chain, now)).not.toThrow();
    expect(() => checkValidity(chain, new Date(now.getTime() + 3 * HOUR - 1000))).not.toThrow();
    expect(() => checkValidity(chain, new Date(now.getTime() + 3 * HOUR + 1000))).toThrow(expect.objectContaining({ code: 'ATTEST_CERT_EXPIRED' }));
    expect(() => checkValidity(chain, new Date(now.getTime() - 1000))).toThrow(expect.objectContaining({ code: 'ATTEST_CERT_NOT_YET_VALID' }));
  });

  it('is rejected against another dev root or with another CA intermediate', () => {
    expect(() => verifyChain(leaf.certDer, [dated.root.certDer, dated.intermediate.certDer], other.trustRoot)).toThrow(
      expect.objectContaining({ code: 'ATTEST_UNTRUSTED_ROOT' }),
    );
    expect(() => verifyChain(leaf.certDer, [other.root.certDer, other.intermediate.certDer], other.trustRoot)).toThrow(
      expect.objectContaining({ code: 'ATTEST_CHAIN' }),
    );
  });

  it('is fresh every time', () => {
    const a = ca.issueAttestationLeaf('x');
    const b = ca.issueAttestationLeaf('x');
    expect(Buffer.from(a.certDer)).not.toEqual(Buffer.from(b.certDer));
    expect(Buffer.from(spkiOf(a.key))).not.toEqual(Buffer.from(spkiOf(b.key)));
  });

  it('refuses bad input', () => {
    expect(() => ca.issueAttestationLeaf('')).toThrow(expect.objectContaining({ code: 'DEVCA_BAD_NAME' }));
    expect(() => ca.issueAttestationLeaf('x'.repeat(65))).toThrow(expect.objectContaining({ code: 'DEVCA_BAD_NAME' }));
    expect(() => ca.issueAttestationLeaf('x', new Date(NaN))).toThrow(expect.objectContaining({ code: 'DEVCA_BAD_TIME' }));
  });
});

describe.skipIf(!hasOpenssl)('OpenSSL accepts the chains', () => {
  const dir = join(tmp, 'openssl');
  mkdirSync(dir);
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const root = write('root.pem', derToPem(ca.root.certDer));
  const int = write('int.pem', derToPem(ca.intermediate.certDer));
  const otherRoot = write('other-root.pem', derToPem(other.root.certDer));
  const openssl = (...args: string[]) => spawnSync('openssl', args, { encoding: 'utf8' });

  it('attestation leaf: openssl verify -x509_strict', () => {
    const leaf = write('leaf.pem', derToPem(ca.issueAttestationLeaf('i-0abc-enc0def.dev').certDer));
    const r = openssl('verify', '-x509_strict', '-CAfile', root, '-untrusted', int, leaf);
    expect(r.stdout.trim()).toBe(`${leaf}: OK`);
    expect(r.status).toBe(0);
    expect(openssl('verify', '-CAfile', otherRoot, '-untrusted', int, leaf).status).not.toBe(0);
  });

  it('TLS leaf: openssl verify -x509_strict -purpose sslserver, SANs as written', () => {
    const t = ca.issueTlsServerCert(['kms.dev.local', '127.0.0.1', '::1']);
    const leaf = write('tls.pem', t.certPem);
    const ca2 = write('tls-ca.pem', t.caPem);
    const chain = write('tls-chain.pem', t.chainPem);
    const r = openssl('verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', ca2, '-untrusted', chain, leaf);
    expect(r.stdout.trim()).toBe(`${leaf}: OK`);
    const text = execFileSync('openssl', ['x509', '-in', leaf, '-noout', '-ext', 'subjectAltName,extendedKeyUsage'], { encoding: 'utf8' });
    expect(text).toContain('DNS:kms.dev.local, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(text).toContain('TLS Web Server Authentication');
    // The key PEM is the leaf's key.
    const keyFile = write('tls.key', t.keyPem);
    const pub = execFileSync('openssl', ['pkey', '-in', keyFile, '-pubout'], { encoding: 'utf8' });
    expect(createPublicKey(pub).export({ type: 'spki', format: 'der' })).toEqual(Buffer.from(parseCertificate(readDer(leaf)).spkiDer));
  });
});

function readDer(pemFile: string): Uint8Array {
  const pem = readFileSync(pemFile, 'utf8');
  return new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'));
}

describe('TLS server certificates work with node:tls', () => {
  let server: Server;
  let port: number;
  const tls = ca.issueTlsServerCert(['localhost', '127.0.0.1']);

  beforeAll(async () => {
    server = createServer({ cert: tls.chainPem, key: tls.keyPem }, (_req, res) => res.end('dev-ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  function get(opts: { ca?: string; servername?: string }): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, path: '/', method: 'GET', agent: false, ...(opts.ca ? { ca: opts.ca } : {}), ...(opts.servername ? { servername: opts.servername } : {}) },
        (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve(body));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  it('a client trusting only caPem connects by IP SAN and by DNS SAN', async () => {
    await expect(get({ ca: tls.caPem })).resolves.toBe('dev-ok');
    await expect(get({ ca: tls.caPem, servername: 'localhost' })).resolves.toBe('dev-ok');
  });

  it('with the default CA store the connection is refused', async () => {
    await expect(get({})).rejects.toMatchObject({ code: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED/) });
  });

  it('another dev root is refused, and a name not in the SAN is refused', async () => {
    await expect(get({ ca: other.issueTlsServerCert(['localhost']).caPem })).rejects.toMatchObject({ code: expect.any(String) });
    await expect(get({ ca: tls.caPem, servername: 'not-listed.example' })).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('chainPem is leaf then intermediate, caPem is the root', () => {
    const blocks = tls.chainPem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!;
    expect(blocks).toHaveLength(2);
    expect(blocks[0]!.trim()).toBe(tls.certPem.trim());
    expect(blocks[1]!.trim()).toBe(derToPem(ca.intermediate.certDer).trim());
    expect(tls.caPem).toBe(derToPem(ca.root.certDer));
    expect(tls.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('validity: days option, clamped to the intermediate, bad input refused', () => {
    const now = new Date();
    const c = parseCertificate(readDerPem(ca.issueTlsServerCert(['a.test'], { now, days: 7 }).certPem));
    expect(Math.round((c.notAfter.getTime() - now.getTime()) / HOUR)).toBe(7 * 24);
    expect(c.notBefore.getTime()).toBeLessThan(now.getTime());
    expect(() => ca.issueTlsServerCert([])).toThrow(expect.objectContaining({ code: 'DEVCA_BAD_NAME' }));
    expect(() => ca.issueTlsServerCert(['a.test'], { days: 0 })).toThrow(expect.objectContaining({ code: 'DEVCA_BAD_VALIDITY' }));
    expect(() => ca.issueTlsServerCert(['a.test'], { days: 1000 })).toThrow(expect.objectContaining({ code: 'DEVCA_BAD_VALIDITY' }));
    expect(() => ca.issueTlsServerCert(['bad name'])).toThrow(expect.objectContaining({ code: 'DEVCA_BAD_CERT_SPEC' }));
  });
});

function readDerPem(pem: string): Uint8Array {
  return new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'));
}

describe('loadOrCreateDevCa', () => {
  const files = ['intermediate.key.pem', 'intermediate.pem', 'root.key.pem', 'root.pem'];
  let n = 0;
  const fresh = () => join(tmp, `persist-${n++}`, 'ca');

  it('creates the CA with 0600 files in a 0700 directory, and a rerun loads the same CA', () => {
    const dir = fresh();
    const a = loadOrCreateDevCa(dir);
    expect(readdirSync(dir).sort()).toEqual(files);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of files) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'root.key.pem'), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(readdirSync(join(dir, '..'))).toEqual(['ca']); // no temp directory left behind

    const b = loadOrCreateDevCa(dir);
    expect(b.trustRoot.fingerprint).toBe(a.trustRoot.fingerprint);
    expect(Buffer.from(b.intermediate.certDer)).toEqual(Buffer.from(a.intermediate.certDer));
    expect(Buffer.from(spkiOf(b.intermediate.key))).toEqual(Buffer.from(spkiOf(a.intermediate.key)));
    // A leaf from the reloaded CA chains to the root of the first run.
    const leaf = b.issueAttestationLeaf('reloaded');
    expect(() => verifyChain(leaf.certDer, [a.root.certDer, a.intermediate.certDer], a.trustRoot)).not.toThrow();
  });

  it('uses an existing empty directory', () => {
    const dir = fresh();
    mkdirSync(dir, { recursive: true });
    loadOrCreateDevCa(dir);
    expect(readdirSync(dir).sort()).toEqual(files);
  });

  it('refuses a partial CA, a directory of other things, loose permissions and mismatched keys', () => {
    const dir = fresh();
    loadOrCreateDevCa(dir);
    rmSync(join(dir, 'intermediate.key.pem'));
    expect(() => loadOrCreateDevCa(dir)).toThrow(expect.objectContaining({ code: 'DEVCA_INCOMPLETE' }));

    const busy = fresh();
    mkdirSync(busy, { recursive: true });
    writeFileSync(join(busy, 'notes.txt'), 'x');
    expect(() => loadOrCreateDevCa(busy)).toThrow(expect.objectContaining({ code: 'DEVCA_BAD_DIR' }));

    const loose = fresh();
    loadOrCreateDevCa(loose);
    chmodSync(join(loose, 'root.key.pem'), 0o644);
    expect(() => loadOrCreateDevCa(loose)).toThrow(expect.objectContaining({ code: 'DEVCA_PERMISSIONS' }));

    const swapped = fresh();
    loadOrCreateDevCa(swapped);
    const otherDir = fresh();
    loadOrCreateDevCa(otherDir);
    writeFileSync(join(swapped, 'intermediate.key.pem'), readFileSync(join(otherDir, 'intermediate.key.pem')), { mode: 0o600 });
    expect(() => loadOrCreateDevCa(swapped)).toThrow(expect.objectContaining({ code: 'DEVCA_CORRUPT' }));

    // An intermediate (with its own key) from another CA: key matches, issuer does not.
    const foreign = fresh();
    loadOrCreateDevCa(foreign);
    for (const f of ['intermediate.pem', 'intermediate.key.pem']) writeFileSync(join(foreign, f), readFileSync(join(otherDir, f)), { mode: 0o600 });
    expect(() => loadOrCreateDevCa(foreign)).toThrow(expect.objectContaining({ code: 'DEVCA_CORRUPT', message: expect.stringMatching(/not issued by/) }));

    const garbage = fresh();
    loadOrCreateDevCa(garbage);
    writeFileSync(join(garbage, 'root.key.pem'), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', { mode: 0o600 });
    expect(() => loadOrCreateDevCa(garbage)).toThrow(expect.objectContaining({ code: 'DEVCA_CORRUPT' }));
  });

  it('renews an intermediate close to expiry under the same root', () => {
    const dir = fresh();
    const t0 = new Date('2030-01-01T00:00:00Z');
    const a = loadOrCreateDevCa(dir, { now: t0 });
    const oldInt = parseCertificate(a.intermediate.certDer);
    const later = new Date(oldInt.notAfter.getTime() - 10 * 24 * HOUR);
    const b = loadOrCreateDevCa(dir, { now: later });
    expect(b.trustRoot.fingerprint).toBe(a.trustRoot.fingerprint);
    const newInt = parseCertificate(b.intermediate.certDer);
    expect(newInt.fingerprint).not.toBe(oldInt.fingerprint);
    expect(newInt.notAfter.getTime()).toBeGreaterThan(oldInt.notAfter.getTime());
    expect(() => verifyChain(b.issueAttestationLeaf('x', later).certDer, [b.root.certDer, b.intermediate.certDer], a.trustRoot)).not.toThrow();
    // Persisted: a third load sees the renewed intermediate, and the directory holds only the CA files.
    expect(parseCertificate(loadOrCreateDevCa(dir, { now: later }).intermediate.certDer).fingerprint).toBe(newInt.fingerprint);
    expect(readdirSync(dir).sort()).toEqual(files);
    for (const f of files) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
  });

  it('processes racing to create the same CA end up with one root', async () => {
    // Bundle the module and start several processes at once against one directory.
    const { build } = await import('esbuild');
    const entry = join(tmp, 'race-entry.ts');
    writeFileSync(
      entry,
      `import { loadOrCreateDevCa } from ${JSON.stringify(join(import.meta.dirname, 'dev-ca.ts'))};\n` +
        `process.stdout.write(loadOrCreateDevCa(process.argv[2]).trustRoot.fingerprint);\n`,
    );
    const bundle = join(tmp, 'race.mjs');
    await build({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', outfile: bundle, logLevel: 'silent' });
    const dir = fresh();
    const { spawn } = await import('node:child_process');
    const run = () =>
      new Promise<string>((resolve, reject) => {
        const p = spawn(process.execPath, [bundle, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (err += d));
        p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`))));
      });
    const prints = await Promise.all([run(), run(), run(), run()]);
    expect(new Set(prints).size).toBe(1);
    expect(prints[0]).toMatch(/^[0-9A-F]{64}$/);
    expect(loadOrCreateDevCa(dir).trustRoot.fingerprint).toBe(prints[0]);
    expect(readdirSync(dir).sort()).toEqual(files);
    expect(readdirSync(join(dir, '..'))).toEqual(['ca']);
  });

  it('refuses an expired root', () => {
    const dir = fresh();
    loadOrCreateDevCa(dir, { now: new Date('2030-01-01T00:00:00Z') });
    expect(() => loadOrCreateDevCa(dir, { now: new Date('2060-01-01T00:00:00Z') })).toThrow(expect.objectContaining({ code: 'DEVCA_EXPIRED' }));
  });

  it('refuses a bad path', () => {
    expect(() => loadOrCreateDevCa('')).toThrow(expect.objectContaining({ code: 'DEVCA_BAD_DIR' }));
    const file = join(tmp, 'plain-file');
    writeFileSync(file, 'x');
    expect(() => loadOrCreateDevCa(file)).toThrow(expect.objectContaining({ code: 'DEVCA_BAD_DIR' }));
  });
});

// Keep the type import honest: DevCa is what both helpers return.
const _typecheck: DevCa[] = [ca, other];
void _typecheck;
