import { HDKey } from '@scure/bip32';
import { HDNodeWallet } from 'ethers';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createDerivationCache, deriveBip32PrivateKey, deriveBip32PublicKey, formatDerivationPath, parseDerivationPath } from './bip32.js';
import { SigningError } from './errors.js';
import { bytes, hex } from './test-helpers.js';

// BIP32 test vector 1 seed, and a 64-byte seed like BIP39 produces.
const SEED1 = bytes('000102030405060708090a0b0c0d0e0f');
const SEED64 = bytes(
  'fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542',
);

describe('signer_deriveKey (BIP32)', () => {
  it('BIP32 test vector 1: m and m/0H/1/2H/2/1000000000', () => {
    const m = deriveBip32PublicKey(SEED1, 'm');
    expect(m.xpub).toBe('xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8');
    expect(m.masterFingerprint).toBe('3442193e');
    const leaf = deriveBip32PublicKey(SEED1, "m/0H/1/2H/2/1000000000");
    expect(leaf.xpub).toBe('xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy');
    expect(leaf.path).toBe("m/0'/1/2'/2/1000000000");
    expect(leaf.depth).toBe(5);
    expect(leaf.index).toBe(1000000000);
  });

  const paths = ["m/44'/60'/0'/0/0", "m/84'/0'/0'/0/7", "m/86h/1h/0h/1/3", 'm/0/1/2', "m/2147483647'", 'm/2147483647'];
  for (const path of paths) {
    it(`${path}: public data and private key agree with ethers' independent HD implementation`, () => {
      const theirs = HDNodeWallet.fromSeed(SEED64).derivePath(path.replace(/h/g, "'"));
      const pub = deriveBip32PublicKey(SEED64, path);
      expect(pub.publicKey).toBe(theirs.publicKey);
      expect(pub.xpub).toBe(theirs.neuter().extendedKey);
      expect(`0x${pub.fingerprint}`).toBe(theirs.fingerprint);
      expect(`0x${pub.parentFingerprint}`).toBe(theirs.parentFingerprint);
      expect(`0x${pub.masterFingerprint}`).toBe(HDNodeWallet.fromSeed(SEED64).fingerprint);
      expect(pub.ethereumAddress).toBe(theirs.address);
      expect(pub.xOnlyPublicKey).toBe(`0x${theirs.publicKey.slice(4)}`);
      expect(pub).not.toHaveProperty('privateKey');

      const priv = deriveBip32PrivateKey(SEED64, path);
      expect(hex(priv.privateKey)).toBe(theirs.privateKey);
      expect(priv.xpub).toBe(pub.xpub);
    });
  }

  it('testnet versions give tpub', () => {
    expect(deriveBip32PublicKey(SEED64, "m/84'/1'/0'", { network: 'testnet' }).xpub.startsWith('tpub')).toBe(true);
    expect(() => deriveBip32PublicKey(SEED64, 'm', { network: 'regtest' as never })).toThrow(
      expect.objectContaining({ code: 'SIGN_INVALID_PARAMS', field: 'network' }),
    );
  });

  it('path parsing round-trips and treats h and \' alike', () => {
    expect(parseDerivationPath("m/44'/60h/0H/0/1")).toEqual([0x8000002c, 0x8000003c, 0x80000000, 0, 1]);
    expect(formatDerivationPath(parseDerivationPath("m/44h/60'/0'/0/1"))).toBe("m/44'/60'/0'/0/1");
    expect(parseDerivationPath('m')).toEqual([]);
  });

  const badPaths: [string, unknown][] = [
    ['empty', ''],
    ['trailing slash', 'm/'],
    ['uppercase M', 'M/0'],
    ['relative', '0/1'],
    ['double hardened mark', "m/0''"],
    ['leading zero', 'm/01'],
    ['index 2^31', 'm/2147483648'],
    ['hardened 2^31', "m/2147483648'"],
    ['negative', 'm/-1'],
    ['space', 'm/1/ 2'],
    ['empty step', 'm//1'],
    ['hex step', 'm/0x1'],
    ['huge number', `m/${'9'.repeat(30)}`],
    ['17 levels (finding 5: the limit is 16)', `m${'/0'.repeat(17)}`],
    ['255 hardened levels (finding 5)', `m${"/2147483647'".repeat(255)}`],
    ['not a string', 44],
    ['array', [44, 60]],
  ];
  for (const [name, path] of badPaths) {
    it(`refuses path: ${name}`, () => {
      let err: unknown;
      try {
        deriveBip32PublicKey(SEED64, path);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SigningError);
      expect(err).toMatchObject({ code: 'SIGN_INVALID_PARAMS', field: 'path' });
    });
  }
  it('finding 5: 16 levels is the maximum and works; 17 is refused naming the limit', () => {
    expect(deriveBip32PublicKey(SEED1, `m${'/1'.repeat(16)}`).depth).toBe(16);
    expect(() => deriveBip32PublicKey(SEED1, `m${"/1'".repeat(17)}`)).toThrow(/path: a path of 17 levels is over the limit of 16 \(maxPathDepth\)/);
  });

  it('seeds must be 16–64 bytes', () => {
    expect(deriveBip32PublicKey(new Uint8Array(16).fill(1), 'm').depth).toBe(0);
    for (const s of [new Uint8Array(15), new Uint8Array(65), new Uint8Array(0), 'seed' as unknown as Uint8Array]) {
      expect(() => deriveBip32PublicKey(s, 'm')).toThrow(expect.objectContaining({ code: 'SIGN_INVALID_KEY' }));
    }
  });
});

