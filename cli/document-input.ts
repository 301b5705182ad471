/**
 * Attestation documents arrive as raw CBOR (from NSM, a .cbor file), as
 * base64 text (what KMS requests, logs and most test suites carry), or as hex.
 * The encodings cannot be confused: a COSE_Sign1 starts with the byte 0x84
 * (or 0xd2 when tagged), which is never ASCII text.
 */
import { AttestationError } from '../attestation/errors.js';

export type DocumentEncoding = 'cbor' | 'base64' | 'hex';

/** Read at most this much from a file or stdin: a 16 KiB document is ~22 KiB of base64. */
export const MAX_DOCUMENT_INPUT_BYTES = 256 * 1024;

const B64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
const HEX = /^(?:[0-9a-fA-F]{2})+$/;

function fail(message: string, hint?: string): never {
  throw new AttestationError('ATTEST_INPUT', 'input', message, hint === undefined ? {} : { hint });
}

/** Turns file/stdin bytes into the raw COSE_Sign1 bytes. Throws ATTEST_INPUT (check 'input'). */
export function decodeDocumentInput(input: Uint8Array): { bytes: Uint8Array; encoding: DocumentEncoding } {
  if (input.length === 0) fail('the input is empty');
  const first = input[0]!;
  if (first === 0x84 || first === 0xd2) return { bytes: input, encoding: 'cbor' };

  let text: string;
  try {
    text = new TextDecoder('ascii', { fatal: true }).decode(input);
  } catch {
    return fail('input is neither a CBOR COSE_Sign1 (first byte 0x84) nor text', 'pass the raw document, or its base64 or hex text');
  }
  if (/[^\x09\x0a\x0d\x20-\x7e]/.test(text)) {
    fail(`input is neither a CBOR COSE_Sign1 (first byte 0x${first.toString(16).padStart(2, '0')}) nor base64/hex text`, 'pass the raw document, or its base64 or hex text');
  }
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0) fail('the input is empty');

  // Hex of a COSE_Sign1 starts "84" or "d2"; base64 of one starts "h" or "0" followed by non-hex, so this is unambiguous.
  if (HEX.test(compact) && /^(?:84|d2)/i.test(compact)) return { bytes: new Uint8Array(Buffer.from(compact, 'hex')), encoding: 'hex' };

  if (!B64.test(compact)) fail('input text is not base64 (nor hex of a COSE_Sign1)');
  const standard = compact.replace(/-/g, '+').replace(/_/g, '/');
  const unpadded = standard.replace(/=+$/, '');
  if (unpadded.length % 4 === 1) fail('input base64 has an impossible length (truncated?)');
  const padded = unpadded + '='.repeat((4 - (unpadded.length % 4)) % 4);
  if (standard !== unpadded && standard !== padded) fail('input base64 has wrong padding');
  const bytes = new Uint8Array(Buffer.from(padded, 'base64'));
  // Buffer ignores stray bits; re-encoding shows whether the text was exact base64 of these bytes.
  if (Buffer.from(bytes).toString('base64').replace(/=+$/, '') !== unpadded) fail('input base64 is not canonical (stray bits in the last character)');
  return { bytes, encoding: 'base64' };
}
