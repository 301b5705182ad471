/**
 * The audit chain's own enclave methods (docs/audit.md, docs/enclave.md): `audit.open` (the
 * parent shows its stored head), `audit.records` (records a parent lost on the way, fetched
 * again) and `audit.checkpoint` (a signed statement of the head).
 */
import { parseRecord } from '../../common/audit/record.js';
import { SignerError } from '../../common/errors.js';
import { asBytes, onlyKeys } from '../../common/protocol/enclave-api.js';
import type { EnclaveMethod } from '../method.js';
import type { AuditTrail } from './trail.js';

export function auditMethods(trail: AuditTrail): Record<string, EnclaveMethod> {
  return {
    /** The parent shows its stored head (absent: a new chain); the answer holds the records it must store. */
    async 'audit.open'(p) {
      onlyKeys(p, ['head'], 'params');
      const head = p.head === undefined || p.head === null ? undefined : asBytes(p.head, 'head', 1, 64 * 1024);
      let shownSeq: number | undefined;
      if (head) {
        try {
          shownSeq = parseRecord(head).body.seq;
        } catch (e) {
          throw new SignerError('INVALID_PARAMS', `head: not an audit record: ${(e as Error).message}`);
        }
      }
      const r = await trail.open(head, shownSeq);
      return { records: r.records.map((x) => x.bytes), auditKey: r.auditKey, opened: r.opened, headSeq: r.headSeq };
    },
    /** Records the enclave still holds from `fromSeq` on: lets a parent that lost an answer store its record late. */
    async 'audit.records'(p) {
      onlyKeys(p, ['fromSeq', 'limit'], 'params');
      const from = p.fromSeq;
      if (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 0) throw new SignerError('INVALID_PARAMS', 'fromSeq: a non-negative integer');
      const limit = p.limit === undefined ? 1024 : p.limit;
      if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > 4096) throw new SignerError('INVALID_PARAMS', 'limit: 1..4096');
      const log = trail.log();
      return { records: trail.since(from, limit).map((x) => x.bytes), headSeq: log.head().seq };
    },
    /** An enclave-signed statement of the head, and a document binding the audit key (for the caller's nonce). */
    async 'audit.checkpoint'(p) {
      onlyKeys(p, ['nonce'], 'params');
      const nonce = p.nonce === undefined ? undefined : asBytes(p.nonce, 'nonce', 1, 64);
      const log = trail.log();
      const checkpoint = log.checkpoint(nonce);
      const attestation = await log.attest(nonce && nonce.length >= 16 ? nonce : undefined);
      return { checkpoint, attestation };
    },
  };
}
