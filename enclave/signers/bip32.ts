/**
 * BIP32 derivation from a seed (`signer_deriveKey`, and the key source for PSBT signing).
 * Public results may leave the enclave; `deriveBip32PrivateKey` returns child key bytes for
 * in-enclave signing only, and the caller wipes them.
 *
 * Zeroing: every HDKey we create has its private key wiped (wipePrivateData) once the next
 * level exists or the operation ends. @scure/bip32 keeps short-lived internal copies (HMAC
 * output, bigint scalars) that JavaScript cannot wipe; those are garbage once we return.
 */
import { HDKey } from '@scure/bip32';
import { addressFromPublicKey } from './eth-address.js';
import { wipe } from '../../common/bytes.js';
import { guarded, invalidParams, SigningError } from './errors.js';
import { overLimit, SIGNER_LIMITS } from './limits.js';
import { hexOf, readSeed, readString, type Hex } from './validate.js';

export const HARDENED_OFFSET = 0x80000000;
const MAX_DEPTH = SIGNER_LIMITS.maxPathDepth;

export type Bip32Network = 'mainnet' | 'testnet';

/** Extended-key version bytes: xpub/xprv and tpub/tprv. */
const VERSIONS: Record<Bip32Network, { public: number; private: number }> = {
  mainnet: { public: 0x0488b21e, private: 0x0488ade4 },
  testnet: { public: 0x043587cf, private: 0x04358394 },
};

export interface Bip32PublicInfo {
  /** Canonical path, hardened steps written with '. */
  path: string;
  /** Fingerprint of the master key (first 4 bytes of hash160 of its public key), 8 hex digits. */
  masterFingerprint: string;
  /** This key's own fingerprint, 8 hex digits. */
  fingerprint: string;
  parentFingerprint: string;
  depth: number;
  /** Child index of the last step, hardened offset included (0 for the master). */
  index: number;
  /** 33-byte compressed public key. */
  publicKey: Hex;
  /** 32-byte x-only key (BIP340/taproot internal key). */
  xOnlyPublicKey: Hex;
  /** Extended public key (xpub…, or tpub… for testnet). */
  xpub: string;
  /** Checksummed Ethereum address of this key. */
  ethereumAddress: Hex;
}

export interface Bip32PrivateKey extends Bip32PublicInfo {
  /** 32-byte child private key. The caller owns it and must wipe() it after use. */
  privateKey: Uint8Array;
}

export interface Bip32Options {
  network?: Bip32Network;
}

