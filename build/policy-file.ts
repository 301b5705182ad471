/**
 * build-eif.sh's writer of /app/policy.json: validates the signing policy with the enclave's
 * own parser (enclave/policy/document.ts) and writes its canonical JSON (RFC 8785), the bytes
 * the policy hash covers. The file is measured (PCR2), so a changed policy is a new image; the
 * enclave refuses to start without it (enclave/image.ts).
 *
 *   node policy-file.mjs --out FILE --from POLICY.json     (prints the policy's SHA-256)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { canonicalBytes } from '../attestation/manifest-json.js';
import { parsePolicy } from '../enclave/policy/document.js';
import { policyHash } from '../enclave/policy/policy-hash.js';

export function buildPolicyFile(bytes: Uint8Array): { text: string; hash: string } {
  const policy = parsePolicy(bytes);
  return { text: new TextDecoder().decode(canonicalBytes(policy.document)) + '\n', hash: policyHash(policy) };
}

function main(argv: string[]): number {
  try {
    const a = parseArgs({ args: argv, options: { out: { type: 'string' }, from: { type: 'string' } }, strict: true, allowPositionals: false }).values;
    if (!a.out || !a.from) throw new Error('--out and --from are required');
    const { text, hash } = buildPolicyFile(new Uint8Array(readFileSync(a.from)));
    writeFileSync(a.out, text, { mode: 0o644 });
    process.stdout.write(`${hash}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`error: policy: ${(e as Error).message}\n`);
    return 2;
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) process.exitCode = main(process.argv.slice(2));
