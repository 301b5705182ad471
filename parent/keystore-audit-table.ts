/**
 * The keystore's `audit_records` table (docs/audit.md): the enclave's signed
 * audit records, one chain per instance, stored in the same transaction as
 * the change they record (keystore.ts withAudit) or on their own
 * (appendAuditRecords), and read back in seq order by the verifier and the
 * enclave's next life.
 *
 * The parent is not the verifier: it checks a record's shape (to extract the
 * indexed columns), never its signature. A seq is written once: the same
 * bytes again are a no-op (a retried persist), other bytes at a stored seq a
 * conflict. An older store opened read-only is read as it is: it may predate
 * the table or its instance column.
 */
import { parseRecordOnce } from '../common/audit/record.js';
import { KeystoreError, type SqlDb, type SqlExec } from './keystore-sql.js';

/** A record ready to insert: its indexed columns and its bytes. */
export interface AuditRow {
  seq: number;
  kind: string;
  auditKey: Buffer;
  hash: Buffer;
  bytes: Buffer;
}

/** INSERT of n audit rows, ignoring seqs already stored (the caller checks those). */
const insertAuditSqlBySize = new Map<number, string>();
function insertAuditSql(n: number): string {
  let sql = insertAuditSqlBySize.get(n);
  if (!sql) {
    const values = Array.from({ length: n }, () => '(?, ?, ?, ?, ?, ?)').join(', ');
    sql = `INSERT INTO audit_records (instance_id, seq, audit_key, hash, record, stored_at) VALUES ${values} ON CONFLICT (instance_id, seq) DO NOTHING`;
    insertAuditSqlBySize.set(n, sql);
  }
  return sql;
}

// Small pages: a damaged store fails at the page it is reached (audit verify names the seq), not at the start.
const PAGE = 100;

export class AuditTable {
  readonly #db: SqlDb;
  readonly #instanceId: string;
  readonly #hasTable: boolean;
  readonly #hasInstance: boolean;
  /** `instance_id = ? AND ` when the table has the column (and its argument), else nothing. */
  readonly #mine: string;
  readonly #mineArgs: readonly string[];
  /** Each audit key's first record (its hand-over), by the key's hex: filled by writes and lookups. */
  readonly #firstRecords = new Map<string, Uint8Array>();

  static async open(db: SqlDb, instanceId: string): Promise<AuditTable> {
    return new AuditTable(db, instanceId, await db.columns('audit_records'));
  }

  private constructor(db: SqlDb, instanceId: string, columns: readonly string[]) {
    this.#db = db;
    this.#instanceId = instanceId;
    this.#hasTable = columns.length > 0;
    this.#hasInstance = columns.includes('instance_id');
    this.#mine = this.#hasInstance ? 'instance_id = ? AND ' : '';
    this.#mineArgs = this.#hasInstance ? [instanceId] : [];
  }

  /** Checks shape (not signatures: the parent is not the verifier) and extracts the indexed columns. */
  rows(records: readonly Uint8Array[]): AuditRow[] {
    return records.map((bytes) => {
      let r;
      try {
        // The persister parsed these very bytes already (parseRecordOnce checks they are unchanged).
        r = parseRecordOnce(bytes);
      } catch (e) {
        throw new KeystoreError('KEYSTORE_AUDIT_RECORD', `not an audit record: ${(e as Error).message}`, { cause: e });
      }
      return { seq: r.body.seq, kind: r.body.kind, auditKey: Buffer.from(r.body.auditKey), hash: Buffer.from(r.hash), bytes: Buffer.from(bytes) };
    });
  }

