/**
 * The keystore's tables for what an enclave must get back to keep its limits
 * (docs/principals.md "Sealed state", docs/scale-out.md): `sealed_state` (each
 * instance's latest sealed record), `fleet_state` (fleet scope: the keyring's
 * one shared record, swapped in one statement) and `fleet_members` (the
 * mixed-fleet check). Ciphertext and hashes only: the enclave seals and
 * checks every record (docs/principals.md "Sealed state" says what a host
 * that withholds or hands back an older one can and cannot do).
 *
 * A read-only keystore stores no sealed state, per instance or shared: it has
 * none of these writers, and answers that carry some are withheld (fail
 * closed).
 */
import { KeystoreError, type SqlDb } from './keystore-sql.js';

/** What an instance serves, for the mixed-fleet check (docs/scale-out.md). */
export interface FleetMember {
  policyHash: string;
  manifestDigest: string;
}

/** Fleet scope: the run of seals a record belongs to and the stored record it continues (docs/scale-out.md). */
export interface FleetLineage {
  id: string;
  base: { sequence: number; nonce: string } | null;
}

/** The shared sealed record of a keyring (fleet scope): its position and the ciphertext record. */
export interface FleetRecord {
  sequence: number;
  nonce: string;
  record: unknown;
}

/** The Keystore methods these tables back (keystore.ts says what each promises). */
export interface StateMethods {
  getSealedState(keyringId: string): Promise<unknown>;
  putSealedState(keyringId: string, sequence: number, record: unknown): Promise<void>;
  getFleetHead(keyringId: string): Promise<{ sequence: number; nonce: string } | undefined>;
  getFleetState(keyringId: string): Promise<FleetRecord | undefined>;
  putFleetState(keyringId: string, r: FleetRecord, lineage: FleetLineage): Promise<'stored' | 'covered' | 'conflict'>;
}

/** The sealed-state and fleet-state methods of a writable keystore. */
export function stateTables(db: SqlDb, instanceId: string): StateMethods {
  return {
    getSealedState: async (keyringId) => {
      const row = await db.get<{ record: string }>('SELECT record FROM sealed_state WHERE instance_id = ? AND keyring_id = ?', [instanceId, keyringId]);
      return row ? (JSON.parse(row.record) as unknown) : undefined;
    },
    putSealedState: async (keyringId, sequence, record) => {
      await db.tx(async (t) => {
        await t.run(
          'INSERT INTO sealed_state (instance_id, keyring_id, sequence, record, stored_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance_id, keyring_id) DO UPDATE SET sequence = excluded.sequence, record = excluded.record, stored_at = excluded.stored_at',
          [instanceId, keyringId, sequence, JSON.stringify(record), new Date().toISOString()],
        );
      });
    },
    // Fleet scope: the keyring's one shared record (docs/scale-out.md).
    getFleetHead: async (keyringId) => {
      const row = await db.get<{ sequence: number | string; nonce: string }>('SELECT sequence, nonce FROM fleet_state WHERE keyring_id = ?', [keyringId]);
      return row ? { sequence: Number(row.sequence), nonce: row.nonce } : undefined;
    },
    getFleetState: async (keyringId) => {
      const row = await db.get<{ sequence: number | string; nonce: string; record: string }>('SELECT sequence, nonce, record FROM fleet_state WHERE keyring_id = ?', [keyringId]);
      return row ? { sequence: Number(row.sequence), nonce: row.nonce, record: JSON.parse(row.record) as unknown } : undefined;
    },
    putFleetState: (keyringId: string, r: FleetRecord, lineage: FleetLineage) =>
      db.tx(async (t) => {
        const at = new Date().toISOString();
        const text = JSON.stringify(r.record);
        // One conditional UPDATE is the swap: PostgreSQL re-checks the WHERE on the row a
        // concurrent writer committed (READ COMMITTED), SQLite has one writer at a time.
        const base = lineage.base;
        const changed = await t.run(
          `UPDATE fleet_state SET sequence = ?, nonce = ?, lineage = ?, record = ?, stored_at = ?
           WHERE keyring_id = ? AND ((lineage = ? AND sequence < ?)${base ? ' OR (sequence = ? AND nonce = ?)' : ''})`,
          [r.sequence, r.nonce, lineage.id, text, at, keyringId, lineage.id, r.sequence, ...(base ? [base.sequence, base.nonce] : [])],
        );
        if (changed === 1) return 'stored' as const;
        if (base === null) {
          const inserted = await t.run('INSERT INTO fleet_state (keyring_id, sequence, nonce, lineage, record, stored_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (keyring_id) DO NOTHING', [keyringId, r.sequence, r.nonce, lineage.id, text, at]);
          if (inserted === 1) return 'stored' as const;
        }
        const row = await t.get<{ sequence: number | string; lineage: string }>('SELECT sequence, lineage FROM fleet_state WHERE keyring_id = ?', [keyringId]);
        return row && row.lineage === lineage.id && Number(row.sequence) >= r.sequence ? ('covered' as const) : ('conflict' as const);
      }),
  };
}

/**
 * Registers `instanceId` in the fleet; refuses (KEYSTORE_FLEET_MISMATCH, naming both) when
 * another instance seen within `liveMs` serves a different policy or manifest.
 */
export async function joinFleetTable(db: SqlDb, instanceId: string, m: FleetMember, liveMs: number): Promise<void> {
  await db.tx(
    async (t) => {
      const since = new Date(Date.now() - liveMs).toISOString();
      const others = await t.all<{ instance_id: string; policy_hash: string; manifest_digest: string }>(
        'SELECT instance_id, policy_hash, manifest_digest FROM fleet_members WHERE instance_id <> ? AND seen_at >= ? ORDER BY instance_id',
        [instanceId, since],
      );
      const differ = others.find((o) => o.policy_hash !== m.policyHash || o.manifest_digest !== m.manifestDigest);
      if (differ) {
        throw new KeystoreError(
          'KEYSTORE_FLEET_MISMATCH',
          `mixed fleet: instance ${JSON.stringify(differ.instance_id)} serves policy ${differ.policy_hash} with manifest ${differ.manifest_digest}, this instance ${JSON.stringify(instanceId)} would serve policy ${m.policyHash} with manifest ${m.manifestDigest}; refusing to serve from the same keystore`,
          { hint: 'every instance on one keystore must run the same policy and PCR manifest: stop the others before rolling out a new one (docs/scale-out.md)' },
        );
      }
      await t.run(
        'INSERT INTO fleet_members (instance_id, policy_hash, manifest_digest, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT (instance_id) DO UPDATE SET policy_hash = excluded.policy_hash, manifest_digest = excluded.manifest_digest, seen_at = excluded.seen_at',
        [instanceId, m.policyHash, m.manifestDigest, new Date().toISOString()],
      );
    },
    { exclusive: true },
  );
}

/** Refreshes `instanceId`'s fleet entry (its liveness). */
export async function touchFleetTable(db: SqlDb, instanceId: string): Promise<void> {
  await db.run('UPDATE fleet_members SET seen_at = ? WHERE instance_id = ?', [new Date().toISOString(), instanceId]);
}
