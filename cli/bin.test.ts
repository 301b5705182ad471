/**
 * The real binary: `npm run build`, then `node bin/enclave-signer.js …` as a
 * child process, so the compiled output, the launcher, stdin and the exit
 * status are all exercised (in-process tests cover the logic).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, attestationFixtures, fixturePath } from '../test/fixtures.js';

const nitro = attestationFixtures().find((f) => f.name.startsWith('blocky_nitrite_nitro'))!;
const BIN = join(REPO_ROOT, 'bin', 'enclave-signer.js');

function cli(args: string[], input?: string | Uint8Array) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, input, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  const b = spawnSync('npm', ['run', 'build'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 240_000 });
  expect(b.status, `npm run build failed:\n${b.stdout}\n${b.stderr}`).toBe(0);
  expect(existsSync(join(REPO_ROOT, 'dist', 'cli', 'main.js'))).toBe(true);
}, 300_000);

describe('bin/enclave-signer.js', () => {
  it('--version exits 0', () => {
    const r = cli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^enclave-signer \d+\.\d+\.\d+\n$/);
  });

  it('attest verify: 0 when valid at the document time, 1 when expired, 2 on a bad flag', () => {
    const doc = fixturePath('attestation', nitro.name);
    const good = cli(['attest', 'verify', doc, '--at', 'doc', '--json']);
    expect(good.code, good.stderr).toBe(0);
    expect(JSON.parse(good.stdout)).toMatchObject({ valid: true, moduleId: nitro.sidecar.module_id, pcrs: nitro.sidecar.all_pcrs });

    const expired = cli(['attest', 'verify', doc]);
    expect(expired.code).toBe(1);
    expect(expired.stderr).toMatch(/ATTEST_CERT_EXPIRED[\s\S]*certificate expired/);

    const bad = cli(['attest', 'verify', doc, '--no-such-flag']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown option --no-such-flag[\s\S]*Usage: enclave-signer attest verify/);
  });

  it('reads base64 from stdin', () => {
    const r = cli(['attest', 'verify', '-', '--at', 'doc', '--json'], Buffer.from(nitro.bytes).toString('base64'));
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).moduleId).toBe(nitro.sidecar.module_id);
  });

  it('loads lazily dispatched commands from dist, and refuses planned ones', () => {
    const kms = cli(['kms', 'inspect', '--help']);
    expect(kms.code).toBe(0);
    expect(kms.stdout).toMatch(/kms inspect/);
    if (!existsSync(join(REPO_ROOT, 'dist', 'cli', 'dev.js'))) {
      const dev = cli(['dev']);
      expect(dev.code).toBe(2);
      expect(dev.stderr).toMatch(/not available yet/);
    }
  });
});
