/**
 * `audit verify|export` and `receipt verify`, in-process through main(): a
 * chain produced by real enclave audit logs (simulated NSM, dev CA) and
 * stored in a real keystore verifies with the dev root; a host that edits,
 * deletes or truncates rows is caught with the first bad seq; receipts prove
 * their result and no other.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../common/bytes.js';
import { buildReceipt } from '../common/audit/receipt.js';
import { sha256 } from '../common/audit/record.js';
import { createManifest } from '../attestation/manifest-format.js';
import { signManifest } from '../attestation/manifest-signature.js';
import { derToPem } from '../attestation/roots.js';
import { simulatedImagePcrs } from '../enclave/nsm/simulated.js';
import { openKeystore } from '../parent/keystore.js';
import { auditCa, buildChain, digest } from '../test/audit-chain.js';
import { main } from './main.js';

const dir = mkdtempSync(join(tmpdir(), 'es-audit-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const rootPem = join(dir, 'dev-root.pem');
writeFileSync(rootPem, derToPem(auditCa.root.certDer));

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, {
    stdout: (s) => {
      out += s;
    },
    stderr: (s) => {
      err += s;
    },
  });
  return { code, out, err };
}

let n = 0;
let chain: Uint8Array[];
let checkpointFile: string;
let receiptFile: string;
const result = Uint8Array.from(Buffer.from('11'.repeat(65), 'hex'));

beforeAll(async () => {
  const a = await buildChain(6);
  const b = await buildChain(0, { lastRecord: a.records.at(-1)! });
  const signed = b.log.append({ kind: 'sign', decision: 'allowed', principal: 'backend', op: 'personal_sign', keyId: 'key-0', requestDigest: digest('req'), rule: 'backend-messages', resultDigest: sha256(result) });
  const after = b.log.append({ kind: 'sign', decision: 'denied', principal: 'host', op: 'personal_sign', keyId: 'key-0', requestDigest: digest('req2'), rule: 'deny' });
  chain = [...a.records, ...b.records, signed.bytes, after.bytes];
  checkpointFile = join(dir, 'head.checkpoint');
  writeFileSync(checkpointFile, toHex(b.log.checkpoint()));
  receiptFile = join(dir, 'receipt.json');
  writeFileSync(receiptFile, JSON.stringify(buildReceipt(signed.bytes, b.log.attestation)));
});

async function keystoreWith(records: Uint8Array[]): Promise<string> {
  const path = join(dir, `ks-${n++}.db`);
  const ks = await openKeystore(path);
  await ks.appendAuditRecords(records);
  await ks.close();
  return path;
}

describe('enclave-signer audit verify', () => {
  it('a keystore chain across a restart verifies with the dev root: exit 0, { valid, records, head, gaps, enclaves }', async () => {
    const r = await run('audit', 'verify', '--keystore', await keystoreWith(chain), '--root', rootPem, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ valid: true, records: 10, head: { seq: 9 }, gaps: [] });
    expect(j.enclaves).toHaveLength(2);
    expect(r.err).toContain('NOT the AWS Nitro Enclaves root');
    const t = await run('audit', 'verify', '--keystore', `file://${await keystoreWith(chain)}`, '--root', rootPem);
    expect(t.code).toBe(0);
    expect(t.out).toContain('OK: audit chain verified');
  });

  it('a host that edits one stored byte is caught: exit 1, the first bad seq and why', async () => {
    const path = await keystoreWith(chain);
    const db = new Database(path);
    const row = db.prepare('SELECT record FROM audit_records WHERE seq = 3').get() as { record: Buffer };
    const at = row.record.length - 5;
    row.record[at] = row.record[at]! ^ 0x04;
    db.prepare('UPDATE audit_records SET record = ? WHERE seq = 3').run(row.record);
    db.close();
    const r = await run('audit', 'verify', '--keystore', path, '--root', rootPem, '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out)).toMatchObject({ valid: false, firstBad: { seq: 3, code: 'AUDIT_SIGNATURE' } });
    const t = await run('audit', 'verify', '--keystore', path, '--root', rootPem);
    expect(t.out).toMatch(/first bad seq 3[\s\S]*AUDIT_SIGNATURE/);
  });

  it('a host that deletes a row leaves a gap; one that cuts the tail is caught against a checkpoint', async () => {
    const gap = await run('audit', 'verify', '--keystore', await keystoreWith(chain.filter((_, i) => i !== 4)), '--root', rootPem, '--json');
    expect(gap.code).toBe(1);
    expect(JSON.parse(gap.out)).toMatchObject({ gaps: [{ from: 4, to: 4 }], firstBad: { seq: 5, code: 'AUDIT_GAP' } });
    const cut = await keystoreWith(chain.slice(0, 8));
    expect((await run('audit', 'verify', '--keystore', cut, '--root', rootPem)).code).toBe(0);
    const t = await run('audit', 'verify', '--keystore', cut, '--root', rootPem, '--checkpoint', checkpointFile, '--json');
    expect(t.code).toBe(1);
    expect(JSON.parse(t.out)).toMatchObject({ firstBad: { code: 'AUDIT_TRUNCATED', seq: 9 } });
    // A receipt is an anchor too.
    expect((await run('audit', 'verify', '--keystore', await keystoreWith(chain.slice(0, 7)), '--root', rootPem, '--receipt', receiptFile)).code).toBe(1);
  });

  it('export writes JSON Lines that verify the same way (and catch the same tampering)', async () => {
    const path = await keystoreWith(chain);
    const e = await run('audit', 'export', '--keystore', path);
    expect(e.code).toBe(0);
    const lines = e.out.trim().split('\n');
    expect(lines).toHaveLength(10);
    expect(JSON.parse(lines[0]!)).toMatchObject({ seq: 0, record: toHex(chain[0]!) });
    const jsonl = join(dir, 'chain.jsonl');
    writeFileSync(jsonl, e.out);
    expect((await run('audit', 'verify', '--jsonl', jsonl, '--root', rootPem)).code).toBe(0);
    const out = join(dir, 'chain2.jsonl');
    expect((await run('audit', 'export', '--keystore', path, '--out', out)).code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(e.out);
    lines.splice(2, 1, lines[2]!.replace(/"record":"84/, '"record":"85'));
    writeFileSync(jsonl, `${lines.join('\n')}\nnot json\n`);
    const bad = await run('audit', 'verify', '--jsonl', jsonl, '--root', rootPem, '--json');
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.out)).toMatchObject({ firstBad: { seq: 2, code: 'AUDIT_MALFORMED' } });
    expect(JSON.parse(bad.out).problems.map((p: { code: string }) => p.code)).toContain('AUDIT_MALFORMED');
  });

  it('without the dev root (AWS by default) the dev chain does not verify: the audit key of seq 0 is not attested', async () => {
    const r = await run('audit', 'verify', '--keystore', await keystoreWith(chain), '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out)).toMatchObject({ firstBad: { seq: 0, code: 'AUDIT_ATTESTATION' } });
  });

  it('usage and unreadable inputs exit 2 with a clear message; an empty chain exits 1', async () => {
    expect((await run('audit', 'verify')).code).toBe(2);
    expect((await run('audit', 'verify', '--keystore', 'x', '--jsonl', 'y')).code).toBe(2);
    expect((await run('audit', 'verify', '--keystore', 'x', '--bogus')).code).toBe(2);
    expect((await run('audit', 'frobnicate')).code).toBe(2);
    const pg = await run('audit', 'verify', '--keystore', 'postgres://u:secret@db/ks');
    expect(pg.code).toBe(2);
    expect(pg.err).not.toContain('secret');
    const garbage = join(dir, 'garbage.db');
    writeFileSync(garbage, 'this is not a database'.repeat(100));
    const g = await run('audit', 'verify', '--keystore', garbage);
    expect(g.code).toBe(2);
    expect(g.err).toContain('cannot read keystore');
    expect((await run('audit', 'verify', '--keystore', join(dir, 'missing.db'))).code).toBe(2);
    const empty = await run('audit', 'verify', '--keystore', await keystoreWith([]), '--json');
    expect(empty.code).toBe(1);
    expect(JSON.parse(empty.out)).toMatchObject({ firstBad: { code: 'AUDIT_EMPTY' } });
    expect((await run('audit', 'verify', '--help')).code).toBe(0);
  });
});

describe('enclave-signer audit verify: a damaged database', () => {
  it('a keystore with a smashed page gives a clear, typed failure naming the seq (exit 1), never a crash', async () => {
    const { records } = await buildChain(400);
    const path = await keystoreWith(records);
    const db = new Database(path);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.pragma('journal_mode = DELETE');
    db.close();
    const buf = readFileSync(path);
    const page = 4096;
    const p = Math.floor((buf.length / page) * 0.7);
    buf.fill(0xff, p * page, (p + 1) * page);
    writeFileSync(path, buf);
    const r = await run('audit', 'verify', '--keystore', path, '--root', rootPem, '--json');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j.valid).toBe(false);
    expect(['AUDIT_SOURCE', 'AUDIT_MALFORMED', 'AUDIT_SIGNATURE', 'AUDIT_GAP']).toContain(j.firstBad.code);
    expect(typeof j.firstBad.seq).toBe('number');
    expect(j.firstBad.message).toMatch(/seq \d+/);
  });
});

describe('enclave-signer receipt verify', () => {
  it('--result takes hex or a JSON object; anything else is a usage error (exit 2) that says what was wrong', async () => {
    const bad = await run('receipt', 'verify', receiptFile, '--result', '{"keyId":', '--root', rootPem);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--result is not valid JSON');
    expect((await run('receipt', 'verify', receiptFile, '--result', 'zz', '--root', rootPem)).err).toContain('non-empty hex, or a JSON object');
    // A JSON object against a signature's record: checked as a result object, so it does not match (exit 1).
    const obj = await run('receipt', 'verify', receiptFile, '--result', '{"signature":"0x1111"}', '--root', rootPem, '--json');
    expect(obj.code).toBe(1);
    expect(JSON.parse(obj.out)).toMatchObject({ valid: false, error: { code: 'AUDIT_RECEIPT' } });
  });

  it('a receipt for a personal_sign verifies with its result; the same receipt with another result does not', async () => {
    const ok = await run('receipt', 'verify', receiptFile, '--result', toHex(result), '--root', rootPem, '--json');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({ valid: true, seq: 8, op: 'personal_sign', policyHash: null, rule: 'backend-messages' });
    const other = await run('receipt', 'verify', receiptFile, '--result', `0x${'22'.repeat(65)}`, '--root', rootPem, '--json');
    expect(other.code).toBe(1);
    expect(JSON.parse(other.out)).toMatchObject({ valid: false, seq: 8, error: { code: 'AUDIT_RECEIPT' } });
  });

  it('a receipt fails against the AWS root, with an edited record, or with another enclave\'s attestation', async () => {
    expect((await run('receipt', 'verify', receiptFile, '--result', toHex(result))).code).toBe(1);
    const j = JSON.parse(readFileSync(receiptFile, 'utf8'));
    const edited = join(dir, 'edited.json');
    writeFileSync(edited, JSON.stringify({ ...j, record: j.record.replace(/706572736f6e616c5f7369676e/, '706572736f6e616c5f7369676f') }));
    expect((await run('receipt', 'verify', edited, '--result', toHex(result), '--root', rootPem)).code).toBe(1);
    const a = await buildChain(0);
    const swapped = join(dir, 'swapped.json');
    writeFileSync(swapped, JSON.stringify({ ...j, attestation: Buffer.from(a.log.attestation).toString('base64') }));
    const s = await run('receipt', 'verify', swapped, '--result', toHex(result), '--root', rootPem, '--json');
    expect(s.code).toBe(1);
    expect(JSON.parse(s.out)).toMatchObject({ error: { code: 'AUDIT_ATTESTATION' } });
    expect((await run('receipt', 'verify', receiptFile)).code).toBe(2);
  });
});

describe('audit verify without --manifest: the images are named and the missing check is said out loud', () => {
  // Review finding: without --manifest only the attestation root is checked, so a host that runs an
  // image of its own on Nitro hardware can cut the real chain and continue it with its enclave's
  // hand-over; `audit verify` printed "OK" and nothing about images. The exit status stays 0 (a
  // contract); the output now names each enclave's PCR0/1/2 and warns.
  const release = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const realPcrs = simulatedImagePcrs('real-image');
  const roguePcrs = simulatedImagePcrs('host-built-image');
  let jsonl: string;

  beforeAll(async () => {
    const real = await buildChain(3, { imageId: 'real-image' });
    const rogue = await buildChain(2, { lastRecord: real.records.at(-1)!, imageId: 'host-built-image' });
    jsonl = join(dir, 'rogue.jsonl');
    writeFileSync(jsonl, [...real.records, ...rogue.records].map((r, seq) => JSON.stringify({ seq, record: toHex(r) })).join('\n') + '\n');
  });

  it('a chain continued by an enclave of another image: exit 0 as before, but both images\' PCRs and a loud warning', async () => {
    const r = await run('audit', 'verify', '--jsonl', jsonl, '--root', rootPem);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/OK: audit chain verified/);
    for (const p of [realPcrs, roguePcrs]) for (const i of [0, 1, 2]) expect(r.out).toContain(`PCR${i} ${toHex(p.get(i)!)}`);
    expect(r.out).toMatch(/manifest none: PCRs not checked against a signed manifest/);
    expect(r.out).toMatch(/image {5}changes at seq 4 \(PCR0, PCR1, PCR2 differ/);
    expect(r.err).toMatch(/WARNING: NO MANIFEST: the audit keys were checked only against the attestation root .*ANY Nitro enclave image was accepted/);
    expect(r.err).toMatch(/WARNING: IMAGE CHANGE THAT NOTHING VOUCHED FOR: this chain was written by enclaves of 2 different images .*at seq 4/);
    expect(r.err).toContain(toHex(roguePcrs.get(0)!).slice(0, 16));
  });

  it('--json: each enclave\'s pcrs, imageChanges and the same warnings', async () => {
    const r = await run('audit', 'verify', '--jsonl', jsonl, '--root', rootPem, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.valid).toBe(true);
    expect(j.enclaves.map((e: { pcrs: Record<string, string> }) => e.pcrs['0'])).toEqual([toHex(realPcrs.get(0)!), toHex(roguePcrs.get(0)!)]);
    expect(j.imageChanges).toEqual([
      {
        seq: 4,
        auditKey: j.enclaves[1].auditKey,
        from: { 0: toHex(realPcrs.get(0)!), 1: toHex(realPcrs.get(1)!), 2: toHex(realPcrs.get(2)!) },
        to: { 0: toHex(roguePcrs.get(0)!), 1: toHex(roguePcrs.get(1)!), 2: toHex(roguePcrs.get(2)!) },
        differ: ['PCR0', 'PCR1', 'PCR2'],
      },
    ]);
    expect(j.warnings).toHaveLength(2);
    expect(j.warnings[0]).toMatch(/^NO MANIFEST/);
    expect(j.warnings[1]).toMatch(/^IMAGE CHANGE THAT NOTHING VOUCHED FOR/);
    expect(r.err).toMatch(/WARNING: IMAGE CHANGE/);
  });

  it('one image across a restart: the no-manifest warning, no image change', async () => {
    const r = await run('audit', 'verify', '--keystore', await keystoreWith(chain), '--root', rootPem, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.imageChanges).toEqual([]);
    expect(j.warnings).toHaveLength(1);
    expect(j.warnings[0]).toMatch(/^NO MANIFEST/);
    expect(r.err).not.toMatch(/IMAGE CHANGE/);
  });

  it('with a signed manifest of the real image: no warnings, and the rogue continuation fails (exit 1)', async () => {
    const files = { manifest: join(dir, 'real-image.manifest.json'), key: join(dir, 'release.pub.pem'), good: join(dir, 'real.jsonl') };
    const m = createManifest({
      image: { name: 'enclave-signer', version: '9.9.9', sourceCommit: 'a'.repeat(40), eifSha256: 'b'.repeat(64) },
      pcrs: { 0: toHex(realPcrs.get(0)!), 1: toHex(realPcrs.get(1)!), 2: toHex(realPcrs.get(2)!) },
    });
    writeFileSync(files.manifest, JSON.stringify(signManifest(m, release.privateKey)));
    writeFileSync(files.key, release.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    writeFileSync(files.good, readFileSync(jsonl, 'utf8').split('\n').slice(0, 4).join('\n') + '\n');
    const trust = ['--root', rootPem, '--manifest', files.manifest, '--manifest-key', files.key];
    const ok = await run('audit', 'verify', '--jsonl', files.good, ...trust, '--json');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({ valid: true, warnings: [], imageChanges: [] });
    expect(ok.err).not.toMatch(/NO MANIFEST|WARNING: no --manifest/);
    const t = await run('audit', 'verify', '--jsonl', files.good, ...trust);
    expect(t.out).toMatch(/manifest enclave-signer 9\.9\.9/);
    expect(t.out).toContain(`PCR0 ${toHex(realPcrs.get(0)!)}`);
    const bad = await run('audit', 'verify', '--jsonl', jsonl, ...trust, '--json');
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.out)).toMatchObject({ firstBad: { seq: 4, code: 'AUDIT_ATTESTATION' } });
  });

  it('receipt verify without --manifest warns that any image\'s document is accepted (exit status unchanged)', async () => {
    const r = await run('receipt', 'verify', receiptFile, '--result', toHex(result), '--root', rootPem);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/WARNING: no --manifest: the attestation document is checked only against the attestation root.*ANY Nitro enclave image/);
    // The image it showed is named, so a reader can tell whose it is.
    expect(r.out).toMatch(/ {2}PCR0 {9}[0-9a-f]{96}\n/);
    expect(r.out).toMatch(/manifest {5}none: PCRs not checked against a signed manifest/);
  });
});
