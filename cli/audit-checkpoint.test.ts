/**
 * `audit checkpoint --socket S --nonce HEX` against a fake signing socket that plays the untrusted
 * host: a stale checkpoint (no nonce, or another nonce) is refused with exit 1 and nothing is
 * written; a checkpoint with the nonce sent is written and its seq, head, audit key and enclave
 * time are reported (text and --json); with --root the attestation document that comes with it
 * must verify, carry the nonce and bind the checkpoint's audit key.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseCheckpoint } from '../common/audit/checkpoint.js';
import { parseHex, toHex } from '../common/bytes.js';
import { createManifest } from '../attestation/manifest-format.js';
import { signManifest } from '../attestation/manifest-signature.js';
import { derToPem } from '../attestation/roots.js';
import { simulatedImagePcrs } from '../enclave/nsm/simulated.js';
import type { AuditLog } from '../enclave/audit/log.js';
import { auditCa, buildChain } from '../test/audit-chain.js';
import { main } from './main.js';

const dir = mkdtempSync(join(tmpdir(), 'es-audit-cp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const rootPem = join(dir, 'dev-root.pem');
writeFileSync(rootPem, derToPem(auditCa.root.certDer));
const NONCE = 'ab'.repeat(32);

let servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  servers = [];
});

let sockets = 0;
/** A signing socket whose signer_auditCheckpoint answers what `answer` builds from the nonce it was sent. */
async function fakeSocket(answer: (nonce: Uint8Array | undefined) => Promise<{ checkpoint: Uint8Array; attestation?: Uint8Array | null }>): Promise<string> {
  const path = join(dir, `s${sockets++}.sock`);
  const srv = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: number; params: { nonce?: string } };
        const a = await answer(body.params.nonce === undefined ? undefined : parseHex(body.params.nonce));
        // `seq` as the host claims it (the CLI reads the signed one): here always 3.
        res.end(JSON.stringify({ jsonrpc: '2.0', id: body.id, result: { checkpoint: `0x${toHex(a.checkpoint)}`, attestation: a.attestation ? Buffer.from(a.attestation).toString('base64') : '', seq: 3 } }));
      })();
    });
  });
  await new Promise<void>((r) => srv.listen(path, r));
  servers.push(srv);
  return path;
}

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (s) => void (out += s), stderr: (s) => void (err += s) });
  return { code, out, err };
}

let n = 0;
const outFile = (): string => join(dir, `cp-${n++}.hex`);

/** A log that has moved on since `stale` was taken: the host keeps the old checkpoint. */
async function movedOn(): Promise<{ log: AuditLog; stale: Uint8Array }> {
  const chain = await buildChain(3);
  const stale = chain.log.checkpoint(); // seq 3, no nonce, taken long ago
  for (let i = 0; i < 5; i++) chain.log.append({ kind: 'key.create', decision: 'done', principal: 'host', op: 'key.create', keyId: `k${i}` });
  return { log: chain.log, stale };
}

