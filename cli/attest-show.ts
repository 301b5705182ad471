/**
 * `enclave-signer attest show <file|->`: decodes a document for a human
 * without verifying anything. Every line of output says so, because a decoded
 * document looks exactly as convincing as a verified one.
 */
import { createHash } from 'node:crypto';
import { toHex } from '../common/bytes.js';
import { SignerError } from '../common/errors.js';
import { parseDer } from '../common/der.js';
import { parseAttestation } from '../attestation/verify.js';
import { formatName, parseCertificate } from '../attestation/x509.js';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import { decodeDocumentInput, MAX_DOCUMENT_INPUT_BYTES, type DocumentEncoding } from './document-input.js';
import { EXIT_FAILED, EXIT_OK, errorReport, formatFailure } from './errors.js';
import { readInputFile, type Io } from './io.js';

export const ATTEST_SHOW_USAGE = `Usage: enclave-signer attest show <file|-> [--json]

Decodes an attestation document WITHOUT verifying it: nothing shown is proven
(use 'attest verify' for that). Input: raw CBOR, base64 or hex; '-' = stdin.

Options:
  --json       print JSON on stdout
  -h, --help   show this help

Exit status: 0 decoded, 1 not a decodable document, 2 usage error.
`;

export const UNVERIFIED_WARNING = 'UNVERIFIED: decoded only; the signature, certificate chain, validity and PCRs were NOT checked';

interface CertInfo {
  subject?: string;
  issuer?: string;
  notBefore?: string;
  notAfter?: string;
  sha256: string;
  error?: string;
}

export interface AttestShowJson {
  verified: false;
  warning: string;
  encoding: DocumentEncoding;
  cose: { tagged: boolean; signatureBytes: number; payloadBytes: number };
  moduleId: string;
  digest: string;
  timestamp: string;
  timestampMs: number;
  pcrs: Record<string, string>;
  certificate: CertInfo;
  cabundle: CertInfo[];
  publicKey: string | null;
  userData: string | null;
  nonce: string | null;
}

function certInfo(der: Uint8Array): CertInfo {
  const sha256 = createHash('sha256').update(der).digest('hex');
  try {
    const c = parseCertificate(der);
    return { subject: c.subject, issuer: formatName(parseDer(c.issuerDer)), notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(), sha256 };
  } catch (e) {
    return { sha256, error: (e as Error)?.message ?? String(e) };
  }
}

function hexOrNull(b: Uint8Array | null): string | null {
  return b === null ? null : toHex(b);
}

function short(hex: string | null): string {
  if (hex === null) return '(none)';
  const n = hex.length / 2;
  if (n === 0) return '(empty)';
  return n <= 64 ? `${hex} (${n} bytes)` : `${hex.slice(0, 128)}… (${n} bytes)`;
}

function certLine(c: CertInfo): string {
  return c.error ? `unparseable certificate (${c.error}), sha256 ${c.sha256}` : `${c.subject}\n      issuer ${c.issuer}\n      valid  ${c.notBefore} .. ${c.notAfter}`;
}

function toText(j: AttestShowJson): string {
  const lines = [
    `${j.warning}`,
    `  encoding     ${j.encoding}, ${j.cose.tagged ? 'tagged' : 'untagged'} COSE_Sign1, ${j.cose.payloadBytes}-byte payload, ${j.cose.signatureBytes}-byte signature`,
    `  module id    ${j.moduleId}`,
    `  digest       ${j.digest}`,
    `  timestamp    ${j.timestamp}`,
    `  public key   ${short(j.publicKey)}`,
    `  user data    ${short(j.userData)}`,
    `  nonce        ${short(j.nonce)}`,
    `  certificate  ${certLine(j.certificate)}`,
    `  cabundle     ${j.cabundle.length} certificate(s), root first:`,
    ...j.cabundle.map((c, i) => `    [${i}] ${certLine(c)}`),
    '  PCRs',
    ...Object.entries(j.pcrs).map(([i, v]) => `    ${i.padStart(2)}  ${v}`),
    `${j.warning}`,
  ];
  return `${lines.join('\n')}\n`;
}

export async function attestShow(argv: string[], io: Io): Promise<number> {
  return guard(ATTEST_SHOW_USAGE, io, 'could not decode the attestation document', async () => {
    const args = parseArgs(argv, { json: { type: 'boolean' } }, { positionals: { min: 1, max: 1 } });
    if (args.help) {
      io.stdout(ATTEST_SHOW_USAGE);
      return EXIT_OK;
    }
    const input = await readInputFile(args.positionals[0]!, 'attestation document', MAX_DOCUMENT_INPUT_BYTES, io);
    let j: AttestShowJson;
    try {
      const { bytes, encoding } = decodeDocumentInput(input);
      const p = parseAttestation(bytes);
      const d = p.doc;
      j = {
        verified: false,
        warning: UNVERIFIED_WARNING,
        encoding,
        cose: { tagged: p.tagged, signatureBytes: p.signature.length, payloadBytes: p.payload.length },
        moduleId: d.moduleId,
        digest: d.digest,
        timestamp: new Date(d.timestamp).toISOString(),
        timestampMs: d.timestamp,
        pcrs: Object.fromEntries([...d.pcrs].sort(([a], [b]) => a - b).map(([i, v]) => [String(i), toHex(v)])),
        certificate: certInfo(d.certificate),
        cabundle: d.cabundle.map(certInfo),
        publicKey: hexOrNull(d.publicKey),
        userData: hexOrNull(d.userData),
        nonce: hexOrNull(d.nonce),
      };
    } catch (e) {
      if (!(e instanceof SignerError)) throw e;
      if (args.flags.json) io.stdout(`${JSON.stringify({ verified: false, error: errorReport(e) }, null, 2)}\n`);
      else io.stderr(formatFailure('could not decode the attestation document', e));
      return EXIT_FAILED;
    }
    io.stdout(args.flags.json ? `${JSON.stringify(j, null, 2)}\n` : toText(j));
    return EXIT_OK;
  });
}
