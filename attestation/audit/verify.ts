/**
 * Offline verification of an audit chain (docs/audit.md, "Verification
 * rules"). Pure: records in, report out — no enclave code, no network. Used
 * by `enclave-signer audit verify` over a keystore or a JSON Lines export.
 *
 * It checks every signature, every hash link, seq continuity, each hand-over
 * (the new audit key must be bound by an attestation document that verifies
 * against the root — and the signed manifest when given — at the document's
 * own time), that each record is signed by the key in force, policy hashes,
 * enclave time, and any checkpoints/receipts the auditor holds (tail
 * truncation). It keeps going after a problem so the report lists every gap
 * and fork, and names the first bad seq and why. It never throws for bad
 * input: each problem is an AuditError value in the report.
 */
import { toHex, bytesEqual } from '../../common/bytes.js';
import { SignerError } from '../../common/errors.js';
import { AuditError, type AuditErrorCode } from '../../common/audit/errors.js';
import { parseRecord, recordSignatureValid, type ParsedRecord } from '../../common/audit/record.js';
import { verifyAuditKeyBinding, type AttestedEnclave, type AuditTrustOptions } from './binding-check.js';

/** One stored record as the source gives it: the bytes, and the seq column when there is one. */
export interface RawAuditRecord {
  bytes: Uint8Array;
  /** The seq the store files it under (a DB column); reported when the bytes cannot be read. */
  storedSeq?: number;
}

/** A signed head the auditor holds (from a checkpoint or a receipt). */
export interface AuditAnchor {
  seq: number;
  hash: Uint8Array;
  auditKey: Uint8Array;
  /** For messages: "checkpoint FILE", "receipt FILE". */
  source: string;
}

export interface AuditVerifyOptions extends AuditTrustOptions {
  anchors?: readonly AuditAnchor[];
  /** Stop collecting problem details after this many (all are still counted). Default 100. */
  maxProblems?: number;
}

export interface AuditProblem {
  /** The record's seq (or its stored seq when unreadable); null when not known. */
  seq: number | null;
  /** 0-based position in the input. */
  index: number | null;
  code: AuditErrorCode | string;
  message: string;
}

/** One enclave life (audit key) in the chain; its attestation fields come from verifyAuditKeyBinding. */
export interface AuditEnclaveReport extends AttestedEnclave {
  auditKey: string;
  handoverSeq: number;
  firstSeq: number;
  lastSeq: number;
  records: number;
  policyHashes: (string | null)[];
}

export interface AuditVerifyReport {
  valid: boolean;
  records: number;
  head: { seq: number; hash: string; auditKey: string } | null;
  gaps: { from: number; to: number }[];
  forks: { seq: number; reason: string }[];
  enclaves: AuditEnclaveReport[];
  anchors: { source: string; seq: number; ok: boolean }[];
  firstBad: AuditProblem | null;
  problems: AuditProblem[];
  problemCount: number;
}

interface KeyState {
  report: AuditEnclaveReport;
  lastTime: number;
}

function hex(b: Uint8Array | null): string | null {
  return b === null ? null : toHex(b);
}

export class AuditChainVerifier {
  readonly #opts: AuditVerifyOptions;
  readonly #max: number;
  #records = 0;
  #index = 0;
  #prev: ParsedRecord | undefined;
  /** Seq of the last record whose position is known (even if its bytes were bad). */
  #lastSeq: number | undefined;
  #current: KeyState | undefined;
  #policy: Uint8Array | null = null;
  readonly #keys = new Map<string, KeyState>();
  readonly #anchorsBySeq = new Map<number, AuditAnchor[]>();
  readonly #anchorResults = new Map<AuditAnchor, boolean>();
  readonly #problems: AuditProblem[] = [];
  #problemCount = 0;
  #firstBad: AuditProblem | null = null;
  readonly #gaps: { from: number; to: number }[] = [];
  readonly #forks: { seq: number; reason: string }[] = [];

  constructor(opts: AuditVerifyOptions = {}) {
    this.#opts = opts;
    this.#max = opts.maxProblems ?? 100;
    for (const a of opts.anchors ?? []) {
      const l = this.#anchorsBySeq.get(a.seq) ?? [];
      l.push(a);
      this.#anchorsBySeq.set(a.seq, l);
    }
  }

  #problem(code: AuditErrorCode | string, message: string, seq: number | null, index: number | null): void {
    const p: AuditProblem = { seq, index, code, message };
    this.#problemCount++;
    if (!this.#firstBad) this.#firstBad = p;
    if (this.#problems.length < this.#max) this.#problems.push(p);
  }

  #fromError(e: unknown, seq: number | null, index: number): void {
    if (e instanceof AuditError) this.#problem(e.code, e.message, e.seq ?? seq, e.index ?? index);
    else if (e instanceof SignerError) this.#problem(e.code, e.message, seq, index);
    else this.#problem('AUDIT_MALFORMED', `unexpected failure: ${(e as Error)?.message ?? String(e)}`, seq, index);
  }