  /**
   * Inserts inside the caller's transaction. The same bytes again are a no-op (a retried
   * persist); other bytes at a stored seq are a conflict. Rows go in multi-row statements of
   * 64, 32, …, 1 rows (seven statement shapes to prepare, one statement per ~6 rows of a typical
   * group instead of one per row); the stored rows are read only when a statement inserted fewer
   * rows than it carried.
   */
  async insert(t: SqlExec, rows: readonly AuditRow[]): Promise<void> {
    if (rows.length === 0) return;
    if (!this.#hasTable || !this.#hasInstance) throw new KeystoreError('KEYSTORE_READONLY', 'this keystore has no audit table (opened read-only)');
    const at = new Date().toISOString();
    for (let i = 0; i < rows.length; ) {
      let n = 64;
      while (n > rows.length - i) n >>= 1;
      const chunk = rows.slice(i, i + n);
      i += n;
      const inserted = await t.run(insertAuditSql(n), chunk.flatMap((r) => [this.#instanceId, r.seq, r.auditKey, r.hash, r.bytes, at]));
      if (inserted === n) continue;
      for (const r of chunk) {
        const existing = await t.get<{ record: Buffer }>(`SELECT record FROM audit_records WHERE ${this.#mine}seq = ?`, [...this.#mineArgs, r.seq]);
        if (existing && Buffer.from(existing.record).equals(r.bytes)) continue;
        if (!existing) throw new KeystoreError('KEYSTORE_AUDIT_CONFLICT', `audit seq ${r.seq} was not stored and no row holds it`);
        throw new KeystoreError('KEYSTORE_AUDIT_CONFLICT', `audit seq ${r.seq} is already stored with different bytes: the enclave continued from a head other than the stored one`);
      }
    }
  }

  /** After the commit: hand-overs open an audit key, remembered for the inline receipt. */
  committed(rows: readonly AuditRow[]): void {
    for (const r of rows) {
      if (r.kind !== 'handover') continue;
      const hex = r.auditKey.toString('hex');
      if (!this.#firstRecords.has(hex)) this.#firstRecords.set(hex, new Uint8Array(r.bytes));
    }
  }

  async head(): Promise<Uint8Array | undefined> {
    if (!this.#hasTable) return undefined;
    const row = await this.#db.get<{ record: Buffer }>(`SELECT record FROM audit_records ${this.#hasInstance ? 'WHERE instance_id = ? ' : ''}ORDER BY seq DESC LIMIT 1`, this.#mineArgs);
    return row ? new Uint8Array(row.record) : undefined;
  }

  async *iterate(fromSeq = 0): AsyncIterableIterator<{ seq: number; record: Uint8Array }> {
    if (!this.#hasTable) return;
    let from = fromSeq;
    for (;;) {
      const page = await this.#db.all<{ seq: number; record: Buffer }>(`SELECT seq, record FROM audit_records WHERE ${this.#mine}seq >= ? ORDER BY seq LIMIT ${PAGE}`, [...this.#mineArgs, from]);
      for (const r of page) yield { seq: Number(r.seq), record: new Uint8Array(r.record) };
      if (page.length < PAGE) return;
      from = Number(page.at(-1)!.seq) + 1;
    }
  }

  async count(): Promise<number> {
    if (!this.#hasTable) return 0;
    const row = await this.#db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM audit_records${this.#hasInstance ? ' WHERE instance_id = ?' : ''}`, this.#mineArgs);
    return Number(row?.n ?? 0);
  }

  async get(seq: number): Promise<Uint8Array | undefined> {
    if (!this.#hasTable) return undefined;
    const row = await this.#db.get<{ record: Buffer }>(`SELECT record FROM audit_records WHERE ${this.#mine}seq = ?`, [...this.#mineArgs, seq]);
    return row ? new Uint8Array(row.record) : undefined;
  }

  /** The first stored record of an audit key (any instance's): its hand-over. */
  async firstRecord(key: Uint8Array): Promise<Uint8Array | undefined> {
    const hex = Buffer.from(key).toString('hex');
    const cached = this.#firstRecords.get(hex);
    if (cached) return cached;
    if (!this.#hasTable) return undefined;
    const row = await this.#db.get<{ record: Buffer }>('SELECT record FROM audit_records WHERE audit_key = ? ORDER BY seq LIMIT 1', [Buffer.from(key)]);
    if (!row) return undefined;
    const rec = new Uint8Array(row.record);
    this.#firstRecords.set(hex, rec);
    return rec;
  }

  /** The same, from memory only. */
  cachedFirstRecord(key: Uint8Array): Uint8Array | undefined {
    return this.#firstRecords.get(Buffer.from(key).toString('hex'));
  }
}
