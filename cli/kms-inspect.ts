/**
 * `enclave-signer kms inspect <file> [--key rsa.pem] [--json]`: shows what a
 * KMS CiphertextForRecipient holds and, given the recipient's RSA private
 * key, opens it. A debugging tool for test keys: the plaintext it prints is
 * a secret when the key is real.
 *
 * `argv` is what follows `kms inspect`. Exit 0 ok, 1 unreadable / malformed /
 * not for that key, 2 usage error.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { toHex } from '../common/bytes.js';
import { openEnvelopedData } from '../common/cms/decrypt.js';
import { parseEnvelopedData, type EnvelopedInfo } from '../common/cms/parse.js';
import { oidName } from '../common/cms/profile.js';
import { isSignerError } from '../common/errors.js';

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export const KMS_INSPECT_USAGE = `usage: enclave-signer kms inspect <file> [--key <rsa-private.pem>] [--json]

Shows the structure of a KMS CiphertextForRecipient (CMS EnvelopedData). <file>
holds raw BER, its base64 text, or a KMS JSON response with a
"CiphertextForRecipient" field (detected automatically); '-' reads stdin.

  --key <file>   RSA private key PEM (PKCS#1 or PKCS#8) of the recipient: decrypt
                 and print the plaintext as hex (a secret; use test keys only)
  --json         print one JSON object instead of text
  -h, --help     show this help

exit status: 0 ok, 1 unreadable, malformed or not addressed to that key, 2 usage error
`;

interface Args {
  file: string;
  keyFile: string | undefined;
  json: boolean;
}

class Failure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function kmsInspect(argv: string[], io: CliIo): Promise<number> {
  const parsed = parseArgs(argv);
  if (parsed === 'help') {
    io.stdout(KMS_INSPECT_USAGE);
    return 0;
  }
  if (typeof parsed === 'string') {
    io.stderr(`kms inspect: ${parsed}\n\n${KMS_INSPECT_USAGE}`);
    return 2;
  }
  const args = parsed;
  try {
    const input = decodeInput(await readInput(args.file));
    const info = parseEnvelopedData(input);
    let plaintext: Uint8Array | undefined;
    if (args.keyFile !== undefined) {
      const key = await loadPrivateKey(args.keyFile);
      const spki = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }));
      plaintext = openEnvelopedData(info, key, spki);
    }
    io.stdout(args.json ? JSON.stringify(toJson(info, input.length, plaintext), null, 2) + '\n' : toText(info, input.length, plaintext));
    return 0;
  } catch (e) {
    const { code, message, hint } = describeError(e);
    if (args.json) io.stdout(JSON.stringify({ error: { code, message, ...(hint ? { hint } : {}) } }, null, 2) + '\n');
    io.stderr(`kms inspect: ${code}: ${message}\n${hint ? `  hint: ${hint}\n` : ''}`);
    return 1;
  }
}

/** Returns the parsed args, 'help', or a usage error message. */
function parseArgs(argv: string[]): Args | 'help' | string {
  const positional: string[] = [];
  let keyFile: string | undefined;
  let json = false;
  let endOfOptions = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (endOfOptions || !a.startsWith('-') || a === '-') {
      positional.push(a);
    } else if (a === '--') {
      endOfOptions = true;
    } else if (a === '-h' || a === '--help') {
      return 'help';
    } else if (a === '--json') {
      json = true;
    } else if (a === '--key' || a.startsWith('--key=')) {
      const v = a === '--key' ? argv[++i] : a.slice('--key='.length);
      if (v === undefined || v === '') return '--key needs a file';
      if (keyFile !== undefined) return '--key given twice';
      keyFile = v;
    } else {
      return `unknown option ${JSON.stringify(a)}`;
    }
  }
  if (positional.length === 0) return 'missing <file>';
  if (positional.length > 1) return `expected one <file>, got ${positional.length}`;
  return { file: positional[0]!, keyFile, json };
}