  /** A source failure (unreadable DB mid-way): names the last seq read. */
  sourceFailed(message: string): void {
    const at = this.#lastSeq === undefined ? 'before the first record' : `after seq ${this.#lastSeq}`;
    this.#problem('AUDIT_SOURCE', `${message} (${at})`, this.#lastSeq === undefined ? null : this.#lastSeq + 1, this.#index);
  }

  #verifyHandover(r: ParsedRecord, index: number): boolean {
    const b = r.body;
    const keyHex = toHex(b.auditKey);
    if (this.#keys.has(keyHex)) {
      this.#problem('AUDIT_HANDOVER', `seq ${b.seq}: hand-over re-introduces audit key ${keyHex}, already used earlier in the chain`, b.seq, index);
      return false;
    }
    if (this.#prev && b.prevAuditKey && !bytesEqual(b.prevAuditKey, this.#prev.body.auditKey)) {
      this.#problem('AUDIT_HANDOVER', `seq ${b.seq}: hand-over names previous audit key ${toHex(b.prevAuditKey)}, but seq ${this.#prev.body.seq} was signed by ${toHex(this.#prev.body.auditKey)}`, b.seq, index);
    }
    let checked: ReturnType<typeof verifyAuditKeyBinding>;
    try {
      checked = verifyAuditKeyBinding(b.attestation!, b.auditKey, this.#opts, {
        seq: b.seq,
        at: 'document',
        say: {
          unverified: (detail) => `seq ${b.seq}: the attestation document for audit key ${keyHex} does not verify: ${detail}`.replace('  ', ' '),
          otherKey: (bound) => `seq ${b.seq}: the attestation document binds audit key ${bound}, not ${keyHex}`,
        },
      });
    } catch (e) {
      this.#fromError(e, b.seq, index);
      return false;
    }
    const { binding } = checked;
    if (hex(binding.policyHash) !== hex(b.policyHash)) {
      this.#problem('AUDIT_POLICY', `seq ${b.seq}: hand-over policy hash ${hex(b.policyHash)} differs from the attested ${hex(binding.policyHash)}`, b.seq, index);
    }
    // `audit verify --json` prints the keys in this order: the manifest after the policy hashes.
    const { manifest, ...enclave } = checked.enclave;
    const report: AuditEnclaveReport = {
      auditKey: keyHex,
      handoverSeq: b.seq,
      firstSeq: b.seq,
      lastSeq: b.seq,
      records: 0,
      ...enclave,
      policyHashes: [hex(b.policyHash)],
      ...(manifest ? { manifest } : {}),
    };
    const st = { report, lastTime: 0 };
    this.#keys.set(keyHex, st);
    this.#current = st;
    this.#policy = b.policyHash;
    return true;
  }

  /** Feeds the next record, in stored order. */
  add(raw: RawAuditRecord): void {
    const index = this.#index++;
    this.#records++;
    let r: ParsedRecord;
    try {
      r = parseRecord(raw.bytes, { index, ...(raw.storedSeq !== undefined ? { seq: raw.storedSeq } : {}) });
    } catch (e) {
      this.#fromError(e, raw.storedSeq ?? null, index);
      this.#lost(raw.storedSeq);
      return;
    }
    const b = r.body;
    if (raw.storedSeq !== undefined && raw.storedSeq !== b.seq) {
      this.#problem('AUDIT_ORDER', `row filed under seq ${raw.storedSeq} holds the record of seq ${b.seq}`, b.seq, index);
    }
    if (!recordSignatureValid(r)) {
      this.#problem('AUDIT_SIGNATURE', `seq ${b.seq}: signature does not verify under audit key ${toHex(b.auditKey)}`, b.seq, index);
      this.#lost(b.seq);
      return;
    }

    // Position: continuity and the hash link.
    const expected = this.#lastSeq === undefined ? 0 : this.#lastSeq + 1;
    if (b.seq > expected) {
      this.#gaps.push({ from: expected, to: b.seq - 1 });
      this.#problem('AUDIT_GAP', `seq ${b.seq}: records ${expected === b.seq - 1 ? expected : `${expected}…${b.seq - 1}`} are missing`, b.seq, index);
    } else if (b.seq < expected) {
      const reason = `seq ${b.seq} appears after seq ${expected - 1}`;
      this.#forks.push({ seq: b.seq, reason });
      this.#problem('AUDIT_ORDER', `${reason}: records reordered, repeated or forked`, b.seq, index);
    } else if (this.#prev && this.#prev.body.seq === b.seq - 1 && !bytesEqual(b.prev, this.#prev.hash)) {
      const reason = `seq ${b.seq} does not link to seq ${b.seq - 1} (prev ${toHex(b.prev)}, but seq ${b.seq - 1} hashes to ${toHex(this.#prev.hash)})`;
      this.#forks.push({ seq: b.seq, reason });
      this.#problem('AUDIT_LINK', `${reason}: a fork or records spliced from another chain`, b.seq, index);
    }

    // Key: a hand-over introduces one (with its attestation); everything else must use the key in force.
    let keyOk = true;
    if (b.kind === 'handover') keyOk = this.#verifyHandover(r, index);
    else if (!this.#current || this.#current.report.auditKey !== toHex(b.auditKey)) {
      keyOk = false;
      this.#problem(
        'AUDIT_UNBOUND_KEY',
        `seq ${b.seq}: signed by audit key ${toHex(b.auditKey)}, which no hand-over with an attestation introduced${this.#current ? ` (the key in force is ${this.#current.report.auditKey})` : ''}`,
        b.seq,
        index,
      );
    }
    if (keyOk && this.#current) {
      const st = this.#current;
      if (b.time < st.lastTime) this.#problem('AUDIT_TIME', `seq ${b.seq}: enclave time ${b.time} is before the previous record's ${st.lastTime}`, b.seq, index);
      st.lastTime = Math.max(st.lastTime, b.time);
      st.report.records++;
      st.report.lastSeq = b.seq;
      if (b.kind === 'policy.load') {
        if (b.decision === 'done') {
          this.#policy = b.policyHash;
          st.report.policyHashes.push(hex(b.policyHash));
        }
      } else if (b.kind !== 'handover' && hex(b.policyHash) !== hex(this.#policy)) {
        this.#problem('AUDIT_POLICY', `seq ${b.seq}: policy hash ${hex(b.policyHash)} is not the policy in force (${hex(this.#policy)})`, b.seq, index);
      }
    }

    for (const a of this.#anchorsBySeq.get(b.seq) ?? []) {
      const ok = bytesEqual(a.hash, r.hash) && bytesEqual(a.auditKey, b.auditKey);
      this.#anchorResults.set(a, ok && (this.#anchorResults.get(a) ?? true));
      if (!ok) {
        this.#forks.push({ seq: b.seq, reason: `${a.source} names another record` });
        this.#problem('AUDIT_LINK', `seq ${b.seq}: ${a.source} names record hash ${toHex(a.hash)} (key ${toHex(a.auditKey)}), the chain has ${toHex(r.hash)}`, b.seq, index);
      }
    }
    this.#prev = r;
    this.#lastSeq = Math.max(this.#lastSeq ?? -1, b.seq);
  }

  /** After an unreadable record: its position is taken, but nothing links to it. */
  #lost(storedSeq: number | undefined): void {
    this.#prev = undefined;
    this.#lastSeq = storedSeq !== undefined ? Math.max(this.#lastSeq ?? -1, storedSeq) : (this.#lastSeq ?? -1) + 1;
  }

  report(): AuditVerifyReport {
    if (this.#records === 0 && this.#problemCount === 0) this.#problem('AUDIT_EMPTY', 'no audit records: nothing proves what this enclave did', null, null);
    const head = this.#prev ? { seq: this.#prev.body.seq, hash: toHex(this.#prev.hash), auditKey: toHex(this.#prev.body.auditKey) } : null;
    const anchors: { source: string; seq: number; ok: boolean }[] = [];
    for (const a of this.#opts.anchors ?? []) {
      const seen = this.#anchorResults.get(a);
      if (seen === undefined) {
        if (this.#lastSeq === undefined || a.seq > this.#lastSeq) {
          this.#problem('AUDIT_TRUNCATED', `seq ${a.seq}: ${a.source} proves the chain reached seq ${a.seq}, but it ends at ${this.#lastSeq ?? 'nothing'}: the tail was cut`, a.seq, null);
        } else {
          this.#problem('AUDIT_GAP', `seq ${a.seq}: ${a.source} names a record that is missing or unreadable`, a.seq, null);
        }
        anchors.push({ source: a.source, seq: a.seq, ok: false });
      } else anchors.push({ source: a.source, seq: a.seq, ok: seen });
      if (!this.#keys.has(toHex(a.auditKey))) {
        this.#problem('AUDIT_UNBOUND_KEY', `seq ${a.seq}: ${a.source} is signed by audit key ${toHex(a.auditKey)}, which no hand-over in this chain introduced`, a.seq, null);
      }
    }
    return {
      valid: this.#problemCount === 0,
      records: this.#records,
      head,
      gaps: this.#gaps,
      forks: this.#forks,
      enclaves: [...this.#keys.values()].map((s) => s.report),
      anchors,
      firstBad: this.#firstBad,
      problems: this.#problems,
      problemCount: this.#problemCount,
    };
  }
}

/** Verifies a whole chain from any iterable of stored records. */
export function verifyAuditChain(records: Iterable<RawAuditRecord>, opts: AuditVerifyOptions = {}): AuditVerifyReport {
  const v = new AuditChainVerifier(opts);
  try {
    for (const r of records) v.add(r);
  } catch (e) {
    v.sourceFailed(`the record source failed: ${(e as Error)?.message ?? String(e)}`);
  }
  return v.report();
}