describe('zeroing of derived keys', () => {
  afterEach(() => vi.restoreAllMocks());

  it('every HDKey created during derivation has its private key wiped; the seed is left as given', () => {
    const created: HDKey[] = [];
    const fromSeed = HDKey.fromMasterSeed.bind(HDKey);
    vi.spyOn(HDKey, 'fromMasterSeed').mockImplementation((...a) => {
      const k = fromSeed(...a);
      created.push(k);
      return k;
    });
    const deriveChild = HDKey.prototype.deriveChild;
    vi.spyOn(HDKey.prototype, 'deriveChild').mockImplementation(function (this: HDKey, i: number) {
      const k = deriveChild.call(this, i);
      created.push(k);
      return k;
    });
    const seed = SEED64.slice();
    const pub = deriveBip32PublicKey(seed, "m/44'/60'/0'/0/0");
    const priv = deriveBip32PrivateKey(seed, "m/84'/0'/0'/0/0");
    const root = deriveBip32PrivateKey(seed, 'm');
    expect(created.length).toBe(1 + 5 + 1 + 5 + 1);
    for (const k of created) expect(k.privateKey).toBeNull();
    expect(seed).toEqual(SEED64);
    // What was returned is still usable by the caller, who wipes it.
    expect(pub.publicKey).toMatch(/^0x0[23]/);
    expect(priv.privateKey.some((b) => b !== 0)).toBe(true);
    expect(root.privateKey.some((b) => b !== 0)).toBe(true);
  });

  it('the derivation cache wipes every node it handed out, the copy of the master for the empty path included', () => {
    // Regression: derive([]) used to return a fresh copy of the master that was not kept in the
    // cache, so wipe() never reached it and the master private key stayed in the heap.
    const master = HDKey.fromMasterSeed(SEED64);
    const cache = createDerivationCache(master);
    const m1 = cache.derive([], 'p');
    const m2 = cache.derive([], 'p');
    const leaf = cache.derive([0, 1], 'p');
    expect(m1).not.toBe(master); // the caller never holds the master itself
    expect(m2).toBe(m1); // one copy per request, like any cached node
    expect(cache.steps).toBe(2); // copying the master is not a derivation step
    expect(m1.privateKey).toEqual(master.privateKey);
    expect(m1.publicExtendedKey).toBe(master.publicExtendedKey);
    const keyBytes = (m1 as unknown as { _privateKey: Uint8Array })._privateKey;
    cache.wipe();
    for (const k of [m1, leaf]) expect(k.privateKey).toBeNull();
    expect(keyBytes.every((b) => b === 0)).toBe(true);
    expect(master.privateKey).not.toBeNull(); // the master is its owner's to wipe (withMasterKey)
    master.wipePrivateData();
  });

  it('a failed derivation still wipes the master key', () => {
    const created: HDKey[] = [];
    const fromSeed = HDKey.fromMasterSeed.bind(HDKey);
    vi.spyOn(HDKey, 'fromMasterSeed').mockImplementation((...a) => {
      const k = fromSeed(...a);
      created.push(k);
      return k;
    });
    vi.spyOn(HDKey.prototype, 'deriveChild').mockImplementation(() => {
      throw new Error('boom');
    });
    expect(() => deriveBip32PrivateKey(SEED64, 'm/0')).toThrow(expect.objectContaining({ code: 'SIGN_INTERNAL' }));
    expect(created.length).toBe(1);
    expect(created[0]!.privateKey).toBeNull();
  });
});
