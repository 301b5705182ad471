/** `enclave-signer manifest sign`: signs a manifest with a release key (ES384 or Ed25519). */
import { parseManifest } from '../attestation/manifest-format.js';
import { parseStrictJsonBytes } from '../attestation/manifest-json.js';
import { MAX_SIGNED_MANIFEST_BYTES, signManifest } from '../attestation/manifest-signature.js';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import { EXIT_OK, UsageError } from './errors.js';
import { readInputFile, writeOutputFile, type Io } from './io.js';
import { loadPrivateKey } from './keys.js';

export const MANIFEST_SIGN_USAGE = `Usage: enclave-signer manifest sign <manifest.json|-> --key <key.pem> [--out <file>] [--allow-debug]

Validates a PCR manifest and signs its canonical form (docs/manifest.md) with
a P-384 (ES384) or Ed25519 private key. Prints the signed manifest JSON.

Options:
  --key <key.pem>   private key (PKCS#8 PEM, unencrypted), e.g. from 'manifest keygen'
  --out <file>      write here instead of stdout
  --allow-debug     sign a manifest whose matched PCR0/1/2 are all zero
  -h, --help        show this help

Exit status: 0 signed, 1 the manifest is invalid, 2 usage error.
`;

const SPEC = { key: { type: 'string' }, out: { type: 'string' }, 'allow-debug': { type: 'boolean' } } as const;

export async function manifestSign(argv: string[], io: Io): Promise<number> {
  return guard(MANIFEST_SIGN_USAGE, io, 'manifest was not signed', async () => {
    const args = parseArgs(argv, SPEC, { positionals: { min: 1, max: 1 } });
    if (args.help) {
      io.stdout(MANIFEST_SIGN_USAGE);
      return EXIT_OK;
    }
    const { key, out } = args.flags;
    if (key === undefined) throw new UsageError('missing --key <key.pem>');
    const privateKey = await loadPrivateKey(key, 'key');
    const bytes = await readInputFile(args.positionals[0]!, 'manifest', MAX_SIGNED_MANIFEST_BYTES, io);
    const policy = { allowDebug: args.flags['allow-debug'] };
    const signed = signManifest(parseManifest(parseStrictJsonBytes(bytes), policy), privateKey, policy);
    const text = `${JSON.stringify(signed, null, 2)}\n`;
    if (out === undefined) io.stdout(text);
    else await writeOutputFile(out, text, { what: 'signed manifest' });
    io.stderr(`signed with ${signed.signature.alg} key ${signed.signature.keyId}${out === undefined ? '' : `, wrote ${out}`}\n`);
    return EXIT_OK;
  });
}
