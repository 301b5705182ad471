/**
 * Fleet scope (docs/scale-out.md "Limits across instances"): what an enclave
 * makes of the shared sealed record its parent hands in with a request.
 *
 * Every enclave of a keyring seals the same kind of record (./durable.ts) into
 * one row of the shared store. The parent stores a record only by
 * compare-and-swap: the row must still hold the record this enclave's state
 * descends from (its *base*), or a record of the same *lineage* — the
 * uninterrupted run of seals this enclave made since it last took over a
 * record. A lineage id is random per take-over, so two enclaves that took over
 * the same record never share one. Within a lineage every seal includes every
 * earlier one (the state only grows between take-overs), so a stored later
 * seal covers an earlier one that arrives after it.
 *
 * The decision here is pure: given what the enclave was last handed (`floor`)
 * and whether a record is one of its own seals in its current lineage (`own`,
 * its newest seal included), a handed-in record is
 *   stale  older than the floor, or at the floor's sequence but another record
 *          (a fork: only a host that rewrote the store shows two records for one
 *          sequence) — refused for this request, retryable;
 *   same   the floor itself, or one of the enclave's own seals in its current lineage — its state
 *          already includes it: nothing to do;
 *   adopt  anything newer — unseal it and continue from it (a new lineage).
 */
export interface RecordRef {
  sequence: number;
  nonce: string;
}

export type HandIn = { kind: 'stale'; why: string } | { kind: 'same' } | { kind: 'adopt' };

export function decideHandIn(handed: RecordRef, floor: RecordRef | undefined, own: (r: RecordRef) => boolean): HandIn {
  // One of this lineage's own seals: the enclave's state already includes it and everything sealed
  // since. Taking an older one over would drop those later changes — among them approvals whose
  // -32010 the parent may already have relayed.
  if (own(handed)) return { kind: 'same' };
  if (floor) {
    if (handed.sequence === floor.sequence && handed.nonce === floor.nonce) return { kind: 'same' };
    if (handed.sequence < floor.sequence) return { kind: 'stale', why: `record ${handed.sequence} is older than record ${floor.sequence}, which this enclave was already handed` };
    if (handed.sequence === floor.sequence) return { kind: 'stale', why: `record ${handed.sequence} is not the record ${floor.sequence} this enclave was already handed (two records for one sequence: a forked store)` };
  }
  return { kind: 'adopt' };
}

/** Reads the sequence and nonce of a record's outside (authenticated later, when it is unsealed). */
export function refOf(record: unknown): RecordRef | undefined {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return undefined;
  const r = record as { sequence?: unknown; nonce?: unknown };
  if (typeof r.sequence !== 'number' || !Number.isSafeInteger(r.sequence) || r.sequence < 1 || typeof r.nonce !== 'string' || r.nonce.length > 64) return undefined;
  return { sequence: r.sequence, nonce: r.nonce };
}
