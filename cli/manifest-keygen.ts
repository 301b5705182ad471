/** `enclave-signer manifest keygen`: a manifest signing key pair, private half written 0600. */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { manifestKeyId } from '../attestation/manifest-signature.js';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import { CliInputError, EXIT_OK, UsageError } from './errors.js';
import { writeOutputFile, type Io } from './io.js';

export const MANIFEST_KEYGEN_USAGE = `Usage: enclave-signer manifest keygen --alg ES384|Ed25519 --out <prefix> [--force]

Generates a manifest signing key pair: <prefix>.key.pem (PKCS#8, mode 0600)
and <prefix>.pub.pem (SPKI). Prints the keyId auditors pin. Keep the private
key offline (or in CI's secret store); publish the public key and keyId.

Options:
  --alg <ES384|Ed25519>   key type
  --out <prefix>          output path prefix
  --force                 replace existing files
  -h, --help              show this help

Exit status: 0 written, 2 usage error or files exist.
`;

const SPEC = { alg: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' } } as const;

export async function manifestKeygen(argv: string[], io: Io): Promise<number> {
  return guard(MANIFEST_KEYGEN_USAGE, io, 'key generation failed', async () => {
    const args = parseArgs(argv, SPEC);
    if (args.help) {
      io.stdout(MANIFEST_KEYGEN_USAGE);
      return EXIT_OK;
    }
    const { alg, out, force } = args.flags;
    if (alg !== 'ES384' && alg !== 'Ed25519') throw new UsageError(alg === undefined ? 'missing --alg ES384|Ed25519' : `--alg must be ES384 or Ed25519, got ${JSON.stringify(alg)}`);
    if (out === undefined || out === '') throw new UsageError('missing --out <prefix>');
    const keyPath = `${out}.key.pem`;
    const pubPath = `${out}.pub.pem`;
    // Check both before writing either, so a half-written pair is not left behind.
    for (const p of [keyPath, pubPath]) {
      if (!force && existsSync(p)) throw new CliInputError(`cannot write ${p}: file exists`, { hint: 'choose another --out, or pass --force to replace it' });
    }
    const { privateKey, publicKey } = alg === 'ES384' ? generateKeyPairSync('ec', { namedCurve: 'P-384' }) : generateKeyPairSync('ed25519');
    // Export the private key as a Buffer we can wipe once written (the PEM text is ASCII: a byte per character).
    const pem = Buffer.from(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'latin1');
    try {
      await writeOutputFile(keyPath, pem, { mode: 0o600, exclusive: true, force, what: 'private key' });
    } finally {
      pem.fill(0);
    }
    await writeOutputFile(pubPath, publicKey.export({ type: 'spki', format: 'pem' }) as string, { mode: 0o644, exclusive: true, force, what: 'public key' });
    const keyId = manifestKeyId(publicKey);
    io.stdout(`keyId ${keyId}\n`);
    io.stderr(`wrote ${alg} private key ${keyPath} (mode 0600) and public key ${pubPath}\n`);
    return EXIT_OK;
  });
}