describe('audit checkpoint --nonce: the checkpoint must carry the nonce sent', () => {
  it('a host answering with an old checkpoint without a nonce (the review case): exit 1, nothing written', async () => {
    const { stale } = await movedOn();
    const sock = await fakeSocket(async () => ({ checkpoint: stale }));
    const out = outFile();
    const r = await run('audit', 'checkpoint', '--socket', sock, '--nonce', NONCE, '--out', out);
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect(r.err).toMatch(/AUDIT_CHECKPOINT_NONCE/);
    expect(r.err).toMatch(/carries no nonce, not the nonce sent/);
    expect(r.err).toMatch(/seq 3/);
    const j = await run('audit', 'checkpoint', '--socket', sock, '--nonce', NONCE, '--json');
    expect(j.code).toBe(1);
    expect(JSON.parse(j.out)).toMatchObject({ valid: false, error: { code: 'AUDIT_CHECKPOINT_NONCE' } });
  });

  it('a checkpoint answering another nonce (an old fresh one, replayed): exit 1, nothing written', async () => {
    const { log } = await movedOn();
    const old = log.checkpoint(new Uint8Array(32).fill(0xcd));
    const sock = await fakeSocket(async () => ({ checkpoint: old }));
    const out = outFile();
    const r = await run('audit', 'checkpoint', '--socket', sock, '--nonce', NONCE, '--out', out);
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect(r.err).toContain(`carries nonce ${'cd'.repeat(32)}, not the nonce sent (${NONCE})`);
    // A prefix of the nonce sent is not the nonce sent either.
    const prefix = await fakeSocket(async (nonce) => ({ checkpoint: log.checkpoint(nonce!.subarray(0, 16)) }));
    expect((await run('audit', 'checkpoint', '--socket', prefix, '--nonce', NONCE)).code).toBe(1);
  });

  it('a checkpoint with the nonce sent: exit 0, written, and seq / head / audit key / enclave time reported', async () => {
    const { log } = await movedOn();
    const sock = await fakeSocket(async (nonce) => ({ checkpoint: log.checkpoint(nonce), attestation: await log.attest(nonce) }));
    const out = outFile();
    const r = await run('audit', 'checkpoint', '--socket', sock, '--nonce', `0x${NONCE}`, '--out', out);
    expect(r.code, r.err).toBe(0);
    const body = parseCheckpoint(parseHex(readFileSync(out, 'utf8').trim())!).body;
    expect(body.seq).toBe(8);
    expect(toHex(body.nonce!)).toBe(NONCE);
    expect(r.err).toContain(`checkpoint of seq 8 (head ${toHex(body.head).slice(0, 16)}…) written to ${out}`);
    expect(r.err).toContain(`head         ${toHex(body.head)}`);
    expect(r.err).toContain(`audit key    ${toHex(log.auditKey)}`);
    expect(r.err).toContain(`enclave time ${new Date(body.time).toISOString()}`);
    expect(r.err).toMatch(/matches the one sent: fresh/);

    const j = await run('audit', 'checkpoint', '--socket', sock, '--nonce', NONCE, '--json');
    expect(j.code).toBe(0);
    const rep = JSON.parse(j.out);
    expect(rep).toMatchObject({ valid: true, seq: 8, auditKey: toHex(log.auditKey), nonce: NONCE, fresh: true, attestation: { verified: false, present: true } });
    expect(parseCheckpoint(parseHex(rep.checkpoint)!).body.seq).toBe(8);
    expect(new Date(rep.time).getTime()).toBe(rep.timeMs);

    // Without --out, standard output is the checkpoint hex alone (what `> file` keeps).
    const plain = await run('audit', 'checkpoint', '--socket', sock, '--nonce', NONCE);
    expect(plain.code).toBe(0);
    expect(plain.out).toMatch(/^[0-9a-f]+\n$/);
  });

  it('without --nonce the checkpoint is still written (exit 0), with a warning that nothing proves it fresh', async () => {
    const { stale } = await movedOn();
    const sock = await fakeSocket(async () => ({ checkpoint: stale }));
    const r = await run('audit', 'checkpoint', '--socket', sock, '--json');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.out);
    expect(rep).toMatchObject({ seq: 3, nonce: null, fresh: false, attestation: { verified: false, present: false } });
    expect(rep.warnings.join('\n')).toMatch(/no --nonce: nothing proves this checkpoint is fresh/);
  });

  it('a checkpoint whose signature does not verify under the audit key it names: exit 1, nothing written', async () => {
    const { log } = await movedOn();
    const sock = await fakeSocket(async (nonce) => {
      const cp = log.checkpoint(nonce);
      cp[cp.length - 1] = cp.at(-1)! ^ 1;
      return { checkpoint: cp };
    });
    const out = outFile();
    const r = await run('audit', 'checkpoint', '--socket', sock, '--nonce', NONCE, '--out', out);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/AUDIT_SIGNATURE/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('audit checkpoint --root / --verify-attestation: the attestation that comes with it', () => {
  it('a document from the dev root that carries the nonce and binds the audit key: verified, PCRs reported', async () => {
    const { log } = await movedOn();
    const sock = await fakeSocket(async (nonce) => ({ checkpoint: log.checkpoint(nonce), attestation: await log.attest(nonce) }));
    const r = await run('audit', 'checkpoint', '--socket', sock, '--nonce', NONCE, '--root', rootPem, '--json');
    expect(r.code, r.err).toBe(0);
    const rep = JSON.parse(r.out);
    expect(rep.attestation).toMatchObject({ verified: true, debug: false, policyHash: null });
    expect(Object.keys(rep.attestation.pcrs)).toEqual(expect.arrayContaining(['0', '1', '2']));
    expect(rep.warnings.join('\n')).not.toMatch(/not checked against an attestation/);
    expect(rep.warnings.join('\n')).toMatch(/no --manifest: the attestation document was checked against the root only/);
    const t = await run('audit', 'checkpoint', '--socket', sock, '--nonce', NONCE, '--root', rootPem);
    expect(t.code).toBe(0);
    expect(t.err).toMatch(/attestation {2}verified: .*binds this audit key/);
    expect(t.err).toMatch(/PCR0 {9}[0-9a-f]{96}/);
  });

  it('refused (exit 1, nothing written): another enclave\'s document, one without the nonce, none at all, or the AWS root', async () => {
    const { log } = await movedOn();
    const other = (await buildChain(0)).log;
    const cases: [string, (n: Uint8Array | undefined) => Promise<{ checkpoint: Uint8Array; attestation?: Uint8Array | null }>, string[], RegExp][] = [
      ['another audit key', async (nonce) => ({ checkpoint: log.checkpoint(nonce), attestation: await other.attest(nonce) }), ['--root', rootPem], /binds audit key .*but the checkpoint is signed by/],
      ['no nonce in the document', async (nonce) => ({ checkpoint: log.checkpoint(nonce), attestation: await log.attest() }), ['--root', rootPem], /does not verify: ATTEST_NONCE_MISMATCH/],
      ['no document', async (nonce) => ({ checkpoint: log.checkpoint(nonce) }), ['--root', rootPem], /carries no attestation document/],
      ['the AWS root (default)', async (nonce) => ({ checkpoint: log.checkpoint(nonce), attestation: await log.attest(nonce) }), ['--verify-attestation'], /does not verify: ATTEST_UNTRUSTED_ROOT/],
    ];
    for (const [name, answer, flags, msg] of cases) {
      const sock = await fakeSocket(answer);
      const out = outFile();
      const r = await run('audit', 'checkpoint', '--socket', sock, '--nonce', NONCE, '--out', out, ...flags);
      expect(r.code, name).toBe(1);
      expect(r.err, name).toMatch(/AUDIT_ATTESTATION/);
      expect(r.err, name).toMatch(msg);
      expect(existsSync(out), name).toBe(false);
    }
  });

  it('--manifest: the enclave must run the image a signed manifest names', async () => {
    const { log } = await movedOn(); // the simulated NSM's default image
    const release = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const key = join(dir, 'release.pub.pem');
    writeFileSync(key, release.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    const manifestOf = (imageId?: string): string => {
      const p = simulatedImagePcrs(imageId);
      const file = join(dir, `manifest-${imageId ?? 'default'}.json`);
      const m = createManifest({ image: { name: 'enclave-signer', version: '7.0.0', sourceCommit: 'a'.repeat(40), eifSha256: 'b'.repeat(64) }, pcrs: { 0: toHex(p.get(0)!), 1: toHex(p.get(1)!), 2: toHex(p.get(2)!) } });
      writeFileSync(file, JSON.stringify(signManifest(m, release.privateKey)));
      return file;
    };
    const sock = await fakeSocket(async (nonce) => ({ checkpoint: log.checkpoint(nonce), attestation: await log.attest(nonce) }));
    const ok = await run('audit', 'checkpoint', '--socket', sock, '--nonce', NONCE, '--root', rootPem, '--manifest', manifestOf(), '--manifest-key', key, '--json');
    expect(ok.code, ok.err).toBe(0);
    const rep = JSON.parse(ok.out);
    expect(rep.attestation).toMatchObject({ verified: true, manifest: { name: 'enclave-signer', version: '7.0.0' } });
    expect(rep.warnings).toEqual([]);
    const out = outFile();
    const other = await run('audit', 'checkpoint', '--socket', sock, '--nonce', NONCE, '--root', rootPem, '--manifest', manifestOf('another-image'), '--manifest-key', key, '--out', out);
    expect(other.code).toBe(1);
    expect(other.err).toMatch(/AUDIT_ATTESTATION[\s\S]*ATTEST_PCR_MISMATCH/);
    expect(existsSync(out)).toBe(false);
  });

  it('usage: a bad nonce or a stray argument exits 2', async () => {
    expect((await run('audit', 'checkpoint', '--socket', join(dir, 'none.sock'), '--nonce', 'abcd')).code).toBe(2);
    expect((await run('audit', 'checkpoint', '--socket', join(dir, 'none.sock'), 'extra')).code).toBe(2);
    expect((await run('audit', 'checkpoint')).code).toBe(2);
    expect((await run('audit', 'checkpoint', '--help')).code).toBe(0);
  });
});
