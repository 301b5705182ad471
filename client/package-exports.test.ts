/**
 * The package exports resolve as a consumer's Node resolves them
 * (`import 'enclave-signer/viem'` from dist/, after `npm run build`), each
 * with its type declarations.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { name: string; exports: Record<string, { types: string; default: string }> };

const EXPECTED: Record<string, string[]> = {
  './client': ['ApprovalRequiredError', 'ApprovalTimeoutError', 'EnclaveSignerConnectionError', 'EnclaveSignerRpcError', 'createSignerClient'],
  './viem': ['EnclaveSignerViemError', 'enclaveAccount'],
  './ethers': ['EnclaveSigner'],
  './bitcoin': ['bitcoinAccount', 'buildPsbt', 'finalizeAndExtract', 'signAndExtract', 'signPsbt'],
  './verify': ['verifyKeyReceipt', 'verifyResultReceipt'],
};

describe('package.json exports', () => {
  it('client, viem, ethers, bitcoin and verify, each with types, importable by name from the built package', async () => {
    expect(existsSync(join(REPO, 'dist', 'client', 'index.js')), 'run `npm run build` first').toBe(true);
    for (const [sub, names] of Object.entries(EXPECTED)) {
      const e = pkg.exports[sub]!;
      expect(existsSync(join(REPO, e.types)), e.types).toBe(true);
      expect(existsSync(join(REPO, e.default)), e.default).toBe(true);
      const script = `const m = await import(${JSON.stringify(`${pkg.name}${sub.slice(1)}`)}); console.log(JSON.stringify(Object.keys(m)))`;
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO });
      expect(JSON.parse(stdout)).toEqual(expect.arrayContaining(names));
    }
  }, 30_000);
});