const STEP = /^(0|[1-9][0-9]*)(['hH]?)$/;

/**
 * Parses "m", "m/44'/60'/0'/0/0", "m/84h/0h/0h" into child indices (hardened ones with the
 * 2^31 offset). Each index is < 2^31 before the offset; no leading zeros, no empty steps,
 * at most SIGNER_LIMITS.maxPathDepth (16) levels.
 */
export function parseDerivationPath(path: unknown, field = 'path'): number[] {
  const s = readString(path, field);
  if (s.length > 4096) throw invalidParams(field, 'path too long (more than 4096 characters)');
  const parts = s.split('/');
  if (parts[0] !== 'm') throw invalidParams(field, 'must start with "m"');
  const steps = parts.slice(1);
  if (steps.length > MAX_DEPTH) throw invalidParams(field, overLimit(`a path of ${steps.length} levels`, 'maxPathDepth'));
  return steps.map((step, i) => {
    const m = STEP.exec(step);
    if (!m) throw invalidParams(field, `step ${i + 1} is not a decimal index with optional ' or h`);
    const n = Number(m[1]);
    if (m[1]!.length > 10 || n >= HARDENED_OFFSET) throw invalidParams(field, `step ${i + 1} is not below 2^31`);
    return m[2] === '' ? n : n + HARDENED_OFFSET;
  });
}

export function formatDerivationPath(indices: readonly number[]): string {
  return ['m', ...indices.map((i) => (i >= HARDENED_OFFSET ? `${i - HARDENED_OFFSET}'` : `${i}`))].join('/');
}

export function fingerprintHex(fp: number): string {
  return fp.toString(16).padStart(8, '0');
}

/** Builds the master key from a validated seed, runs `fn`, and wipes the master key whatever happens. */
export function withMasterKey<T>(seed: Uint8Array, network: Bip32Network, fn: (master: HDKey) => T): T {
  const s = readSeed(seed);
  let master: HDKey;
  try {
    master = HDKey.fromMasterSeed(s, VERSIONS[network]);
  } catch (e) {
    // IL = 0 or ≥ n for this seed: BIP32 says the seed is unusable.
    throw new SigningError('SIGN_INVALID_KEY', 'seed does not produce a valid BIP32 master key', { cause: e });
  }
  try {
    return fn(master);
  } finally {
    master.wipePrivateData();
  }
}

/**
 * Walks `indices` from `master`, wiping each intermediate node. The returned node is always a
 * new HDKey (for the empty path, a copy of the master), so the caller can wipe it without
 * disturbing `master`.
 */
export function deriveNode(master: HDKey, indices: readonly number[]): HDKey {
  if (indices.length === 0) {
    const priv = master.privateKey;
    const chainCode = master.chainCode;
    if (priv === null || chainCode === null) throw new SigningError('SIGN_INTERNAL', 'master key without private key');
    try {
      return guarded('BIP32 copy', () => new HDKey({ versions: master.versions, chainCode, privateKey: priv }));
    } finally {
      wipe(priv); // the getter handed us a copy; HDKey keeps its own
    }
  }
  let node = master;
  try {
    for (const index of indices) {
      const child = guarded('BIP32 derivation', () => node.deriveChild(index));
      if (node !== master) node.wipePrivateData();
      node = child;
      if (child.index !== index) {
        // @scure/bip32 moves to the next index when IL >= n (probability ~2^-127); refuse rather
        // than hand out a key for a path other than the one asked for.
        throw new SigningError('SIGN_INTERNAL', 'BIP32 derivation hit an invalid child index');
      }
    }
    return node;
  } catch (e) {
    if (node !== master) node.wipePrivateData();
    throw e;
  }
}

/**
 * Derivations for one request: every node is derived once and cached by its
 * path, so paths sharing a prefix (m/84'/0'/0'/0/i) cost one step each after
 * the first. Counts the steps computed against `maxSteps`. Nodes belong to
 * the cache: the caller never wipes them; `wipe()` wipes them all, the copy of
 * the master handed out for the empty path included (it is not a derivation
 * step, so it does not count against `maxSteps`).
 */
export interface DerivationCache {
  derive(indices: readonly number[], field: string): HDKey;
  readonly steps: number;
  wipe(): void;
}

export function createDerivationCache(master: HDKey, maxSteps: number = SIGNER_LIMITS.maxDerivationSteps): DerivationCache {
  const nodes = new Map<string, HDKey>();
  let steps = 0;
  return {
    derive(indices, field) {
      if (indices.length > MAX_DEPTH) throw invalidParams(field, overLimit(`a path of ${indices.length} levels`, 'maxPathDepth'));
      let node = master;
      let key = '';
      for (const index of indices) {
        key += `/${index}`;
        const cached = nodes.get(key);
        if (cached) {
          node = cached;
          continue;
        }
        if (++steps > maxSteps) throw invalidParams(field, overLimit(`${steps} BIP32 derivations in one request`, 'maxDerivationSteps', maxSteps));
        const parent = node;
        const child = guarded('BIP32 derivation', () => parent.deriveChild(index));
        nodes.set(key, child);
        if (child.index !== index) throw new SigningError('SIGN_INTERNAL', 'BIP32 derivation hit an invalid child index');
        node = child;
      }
      if (node !== master) return node;
      // The empty path (an entry naming the master key itself): hand out a copy, never `master`,
      // whose owner wipes it, and keep the copy in `nodes` like any derived node, so wipe()
      // reaches it. One copy per cache: every empty-path entry of the request shares it.
      let copy = nodes.get('');
      if (!copy) {
        copy = deriveNode(master, []);
        nodes.set('', copy);
      }
      return copy;
    },
    get steps() {
      return steps;
    },
    wipe() {
      for (const n of nodes.values()) n.wipePrivateData();
      nodes.clear();
    },
  };
}

function publicInfo(master: HDKey, node: HDKey, indices: readonly number[]): Bip32PublicInfo {
  const pub = node.publicKey;
  if (pub === null) throw new SigningError('SIGN_INTERNAL', 'derived key without public key');
  return {
    path: formatDerivationPath(indices),
    masterFingerprint: fingerprintHex(master.fingerprint),
    fingerprint: fingerprintHex(node.fingerprint),
    parentFingerprint: fingerprintHex(node.parentFingerprint),
    depth: node.depth,
    index: node.index,
    publicKey: hexOf(pub),
    xOnlyPublicKey: hexOf(pub.subarray(1)),
    xpub: node.publicExtendedKey,
    ethereumAddress: addressFromPublicKey(pub),
  };
}

/** `signer_deriveKey`: public data of the key at `path` under `seed`. */
export function deriveBip32PublicKey(seed: Uint8Array, path: unknown, opts: Bip32Options = {}): Bip32PublicInfo {
  const indices = parseDerivationPath(path);
  return withMasterKey(seed, readNetwork(opts.network), (master) => {
    const node = deriveNode(master, indices);
    try {
      return publicInfo(master, node, indices);
    } finally {
      node.wipePrivateData();
    }
  });
}

/** Child private key bytes for in-enclave signing. The caller must wipe `privateKey`. */
export function deriveBip32PrivateKey(seed: Uint8Array, path: unknown, opts: Bip32Options = {}): Bip32PrivateKey {
  const indices = parseDerivationPath(path);
  return withMasterKey(seed, readNetwork(opts.network), (master) => {
    const node = deriveNode(master, indices);
    try {
      const privateKey = node.privateKey;
      if (privateKey === null) throw new SigningError('SIGN_INTERNAL', 'derived key without private key');
      return { ...publicInfo(master, node, indices), privateKey };
    } finally {
      node.wipePrivateData();
    }
  });
}

function readNetwork(v: unknown): Bip32Network {
  if (v === undefined) return 'mainnet';
  if (v === 'mainnet' || v === 'testnet') return v;
  throw invalidParams('network', 'expected "mainnet" or "testnet"');
}
