/**
 * `enclave-signer audit checkpoint --socket S [--out F] [--nonce HEX]`: asks the
 * running enclave (through the parent's signing socket, signer_auditCheckpoint)
 * for a signed statement of its audit head, to publish or anchor elsewhere. The
 * output is the checkpoint as hex — what `audit verify --checkpoint FILE` reads.
 * A chain later cut before that head is then caught (AUDIT_TRUNCATED).
 */
import { parseHex, toHex } from '../common/bytes.js';
import { parseCheckpoint } from '../common/audit/checkpoint.js';
import { parse } from './audit-options.js';
import { guard } from './command.js';
import { CliInputError, EXIT_OK, UsageError } from './errors.js';
import { writeOutputFile, type Io } from './io.js';
import { socketRpc } from './socket-rpc.js';

export const AUDIT_CHECKPOINT_USAGE = `Usage: enclave-signer audit checkpoint --socket PATH [--out FILE] [--nonce HEX]

Gets an enclave-signed statement of the current audit head (seq, hash, audit
key, enclave time; the nonce when given) and writes it as hex to FILE or
standard output. Keep it off the host: 'audit verify --checkpoint FILE' then
catches a chain cut before that head.
`;

export async function auditCheckpoint(argv: string[], io: Io): Promise<number> {
  return guard(AUDIT_CHECKPOINT_USAGE, io, 'audit checkpoint failed', async () => {
    const { values: f, positionals } = parse(argv, { socket: { type: 'string' }, out: { type: 'string' }, nonce: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
    if (f.help) {
      io.stdout(AUDIT_CHECKPOINT_USAGE);
      return EXIT_OK;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (f.socket === undefined) throw new UsageError('--socket is required');
    if (f.nonce !== undefined) {
      const n = parseHex(f.nonce);
      if (!n || n.length < 16 || n.length > 64) throw new UsageError('--nonce must be 16..64 bytes of hex');
    }
    const answer = await socketRpc(f.socket, { jsonrpc: '2.0', id: 1, method: 'signer_auditCheckpoint', params: f.nonce === undefined ? {} : { nonce: f.nonce.startsWith('0x') ? f.nonce : `0x${f.nonce}` } });
    if (!answer.ok) throw new CliInputError(`signer_auditCheckpoint: ${answer.error.code} ${answer.error.message}`);
    const cpHex = (answer.result as { checkpoint?: unknown } | null)?.checkpoint;
    const cp = typeof cpHex === 'string' ? parseHex(cpHex) : undefined;
    if (!cp) throw new CliInputError('signer_auditCheckpoint answered no checkpoint');
    // Read it back: what is written is a checkpoint (the parent is not trusted to say so).
    const body = parseCheckpoint(cp).body;
    const text = `${toHex(cp)}\n`;
    if (f.out === undefined) io.stdout(text);
    else {
      await writeOutputFile(f.out, text, { what: 'checkpoint' });
      io.stderr(`checkpoint of seq ${body.seq} (head ${toHex(body.head).slice(0, 16)}…) written to ${f.out}\n`);
    }
    return EXIT_OK;
  });
}
