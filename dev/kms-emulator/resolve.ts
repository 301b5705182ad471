/**
 * KeyId resolution as KMS does it: a key id (UUID), a key ARN, an alias
 * name `alias/…` or an alias ARN. ARNs must name this emulator's region and
 * account; anything unresolvable is NotFoundException.
 */
import { KmsError } from './errors.js';
import type { AliasRecord, EmulatorState, KeyRecord } from './state.js';

export interface Resolved {
  key: KeyRecord;
  /** Set when the caller named the key through an alias (feeds kms:RequestAlias). */
  alias: AliasRecord | undefined;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const ALIAS_NAME_RE = /^alias\/[a-zA-Z0-9/_-]+$/;
const ARN_RE = /^arn:aws:kms:([a-z0-9-]+):(\d{12}):(key|alias)\/(.+)$/;

export function keyArn(state: Pick<EmulatorState, 'region' | 'accountId'>, keyId: string): string {
  return `arn:aws:kms:${state.region}:${state.accountId}:key/${keyId}`;
}

export function aliasArn(state: Pick<EmulatorState, 'region' | 'accountId'>, aliasName: string): string {
  return `arn:aws:kms:${state.region}:${state.accountId}:${aliasName}`;
}

function keyNotFound(state: EmulatorState, id: string): KmsError {
  const shown = UUID_RE.test(id) ? keyArn(state, id.toLowerCase()) : id;
  return new KmsError('NotFoundException', `Key '${shown}' does not exist`);
}

function findKey(state: EmulatorState, uuid: string, asGiven: string): KeyRecord {
  const key = state.keys.find((k) => k.keyId === uuid.toLowerCase());
  if (!key) throw keyNotFound(state, asGiven);
  return key;
}

function findAlias(state: EmulatorState, name: string, asGiven: string): Resolved {
  const alias = state.aliases.find((a) => a.name === name);
  if (!alias) throw new KmsError('NotFoundException', `Alias ${aliasArn(state, name)} is not found.`, { hint: asGiven === name ? undefined : `from ${asGiven}` });
  return { key: findKey(state, alias.targetKeyId, alias.targetKeyId), alias };
}

/**
 * Resolves a KeyId. `allowAlias: false` for operations that, in KMS, take
 * only a key id or key ARN (key policy, enable/disable, deletion, alias targets).
 */
export function resolveKey(state: EmulatorState, id: string, opts: { allowAlias: boolean }): Resolved {
  if (UUID_RE.test(id)) return { key: findKey(state, id, id), alias: undefined };
  if (id.startsWith('alias/')) {
    if (!opts.allowAlias) throw new KmsError('NotFoundException', `Invalid keyId ${id}: this operation takes a key id or key ARN, not an alias`);
    return findAlias(state, id, id);
  }
  const m = ARN_RE.exec(id);
  if (m) {
    const [, region, account, kind, rest] = m as unknown as [string, string, string, 'key' | 'alias', string];
    if (region !== state.region || account !== state.accountId) throw keyNotFound(state, id);
    if (kind === 'key') {
      if (!UUID_RE.test(rest)) throw keyNotFound(state, id);
      return { key: findKey(state, rest, id), alias: undefined };
    }
    if (!opts.allowAlias) throw new KmsError('NotFoundException', `Invalid keyId ${id}: this operation takes a key id or key ARN, not an alias`);
    return findAlias(state, `alias/${rest}`, id);
  }
  if (id.startsWith('arn:')) throw new KmsError('NotFoundException', `Invalid arn ${id}`);
  throw new KmsError('NotFoundException', `Invalid keyId '${id}'`);
}