async function readInput(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file === '-' ? '/dev/stdin' : file));
  } catch (e) {
    throw new Failure('INPUT_UNREADABLE', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

const BASE64_TEXT = /^[A-Za-z0-9+/=\s]+$/;

/** Raw BER unless the whole file is base64 text or a JSON object holding CiphertextForRecipient. */
function decodeInput(bytes: Uint8Array): Uint8Array {
  const text = Buffer.from(bytes).toString('latin1').trim();
  if (text.startsWith('{')) {
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch {
      throw new Failure('INPUT_NOT_CMS', 'input looks like JSON but does not parse');
    }
    const b64 = (obj as Record<string, unknown> | null)?.CiphertextForRecipient;
    if (typeof b64 !== 'string') throw new Failure('INPUT_NOT_CMS', 'JSON input has no CiphertextForRecipient string');
    return fromBase64(b64);
  }
  if (text.length > 0 && BASE64_TEXT.test(text)) return fromBase64(text);
  return bytes;
}

function fromBase64(s: string): Uint8Array {
  const compact = s.replace(/\s+/g, '');
  if (compact.length === 0 || compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
    throw new Failure('INPUT_NOT_CMS', 'input is neither BER nor valid base64');
  }
  return new Uint8Array(Buffer.from(compact, 'base64'));
}

async function loadPrivateKey(path: string): Promise<KeyObject> {
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (e) {
    throw new Failure('KEY_UNREADABLE', `cannot read key ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    return createPrivateKey(pem);
  } catch {
    // OpenSSL's message is not shown: nothing of the key file leaves this function.
    throw new Failure('KEY_INVALID', `${path} is not an unencrypted PEM private key`);
  } finally {
    pem.fill(0);
  }
}

function describeError(e: unknown): { code: string; message: string; hint?: string | undefined } {
  if (isSignerError(e)) return { code: e.code, message: e.message, hint: e.hint };
  if (e instanceof Failure) return { code: e.code, message: e.message };
  return { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

function algo(oid: string): { oid: string; name: string } {
  return { oid, name: oidName(oid) };
}

function toJson(info: EnvelopedInfo, size: number, plaintext: Uint8Array | undefined): Record<string, unknown> {
  const r = info.recipient;
  return {
    bytes: size,
    version: info.version,
    recipient: {
      version: r.version,
      subjectKeyIdentifierHex: toHex(r.subjectKeyIdentifier),
      keyEncryptionAlgorithm: { ...algo(r.keyEncryptionAlgorithm.oid), hash: r.keyEncryptionAlgorithm.hash, mgfHash: r.keyEncryptionAlgorithm.mgfHash, label: '' },
      encryptedKeyLength: r.encryptedKey.length,
    },
    contentType: algo(info.contentType),
    contentEncryptionAlgorithm: { ...algo(info.contentEncryptionAlgorithm.oid), ivHex: toHex(info.contentEncryptionAlgorithm.iv) },
    encryptedContentLength: info.encryptedContent.length,
    encryptedContentEncoding: info.encryptedContentEncoding,
    encryptedContentChunks: info.encryptedContentChunks,
    ...(plaintext === undefined ? {} : { plaintextLength: plaintext.length, plaintextHex: toHex(plaintext) }),
  };
}

function toText(info: EnvelopedInfo, size: number, plaintext: Uint8Array | undefined): string {
  const r = info.recipient;
  const kea = r.keyEncryptionAlgorithm;
  const cea = info.contentEncryptionAlgorithm;
  const row = (label: string, value: string) => `${label.padEnd(32)}${value}`;
  const chunks = info.encryptedContentChunks;
  const lines = [
    `CiphertextForRecipient: CMS EnvelopedData, ${size} bytes BER`,
    row('  version', String(info.version)),
    row('  recipient', `KeyTransRecipientInfo v${r.version}`),
    row('    rid (subjectKeyIdentifier)', toHex(r.subjectKeyIdentifier)),
    row('    keyEncryptionAlgorithm', `${oidName(kea.oid)} (${kea.oid}) hash ${kea.hash}, MGF1-${kea.mgfHash}, empty label`),
    row('    encryptedKey', `${r.encryptedKey.length} bytes`),
    row('  contentType', `${oidName(info.contentType)} (${info.contentType})`),
    row('  contentEncryptionAlgorithm', `${oidName(cea.oid)} (${cea.oid})`),
    row('    iv', toHex(cea.iv)),
    row(
      '  encryptedContent',
      `${info.encryptedContent.length} bytes, ${info.encryptedContentEncoding}` +
        (info.encryptedContentEncoding === 'constructed' ? ` (${chunks} chunk${chunks === 1 ? '' : 's'})` : ''),
    ),
  ];
  if (plaintext !== undefined) lines.push(row('  plaintext', `${plaintext.length} bytes: ${toHex(plaintext)}`));
  return lines.join('\n') + '\n';
}
