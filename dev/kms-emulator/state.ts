/**
 * The emulator's whole state — keys with their material, policies, aliases —
 * as one JSON file in the data directory. Every change is applied to a copy,
 * written to a temp file, fsynced, renamed over `state.json` and the
 * directory fsynced, and only then made current: a request is acknowledged
 * only after its effect is durable, and a failed write changes nothing.
 *
 * The file holds raw key material (base64), so it is created 0600 in a 0700
 * directory and nothing here ever logs it. A lock file keeps a second
 * emulator off the same directory.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { KmsEmulatorError } from './errors.js';

export const STATE_FORMAT = 'enclave-signer/kms-emulator-state/v1';
export const STATE_FILE = 'state.json';
export const LOCK_FILE = 'kms-emulator.lock';

export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion';

export interface KeyMaterialRecord {
  version: number;
  /** 32 bytes, base64. Secret. */
  key: string;
}

export interface KeyRecord {
  /** Lowercase UUID. */
  keyId: string;
  /** Milliseconds since the epoch. */
  creationDate: number;
  description: string;
  state: KeyState;
  /** Set while PendingDeletion: when the key disappears (ms). */
  deletionDate?: number;
  pendingWindowInDays?: number;
  /** The key policy exactly as the caller sent it (GetKeyPolicy returns it verbatim). */
  policy: string;
  /** Every version ever used; new ciphertexts use the highest. */
  material: KeyMaterialRecord[];
}

export interface AliasRecord {
  /** `alias/…` */
  name: string;
  targetKeyId: string;
  creationDate: number;
  lastUpdatedDate: number;
}

export interface EmulatorState {
  format: typeof STATE_FORMAT;
  region: string;
  accountId: string;
  keys: KeyRecord[];
  aliases: AliasRecord[];
}

export interface StateStore {
  readonly dir: string;
  /** The current, durable state. Treat as read-only; change it only through `mutate`. */
  current(): EmulatorState;
  /** Applies `fn` to a copy, persists it, then makes it current. If `fn` throws or the write fails, nothing changes. */
  mutate<T>(fn: (draft: EmulatorState) => T): T;
  close(): void;
}

function corrupt(message: string, cause?: unknown): KmsEmulatorError {
  return new KmsEmulatorError('KMS_EMU_STATE_CORRUPT', `KMS emulator state: ${message}`, {
    cause,
    hint: 'the state file is written atomically, so this means it was edited by hand or by another program; restore it or use a fresh --data-dir',
  });
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks a loaded file field by field: a damaged file stops the emulator rather than half-loading. */
function validateState(v: unknown): EmulatorState {
  if (!isObj(v) || v.format !== STATE_FORMAT) throw corrupt(`${STATE_FILE} is not a ${STATE_FORMAT} file`);
  if (typeof v.region !== 'string' || typeof v.accountId !== 'string') throw corrupt('region/accountId missing');
  if (!Array.isArray(v.keys) || !Array.isArray(v.aliases)) throw corrupt('keys/aliases must be arrays');
  const ids = new Set<string>();
  for (const k of v.keys as unknown[]) {
    if (!isObj(k)) throw corrupt('a key record is not an object');
    if (typeof k.keyId !== 'string' || !/^[0-9a-f-]{36}$/.test(k.keyId) || ids.has(k.keyId)) throw corrupt('a key record has a bad or duplicate keyId');
    ids.add(k.keyId);
    if (typeof k.creationDate !== 'number' || typeof k.description !== 'string' || typeof k.policy !== 'string') throw corrupt(`key ${k.keyId} has bad fields`);
    if (k.state !== 'Enabled' && k.state !== 'Disabled' && k.state !== 'PendingDeletion') throw corrupt(`key ${k.keyId} has state ${String(k.state)}`);
    if (k.state === 'PendingDeletion' && typeof k.deletionDate !== 'number') throw corrupt(`key ${k.keyId} is pending deletion without a date`);
    if (!Array.isArray(k.material) || k.material.length === 0) throw corrupt(`key ${k.keyId} has no material`);
    for (const m of k.material as unknown[]) {
      if (!isObj(m) || !Number.isSafeInteger(m.version) || typeof m.key !== 'string' || Buffer.from(m.key, 'base64').length !== 32) {
        throw corrupt(`key ${k.keyId} has malformed material`);
      }
    }
  }
  const names = new Set<string>();
  for (const a of v.aliases as unknown[]) {
    if (!isObj(a) || typeof a.name !== 'string' || !a.name.startsWith('alias/') || names.has(a.name)) throw corrupt('an alias record is bad or duplicated');
    names.add(a.name);
    if (typeof a.targetKeyId !== 'string' || !ids.has(a.targetKeyId)) throw corrupt(`alias ${a.name} points at an unknown key`);
    if (typeof a.creationDate !== 'number' || typeof a.lastUpdatedDate !== 'number') throw corrupt(`alias ${a.name} has bad dates`);
  }
  return v as unknown as EmulatorState;
}

let tmpCounter = 0;

/** write temp → fsync → rename → fsync(dir). */
export function writeFileAtomic(dir: string, name: string, data: string): void {
  const tmp = join(dir, `.${name}.${process.pid}.${++tmpCounter}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(dir, name));
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function acquireLock(dir: string): string {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return path;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
      if (Number.isSafeInteger(pid) && pid > 0 && pidAlive(pid)) {
        throw new KmsEmulatorError('KMS_EMU_DATA_DIR_LOCKED', `the data directory ${dir} is in use by another KMS emulator (pid ${pid})`, {
          hint: 'stop that emulator or use another --data-dir',
        });
      }
      unlinkSync(path); // left behind by an emulator that crashed
    }
  }
  throw new KmsEmulatorError('KMS_EMU_DATA_DIR_LOCKED', `could not lock the data directory ${dir}`);
}

export function openStateStore(dir: string, opts: { region: string; accountId: string }): StateStore {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lockPath = acquireLock(dir);
  let state: EmulatorState;
  try {
    for (const f of readdirSync(dir)) if (f.startsWith(`.${STATE_FILE}.`) && f.endsWith('.tmp')) unlinkSync(join(dir, f));
    const file = join(dir, STATE_FILE);
    if (existsSync(file)) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(readFileSync(file, 'utf8'));
      } catch (e) {
        throw corrupt(`${file} is not valid JSON`, e);
      }
      state = validateState(parsed);
      if (state.region !== opts.region || state.accountId !== opts.accountId) {
        throw new KmsEmulatorError(
          'KMS_EMU_STATE_MISMATCH',
          `the data directory holds keys of account ${state.accountId} in ${state.region}, not ${opts.accountId} in ${opts.region}`,
          { hint: 'key ARNs include region and account: start with the same --region/--account-id, or use another --data-dir' },
        );
      }
    } else {
      state = { format: STATE_FORMAT, region: opts.region, accountId: opts.accountId, keys: [], aliases: [] };
      writeFileAtomic(dir, STATE_FILE, JSON.stringify(state));
    }
  } catch (e) {
    unlinkSync(lockPath);
    throw e;
  }
  let closed = false;
  return {
    dir,
    current: () => state,
    mutate<T>(fn: (draft: EmulatorState) => T): T {
      if (closed) throw new KmsEmulatorError('KMS_EMU_CLOSED', 'the KMS emulator state store is closed');
      const draft = structuredClone(state);
      const result = fn(draft);
      writeFileAtomic(dir, STATE_FILE, JSON.stringify(draft));
      state = draft;
      return result;
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        unlinkSync(lockPath);
      } catch {
        /* removed by hand */
      }
    },
  };
}
