/**
 * Locates the shared fixtures (../shared/fixtures beside the repository, as CI
 * lays it out). ENCLAVE_SIGNER_FIXTURES overrides. Missing fixtures fail the
 * test run loudly: a skipped reality check is worse than a red one.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');

function locate(): string {
  const candidates = [process.env.ENCLAVE_SIGNER_FIXTURES, join(repo, '..', 'shared', 'fixtures'), '/work/shared/fixtures'];
  for (const c of candidates) if (c && existsSync(join(c, 'aws_nitro_root_g1.pem'))) return c;
  throw new Error(`shared fixtures not found (tried ${candidates.filter(Boolean).join(', ')}); set ENCLAVE_SIGNER_FIXTURES`);
}

export const FIXTURES = locate();
export const REPO_ROOT = repo;

export function fixturePath(...parts: string[]): string {
  return join(FIXTURES, ...parts);
}

export function readFixture(...parts: string[]): Uint8Array {
  return new Uint8Array(readFileSync(fixturePath(...parts)));
}

export interface AttestationSidecar {
  file: string;
  timestamp_raw: number;
  module_id: string;
  all_pcrs: Record<string, string>;
  debug_mode_pcrs_zero: boolean;
  expected_outcome: string;
  nonce: { present: boolean | string; hex?: string };
  user_data: { present: boolean | string; hex?: string };
  public_key: { present: boolean | string; hex?: string };
}

export function attestationFixtures(): { name: string; bytes: Uint8Array; sidecar: AttestationSidecar; knownBad: boolean }[] {
  const dir = fixturePath('attestation');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cbor'))
    .sort()
    .map((f) => {
      const sidecar = JSON.parse(readFileSync(join(dir, f.replace(/\.cbor$/, '.json')), 'utf8')) as AttestationSidecar;
      return { name: f, bytes: new Uint8Array(readFileSync(join(dir, f))), sidecar, knownBad: f.includes('KNOWN_BAD') };
    });
}
