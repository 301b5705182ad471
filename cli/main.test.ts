import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AWS_NITRO_ROOT_G1_PEM, derToPem } from '../attestation/roots.js';
import { parseAttestation } from '../attestation/verify.js';
import { attestationFixtures, fixturePath } from '../test/fixtures.js';
import { moduleAvailable } from './command.js';
import { main } from './main.js';

const fixtures = attestationFixtures();
const valid = fixtures.filter((f) => !f.knownBad);
const knownBad = fixtures.filter((f) => f.knownBad);
const nitro = valid.find((f) => f.name.startsWith('blocky_nitrite_nitro'))!;
const debugFixtures = valid.filter((f) => f.sidecar.debug_mode_pcrs_zero);
const dir = mkdtempSync(join(tmpdir(), 'enclave-signer-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], stdin?: Uint8Array | string): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    stdin: async () => (typeof stdin === 'string' ? new TextEncoder().encode(stdin) : (stdin ?? new Uint8Array(0))),
  });
  return { code, stdout, stderr };
}

function json(r: Run): any {
  return JSON.parse(r.stdout);
}

function tmp(name: string, data: string | Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

const ok = (r: Run) => expect(r.code, r.stderr + r.stdout).toBe(0);

describe('enclave-signer (top level)', () => {
  it('prints help, version, and usage errors with the right status', async () => {
    const help = await run(['--help']);
    ok(help);
    for (const c of ['attest', 'manifest', 'kms', 'eif', 'dev', 'enclave', 'parent', 'kms-local']) expect(help.stdout).toContain(`  ${c}`);
    expect((await run(['-h'])).code).toBe(0);
    const v = await run(['--version']);
    ok(v);
    expect(v.stdout).toBe(`enclave-signer ${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`);
    const none = await run([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Usage: enclave-signer');
    const unknown = await run(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
    expect((await run(['--bogus'])).code).toBe(2);
  });

  it('help works on every level', async () => {
    for (const argv of [['attest', '--help'], ['attest', 'verify', '-h'], ['attest', 'show', '--help'], ['manifest', '-h'], ['manifest', 'create', '--help'], ['manifest', 'sign', '-h'], ['manifest', 'verify', '--help'], ['manifest', 'keygen', '--help'], ['kms', '--help'], ['eif', '--help']]) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(0);
      expect(r.stdout, argv.join(' ')).toMatch(/^Usage: enclave-signer /);
    }
    expect((await run(['attest'])).code).toBe(2);
    expect((await run(['attest', 'frob'])).stderr).toMatch(/unknown command 'attest frob'/);
  });

  it('enclave: a bad --workers or --inline-signing is a usage error (exit 2) naming the flag, before anything starts', async () => {
    const arn = 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000001';
    for (const [flag, value, message] of [
      ['--workers', '0', '--workers must be 1..256'],
      ['--inline-signing', 'yes', '--inline-signing must be on or off'],
    ] as const) {
      const r = await run(['enclave', '--kms-key-arn', arn, flag, value]);
      expect(r.code, flag).toBe(2);
      expect(r.stderr, flag).toContain(message);
    }
    expect((await run(['enclave', '--help'])).stdout).toContain('--inline-signing on|off');
  });

  it('dispatches kms inspect to its module', async () => {
    expect(moduleAvailable('./kms-inspect.js')).toBe(true);
    const r = await run(['kms', 'inspect', '--help']);
    ok(r);
    expect(r.stdout).toMatch(/kms inspect/);
    expect((await run(['kms', 'inspect'])).code).toBe(2);
  });

  it('planned commands say "not available yet" (exit 2) until their module exists', async () => {
    const help = (await run(['--help'])).stdout;
    for (const [argv, spec] of [[['dev'], './dev.js'], [['enclave'], './enclave.js'], [['parent'], './parent.js'], [['kms-local'], './kms-local.js'], [['eif', 'describe'], './eif-describe.js']] as const) {
      const r = await run([...argv, '--help']);
      if (moduleAvailable(spec)) {
        expect(r.stderr).not.toMatch(/not available yet/);
      } else {
        expect(r.code, argv.join(' ')).toBe(2);
        expect(r.stderr).toContain(`'enclave-signer ${argv.join(' ')}' is not available yet`);
        if (argv.length === 1) expect(help).toMatch(new RegExp(`  ${argv[0]} .*\\(planned`));
      }
    }
  });
});

describe('dev', () => {
  it('--enclave-node names a file that does not exist: usage error (exit 2), nothing started', async () => {
    const r = await run(['dev', '--data-dir', join(dir, 'never'), '--enclave-node', join(dir, 'no-such-node')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--enclave-node: no such file: ${join(dir, 'no-such-node')}`);
  });

  it('--enclave-allocator names a file that does not exist: usage error (exit 2), nothing started', async () => {
    const r = await run(['dev', '--data-dir', join(dir, 'never'), '--enclave-allocator', join(dir, 'no-such-lib.so')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--enclave-allocator: no such file: ${join(dir, 'no-such-lib.so')}`);
  });

  it('--enclave-allocator names a file ld.so cannot preload: dev stops with exit 2 instead of running on another malloc', async () => {
    // ld.so only warns and goes on with glibc's malloc; dev checks the enclave process's mappings.
    const lib = join(dir, 'not-a-library.so');
    writeFileSync(lib, 'not an ELF file\n');
    const r = await run(['dev', '--data-dir', join(dir, 'not-preloaded'), '--enclave-allocator', lib]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--enclave-allocator: ${lib} is not loaded in the enclave process`);
    expect(r.stderr).not.toContain('internal error');
  }, 60_000);
});

describe('attest verify', () => {
  for (const f of valid) {
    const debug = f.sidecar.debug_mode_pcrs_zero;
    it(`${f.name}: --at doc --json → 0 with the sidecar's module id and PCRs`, async () => {
      const r = await run(['attest', 'verify', fixturePath('attestation', f.name), '--at', 'doc', '--json', ...(debug ? ['--allow-debug'] : [])]);
      ok(r);
      const j = json(r);
      expect(j.valid).toBe(true);
      expect(j.moduleId).toBe(f.sidecar.module_id);
      expect(j.pcrs).toEqual(f.sidecar.all_pcrs);
      expect(j.timestamp).toBe(new Date(f.sidecar.timestamp_raw).toISOString());
      expect(j.verifiedAt).toBe(j.timestamp);
      expect(j.checks).toEqual(['cose', 'payload', 'chain', 'signature', 'validity', 'debug']);
      expect(j.root).toEqual({ name: 'AWS_NitroEnclaves_Root-G1', fingerprint: '641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B', aws: true });
      expect(j.debug).toBe(debug);
    });

    it(`${f.name}: without --at → 1, "certificate expired"`, async () => {
      const r = await run(['attest', 'verify', fixturePath('attestation', f.name), '--allow-debug']);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/FAILED: attestation document did not verify/);
      expect(r.stderr).toMatch(/error {3}ATTEST_CERT_EXPIRED/);
      expect(r.stderr).toMatch(/check {3}validity/);
      expect(r.stderr).toMatch(/reason {2}certificate expired/);
      expect(r.stderr).toMatch(/hint {4}.*--at doc/);
      const j = json(await run(['attest', 'verify', fixturePath('attestation', f.name), '--allow-debug', '--json']));
      expect(j).toEqual({ valid: false, error: { code: 'ATTEST_CERT_EXPIRED', check: 'validity', message: expect.stringMatching(/certificate expired/), hint: expect.any(String) } });
    });
  }

  for (const f of knownBad) {
    it(`${f.name}: KNOWN_BAD → 1 with check 'chain'`, async () => {
      const r = await run(['attest', 'verify', fixturePath('attestation', f.name), '--at', 'doc', '--allow-debug', '--json']);
      expect(r.code).toBe(1);
      const j = json(r);
      expect(j.valid).toBe(false);
      expect(j.error.check).toBe('chain');
      expect(j.error.code).toMatch(/^ATTEST_(CHAIN|UNTRUSTED_ROOT)$/);
    });
  }

  it('debug documents need --allow-debug', async () => {
    expect(debugFixtures.length).toBeGreaterThanOrEqual(2);
    for (const f of debugFixtures) {
      const r = await run(['attest', 'verify', fixturePath('attestation', f.name), '--at', 'doc', '--json']);
      expect(r.code).toBe(1);
      expect(json(r).error).toMatchObject({ code: 'ATTEST_DEBUG_MODE', check: 'debug', hint: expect.stringContaining('--allow-debug') });
      const ok2 = await run(['attest', 'verify', fixturePath('attestation', f.name), '--at', 'doc', '--json', '--allow-debug']);
      ok(ok2);
      expect(json(ok2).debug).toBe(true);
    }
  });

  it('prints a human summary by default', async () => {
    const r = await run(['attest', 'verify', fixturePath('attestation', nitro.name), '--at', 'doc']);
    ok(r);
    expect(r.stdout).toMatch(/^OK: attestation document verified/);
    expect(r.stdout).toContain(`module id    ${nitro.sidecar.module_id}`);
    expect(r.stdout).toContain('timestamp    2024-09-07T14:37:39.545Z');
    expect(r.stdout).toContain("(the document's own timestamp)");
    expect(r.stdout).toContain('root         AWS_NitroEnclaves_Root-G1 (SHA-256 641A0321');
    expect(r.stdout).toContain('checks       cose, payload, chain, signature, validity, debug');
    expect(r.stdout).toContain(`     0  ${nitro.sidecar.all_pcrs['0']}`);
    expect(r.stdout).toContain(`    15  ${nitro.sidecar.all_pcrs['15']}`);
  });

  it('reads base64 and hex text, from files and stdin', async () => {
    const b64 = Buffer.from(nitro.bytes).toString('base64').replace(/(.{76})/g, '$1\n');
    const p = tmp('doc.b64', `${b64}\n`);
    for (const r of [
      await run(['attest', 'verify', p, '--at', 'doc', '--json']),
      await run(['attest', 'verify', '-', '--at', 'doc', '--json'], b64),
      await run(['attest', 'verify', '-', '--at', 'doc', '--json'], nitro.bytes),
      await run(['attest', 'verify', tmp('doc.hex', Buffer.from(nitro.bytes).toString('hex')), '--at', 'doc', '--json']),
    ]) {
      ok(r);
      expect(json(r).moduleId).toBe(nitro.sidecar.module_id);
    }
    // The source's own base64 (blocky ships .b64 files): same document either way.
    expect(Buffer.from(readFileSync(p, 'utf8').replace(/\s/g, ''), 'base64')).toEqual(Buffer.from(nitro.bytes));
  });

  it('checks --nonce, --user-data, --public-key and --pcr', async () => {
    const ones = '01'.repeat(1024);
    const base = ['attest', 'verify', fixturePath('attestation', nitro.name), '--at', 'doc', '--json'];
    const good = await run([...base, '--nonce', ones, '--user-data', ones, '--public-key', `0x${ones}`, '--pcr', `4=${nitro.sidecar.all_pcrs['4']}`, '--pcr', `0=${nitro.sidecar.all_pcrs['0']!.toUpperCase()}`]);
    ok(good);
    expect(json(good).checks).toEqual(['cose', 'payload', 'chain', 'signature', 'validity', 'debug', 'nonce', 'public_key', 'user_data', 'pcrs']);
    const badNonce = await run([...base, '--nonce', '02'.repeat(1024)]);
    expect(badNonce.code).toBe(1);
    expect(json(badNonce).error).toMatchObject({ code: 'ATTEST_NONCE_MISMATCH', check: 'nonce' });
    const textNonce = await run(['attest', 'verify', fixturePath('attestation', nitro.name), '--at', 'doc', '--nonce', 'abcd']);
    expect(textNonce.code).toBe(1);
    expect(textNonce.stderr).toMatch(/ATTEST_NONCE_MISMATCH/);
    const badPcr = await run([...base, '--pcr', `2=${'00'.repeat(48)}`]);
    expect(badPcr.code).toBe(1);
    expect(json(badPcr).error).toMatchObject({ code: 'ATTEST_PCR_MISMATCH', check: 'pcrs' });
    const badUserData = await run([...base, '--user-data', 'ff']);
    expect(json(badUserData).error.code).toBe('ATTEST_USER_DATA_MISMATCH');
  });

  it('--at takes an explicit time', async () => {
    const within = await run(['attest', 'verify', fixturePath('attestation', nitro.name), '--at', '2024-09-07T15:00:00Z', '--json']);
    ok(within);
    expect(json(within).verifiedAt).toBe('2024-09-07T15:00:00.000Z');
    const before = await run(['attest', 'verify', fixturePath('attestation', nitro.name), '--at', '2024-09-07T14:00:00Z', '--json']);
    expect(before.code).toBe(1);
    expect(json(before).error.code).toBe('ATTEST_CERT_NOT_YET_VALID');
  });

  it('--root trusts another root explicitly and says it is not AWS', async () => {
    const mock = knownBad.find((f) => f.name.includes('mockCA'))!;
    const rootPem = tmp('mock-root.pem', derToPem(parseAttestation(mock.bytes).doc.cabundle[0]!));
    const r = await run(['attest', 'verify', fixturePath('attestation', mock.name), '--root', rootPem, '--at', 'doc', '--json']);
    ok(r);
    expect(json(r).root).toMatchObject({ name: 'custom root CN=root', aws: false });
    expect(r.stderr).toMatch(/NOT the AWS Nitro Enclaves root/);
    const text = await run(['attest', 'verify', fixturePath('attestation', mock.name), '--root', rootPem, '--at', 'doc']);
    ok(text);
    expect(text.stdout).toMatch(/root {9}custom root CN=root .*NOT the AWS Nitro Enclaves root/);
    // The mock root does not make a real AWS document pass.
    const aws = await run(['attest', 'verify', fixturePath('attestation', nitro.name), '--root', rootPem, '--at', 'doc', '--json']);
    expect(aws.code).toBe(1);
    expect(json(aws).error.check).toBe('chain');
    // Passing AWS's own root explicitly is recognized as AWS's.
    const awsRoot = await run(['attest', 'verify', fixturePath('attestation', nitro.name), '--root', tmp('aws.pem', AWS_NITRO_ROOT_G1_PEM), '--at', 'doc', '--json']);
    ok(awsRoot);
    expect(json(awsRoot).root.aws).toBe(true);
    expect(awsRoot.stderr).toBe('');
  });

  it('bad invocations exit 2 with usage on stderr', async () => {
    const doc = fixturePath('attestation', nitro.name);
    const cases: [string[], RegExp][] = [
      [['attest', 'verify'], /expected 1 argument, got 0/],
      [['attest', 'verify', doc, doc], /expected 1 argument, got 2/],
      [['attest', 'verify', doc, '--bogus'], /unknown option --bogus/],
      [['attest', 'verify', doc, '--nonce', 'xyz'], /--nonce must be hex/],
      [['attest', 'verify', doc, '--nonce'], /--nonce needs a value/],
      [['attest', 'verify', doc, '--at', 'tomorrow'], /--at must be/],
      [['attest', 'verify', doc, '--pcr', '0=zz'], /--pcr 0 must be hex/],
      [['attest', 'verify', doc, '--json=yes'], /--json takes no value/],
      [['attest', 'verify', doc, '--manifest', 'm.json'], /--manifest needs --manifest-key/],
      [['attest', 'verify', doc, '--manifest-key', 'k.pem'], /without --manifest/],
      [['attest', 'verify', doc, '--manifest', 'm.json', '--manifest-key-id', 'abc'], /--manifest-key-id must be 64 hex/],
    ];
    for (const [argv, msg] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).toContain('Usage: enclave-signer attest verify');
    }
  });

  it('unusable operator files exit 2; unusable documents exit 1', async () => {
    const missing = await run(['attest', 'verify', join(dir, 'nope.cbor')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read attestation document .*nope\.cbor: no such file/);
    const badRoot = await run(['attest', 'verify', fixturePath('attestation', nitro.name), '--root', tmp('bad-root.pem', 'hello')]);
    expect(badRoot.code).toBe(2);
    expect(badRoot.stderr).toMatch(/--root .* is not a PEM or DER certificate/);
    const garbage = await run(['attest', 'verify', tmp('garbage.bin', new Uint8Array([0xff, 0xfe, 0x00])), '--json']);
    expect(garbage.code).toBe(1);
    expect(json(garbage).error).toMatchObject({ code: 'ATTEST_INPUT', check: 'input' });
    const truncated = await run(['attest', 'verify', '-', '--json'], nitro.bytes.subarray(0, 500));
    expect(truncated.code).toBe(1);
    expect(json(truncated).valid).toBe(false);
    const huge = await run(['attest', 'verify', tmp('huge.b64', 'A'.repeat(300_000))]);
    expect(huge.code).toBe(2);
    expect(huge.stderr).toMatch(/limit/);
  });
});

describe('attest show', () => {
  it('decodes without verifying, and says so', async () => {
    const r = await run(['attest', 'show', fixturePath('attestation', nitro.name)]);
    ok(r);
    expect(r.stdout).toMatch(/^UNVERIFIED: decoded only/);
    expect(r.stdout.trimEnd()).toMatch(/UNVERIFIED: decoded only[^\n]*$/);
    expect(r.stdout).toContain(nitro.sidecar.module_id);
    expect(r.stdout).toContain(nitro.sidecar.all_pcrs['0']);
    expect(r.stdout).toContain('CN=aws.nitro-enclaves');
    const j = json(await run(['attest', 'show', fixturePath('attestation', nitro.name), '--json']));
    expect(j).toMatchObject({ verified: false, encoding: 'cbor', moduleId: nitro.sidecar.module_id, digest: 'SHA384', timestampMs: nitro.sidecar.timestamp_raw, pcrs: nitro.sidecar.all_pcrs });
    expect(j.warning).toMatch(/UNVERIFIED/);
    expect(j.nonce).toBe(nitro.sidecar.nonce.hex);
    expect(j.cabundle).toHaveLength(4);
    expect(j.cabundle[0].subject).toBe('CN=aws.nitro-enclaves,OU=AWS,O=Amazon,C=US'.split(',').reverse().join(','));
  });

  it('shows what a known-bad document claims (it decodes; only verify rejects it)', async () => {
    const mock = knownBad.find((f) => f.name.includes('mockCA'))!;
    const r = await run(['attest', 'show', fixturePath('attestation', mock.name), '--json']);
    ok(r);
    expect(json(r)).toMatchObject({ verified: false, moduleId: mock.sidecar.module_id, userData: 'abcdef', publicKey: '12345678', nonce: null });
  });

  it('fails on what is not a document', async () => {
    const r = await run(['attest', 'show', '-', '--json'], 'aGVsbG8=');
    expect(r.code).toBe(1);
    expect(json(r)).toMatchObject({ verified: false, error: { check: expect.any(String) } });
    expect((await run(['attest', 'show'])).code).toBe(2);
  });
});

describe('manifest commands', () => {
  const s = nitro.sidecar;
  const createArgs = (extra: string[] = []) => [
    'manifest', 'create', '--name', 'enclave-signer', '--version', '0.1.0', '--commit', 'A'.repeat(40), '--eif-sha256', 'b'.repeat(64),
    '--pcr0', s.all_pcrs['0']!, '--pcr1', `0x${s.all_pcrs['1']!.toUpperCase()}`, '--pcr2', s.all_pcrs['2']!, '--pcr8', s.all_pcrs['8']!,
    '--created-at', '2024-09-07T00:00:00Z', '--input', 'lockfileSha256=' + 'c'.repeat(64), '--input', 'blobs.init=' + 'D'.repeat(64), '--input', 'other.ci=github', ...extra,
  ];

  for (const alg of ['ES384', 'Ed25519'] as const) {
    it(`keygen → create → sign → verify → attest verify --manifest (${alg})`, async () => {
      const prefix = join(dir, `release-${alg}`);
      const kg = await run(['manifest', 'keygen', '--alg', alg, '--out', prefix]);
      ok(kg);
      const keyId = /^keyId ([0-9a-f]{64})\n$/.exec(kg.stdout)?.[1];
      expect(keyId).toBeDefined();
      expect(statSync(`${prefix}.key.pem`).mode & 0o777).toBe(0o600);
      expect(readFileSync(`${prefix}.pub.pem`, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/);
      const again = await run(['manifest', 'keygen', '--alg', alg, '--out', prefix]);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/file exists/);

      const created = await run(createArgs(['--out', join(dir, `m-${alg}.json`)]));
      ok(created);
      const m = JSON.parse(readFileSync(join(dir, `m-${alg}.json`), 'utf8'));
      expect(m.image.sourceCommit).toBe('a'.repeat(40));
      expect(m.pcrs['1']).toBe(s.all_pcrs['1']);
      expect(m.match).toEqual([0, 1, 2]);
      expect(m.buildInputs).toEqual({ lockfileSha256: 'c'.repeat(64), blobs: { init: 'd'.repeat(64) }, other: { ci: 'github' } });
      expect(m.createdAt).toBe('2024-09-07T00:00:00.000Z');

      const signedPath = join(dir, `signed-${alg}.json`);
      const sign = await run(['manifest', 'sign', join(dir, `m-${alg}.json`), '--key', `${prefix}.key.pem`, '--out', signedPath]);
      ok(sign);
      expect(sign.stderr).toContain(`signed with ${alg} key ${keyId}`);

      const verify = await run(['manifest', 'verify', signedPath, '--key', `${prefix}.pub.pem`, '--json']);
      ok(verify);
      expect(json(verify)).toEqual({ valid: true, keyId, alg, manifest: m });
      const verifyText = await run(['manifest', 'verify', signedPath, '--key-id', keyId!]);
      ok(verifyText);
      expect(verifyText.stdout).toMatch(/^OK: manifest signature verified/);

      const av = await run(['attest', 'verify', fixturePath('attestation', nitro.name), '--at', 'doc', '--json', '--manifest', signedPath, '--manifest-key', `${prefix}.pub.pem`]);
      ok(av);
      expect(json(av).checks).toEqual(['manifest', 'cose', 'payload', 'chain', 'signature', 'validity', 'debug', 'pcrs']);
      expect(json(av).manifest).toEqual({ ...m.image, match: [0, 1, 2], keyId });
      const avText = await run(['attest', 'verify', fixturePath('attestation', nitro.name), '--at', 'doc', '--manifest', signedPath, '--manifest-key-id', keyId!]);
      ok(avText);
      expect(avText.stdout).toMatch(/manifest {5}enclave-signer 0\.1\.0 \(commit a{40}\), signed by key/);

      // Another document (different PCRs) fails against this manifest.
      const other = valid.find((f) => f.name.startsWith('tkhq'))!;
      const mismatch = await run(['attest', 'verify', fixturePath('attestation', other.name), '--at', 'doc', '--json', '--manifest', signedPath, '--manifest-key', `${prefix}.pub.pem`]);
      expect(mismatch.code).toBe(1);
      expect(json(mismatch).error).toMatchObject({ code: 'ATTEST_PCR_MISMATCH', check: 'pcrs' });
    });
  }

  it('rejects tampered, untrusted and flipped manifests', async () => {
    const prefix = join(dir, 'release-ES384');
    const signedPath = join(dir, 'signed-ES384.json');
    const signed = JSON.parse(readFileSync(signedPath, 'utf8'));
    const stranger = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const untrusted = await run(['manifest', 'verify', signedPath, '--key', tmp('stranger.pub.pem', stranger), '--json']);
    expect(untrusted.code).toBe(1);
    expect(json(untrusted).error).toMatchObject({ code: 'ATTEST_MANIFEST', check: 'manifest', message: expect.stringMatching(/not a trusted key/) });

    const flipped = structuredClone(signed);
    flipped.manifest.pcrs['0'] = 'f' + flipped.manifest.pcrs['0'].slice(1);
    const flippedPath = tmp('flipped.json', JSON.stringify(flipped));
    const v = await run(['manifest', 'verify', flippedPath, '--key', `${prefix}.pub.pem`]);
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/ATTEST_MANIFEST[\s\S]*does not verify/);
    const av = await run(['attest', 'verify', fixturePath('attestation', nitro.name), '--at', 'doc', '--json', '--manifest', flippedPath, '--manifest-key', `${prefix}.pub.pem`]);
    expect(av.code).toBe(1);
    expect(json(av).error.check).toBe('manifest');

    // A manifest honestly signed with a flipped PCR0 is a PCR mismatch, not a manifest error.
    const mFlip = tmp('m-flip.json', readFileSync(join(dir, 'm-ES384.json'), 'utf8').replace(s.all_pcrs['0']!, 'f' + s.all_pcrs['0']!.slice(1)));
    ok(await run(['manifest', 'sign', mFlip, '--key', `${prefix}.key.pem`, '--out', join(dir, 'signed-flip.json')]));
    const pcrFail = await run(['attest', 'verify', fixturePath('attestation', nitro.name), '--at', 'doc', '--json', '--manifest', join(dir, 'signed-flip.json'), '--manifest-key', `${prefix}.pub.pem`]);
    expect(pcrFail.code).toBe(1);
    expect(json(pcrFail).error).toMatchObject({ code: 'ATTEST_PCR_MISMATCH', check: 'pcrs' });

    const extra = tmp('extra.json', JSON.stringify({ ...signed, comment: 'x' }));
    expect((await run(['manifest', 'verify', extra, '--key', `${prefix}.pub.pem`])).code).toBe(1);
  });

  it('manifest usage errors exit 2', async () => {
    const prefix = join(dir, 'release-ES384');
    const cases: [string[], RegExp][] = [
      [['manifest', 'create', '--name', 'x'], /missing --version, --commit, --eif-sha256, --pcr0, --pcr1, --pcr2/],
      [createArgs(['--input', 'compiler=gcc']), /unknown --input key "compiler"/],
      [createArgs(['--input', 'nope']), /--input must be key=value/],
      [createArgs(['--match', '0,3']), /match\[1\]/],
      [createArgs(['--input', 'blobs.bad name=' + 'a'.repeat(64)]), /bad name/],
      [['manifest', 'create', ...createArgs().slice(2).map((a) => (a === s.all_pcrs['2'] ? 'abcd' : a))], /--pcr2 must be 48 bytes/],
      [['manifest', 'sign', join(dir, 'm-ES384.json')], /missing --key/],
      [['manifest', 'verify', join(dir, 'signed-ES384.json')], /missing --key/],
      [['manifest', 'keygen', '--alg', 'RSA', '--out', join(dir, 'x')], /--alg must be ES384 or Ed25519/],
      [['manifest', 'keygen', '--alg', 'ES384'], /missing --out/],
    ];
    for (const [argv, msg] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr, argv.join(' ')).toMatch(msg);
    }
    const pubAsPrivate = await run(['manifest', 'sign', join(dir, 'm-ES384.json'), '--key', `${prefix}.pub.pem`]);
    expect(pubAsPrivate.code).toBe(2);
    expect(pubAsPrivate.stderr).toMatch(/not a PEM private key/);
    const privAsPublic = await run(['manifest', 'verify', join(dir, 'signed-ES384.json'), '--key', `${prefix}.key.pem`]);
    expect(privAsPublic.code).toBe(2);
    expect(privAsPublic.stderr).toMatch(/holds a private key/);
    expect(privAsPublic.stderr).not.toMatch(/BEGIN|MI[GH]/);
  });

  it('debug (all-zero) manifests need --allow-debug at every step', async () => {
    const z = '00'.repeat(48);
    const prefix = join(dir, 'release-Ed25519');
    const dbg = debugFixtures.find((f) => f.name.startsWith('blocky'))!;
    const base = ['manifest', 'create', '--name', 'dev', '--version', '0', '--commit', '1'.repeat(40), '--eif-sha256', '2'.repeat(64), '--pcr0', z, '--pcr1', z, '--pcr2', z];
    const refused = await run(base);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/debug-mode enclave/);
    ok(await run([...base, '--allow-debug', '--out', join(dir, 'dbg.json')]));
    expect((await run(['manifest', 'sign', join(dir, 'dbg.json'), '--key', `${prefix}.key.pem`])).code).toBe(1);
    ok(await run(['manifest', 'sign', join(dir, 'dbg.json'), '--key', `${prefix}.key.pem`, '--allow-debug', '--out', join(dir, 'dbg-signed.json')]));
    expect((await run(['manifest', 'verify', join(dir, 'dbg-signed.json'), '--key', `${prefix}.pub.pem`])).code).toBe(1);
    ok(await run(['manifest', 'verify', join(dir, 'dbg-signed.json'), '--key', `${prefix}.pub.pem`, '--allow-debug']));
    const av = ['attest', 'verify', fixturePath('attestation', dbg.name), '--at', 'doc', '--json', '--manifest', join(dir, 'dbg-signed.json'), '--manifest-key', `${prefix}.pub.pem`];
    expect(json(await run(av)).error.code).toBe('ATTEST_MANIFEST');
    const good = await run([...av, '--allow-debug']);
    ok(good);
    expect(json(good).debug).toBe(true);
  });
});
