/** `enclave-signer principal keygen`: a principal's key pair and the policy entry that declares it. */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import { CliInputError, EXIT_OK, UsageError } from './errors.js';
import { writeOutputFile, type Io } from './io.js';

export const PRINCIPAL_KEYGEN_USAGE = `Usage: enclave-signer principal keygen --alg ed25519|ecdsa-p256 --out key.pem [--force]

Generates a principal's key pair: the private key in <out> (PKCS#8 PEM, mode
0600) and the public key next to it (<out without .pem>.pub.pem). Prints the
entry to add under "principals" in the enclave policy:
  {"alg":"ed25519","publicKey":"-----BEGIN PUBLIC KEY-----\\n…"}

Options:
  --alg <ed25519|ecdsa-p256>  key type
  --out FILE                  private key file
  --force                     replace existing files
  -h, --help                  show this help

Exit status: 0 written, 2 usage error or files exist.
`;

const SPEC = { alg: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' } } as const;

export async function principalKeygen(argv: string[], io: Io): Promise<number> {
  return guard(PRINCIPAL_KEYGEN_USAGE, io, 'key generation failed', async () => {
    const args = parseArgs(argv, SPEC);
    if (args.help) {
      io.stdout(PRINCIPAL_KEYGEN_USAGE);
      return EXIT_OK;
    }
    const { alg, out, force } = args.flags;
    if (alg !== 'ed25519' && alg !== 'ecdsa-p256') throw new UsageError(alg === undefined ? 'missing --alg ed25519|ecdsa-p256' : `--alg must be ed25519 or ecdsa-p256, got ${JSON.stringify(alg)}`);
    if (out === undefined || out === '') throw new UsageError('missing --out FILE');
    const pubPath = `${out.replace(/\.pem$/, '')}.pub.pem`;
    for (const p of [out, pubPath]) {
      if (!force && existsSync(p)) throw new CliInputError(`cannot write ${p}: file exists`, { hint: 'choose another --out, or pass --force to replace it' });
    }
    const { privateKey, publicKey } = alg === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = Buffer.from(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'latin1');
    try {
      await writeOutputFile(out, pem, { mode: 0o600, exclusive: true, force, what: 'private key' });
    } finally {
      pem.fill(0);
    }
    const pub = publicKey.export({ type: 'spki', format: 'pem' }) as string;
    await writeOutputFile(pubPath, pub, { mode: 0o644, exclusive: true, force, what: 'public key' });
    io.stdout(`${JSON.stringify({ alg, publicKey: pub })}\n`);
    io.stderr(`wrote ${alg} private key ${out} (mode 0600) and public key ${pubPath}\n`);
    return EXIT_OK;
  });
}
