/**
 * Parser against the real-format vectors, and the whitelist: every field KMS
 * fixes (versions, OIDs, parameters, recipient shape) is varied one at a time
 * from a re-composition of the edgebit vector and must be refused with the
 * right code.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { concatBytes, toHex } from '../bytes.js';
import { der } from '../der.js';
import { readFixture, fixturePath } from '../../test/fixtures.js';
import { CmsError, type CmsErrorCode } from './errors.js';
import { parseEnvelopedData } from './parse.js';
import { OID } from './profile.js';

const edgebit = readFixture('kms', 'edgebit_ciphertext_for_recipient.ber');
const sdkc = readFixture('kms', 'sdkc_cms_test__input_ber.bin');
const spki = readFixture('kms', 'edgebit_test_rsa2048_public_spki.der');

const indef = (id: number, ...items: Uint8Array[]) => concatBytes(Uint8Array.of(id, 0x80), ...items, Uint8Array.of(0, 0));
const algId = (oid: string, ...params: Uint8Array[]) => der.seq(der.oid(oid), ...params);
const sha256Null = algId(OID.sha256, der.null());

interface Parts {
  outerType: string;
  edVersion: number;
  originatorInfo?: Uint8Array;
  recipients?: Uint8Array[];
  ktriVersion: number;
  rid: Uint8Array;
  keyEncAlg: Uint8Array;
  encryptedKey: Uint8Array;
  contentType: string;
  contentAlg: Uint8Array;
  encryptedContent: Uint8Array | undefined;
  unprotectedAttrs?: Uint8Array;
}

const fx = parseEnvelopedData(edgebit);
const oaepParams = (...fields: Uint8Array[]) => algId(OID.rsaesOaep, der.seq(...fields));
const standardOaep = oaepParams(der.explicit(0, sha256Null), der.explicit(1, algId(OID.mgf1, sha256Null)));

const base: Parts = {
  outerType: OID.envelopedData,
  edVersion: 2,
  ktriVersion: 2,
  rid: der.implicitPrim(0, fx.recipient.subjectKeyIdentifier),
  keyEncAlg: standardOaep,
  encryptedKey: fx.recipient.encryptedKey,
  contentType: OID.data,
  contentAlg: algId(OID.aes256Cbc, der.octets(fx.contentEncryptionAlgorithm.iv)),
  encryptedContent: indef(0xa0, der.octets(fx.encryptedContent)),
};

/** Re-assembles a CiphertextForRecipient in KMS's layout from parts. */
function compose(over: Partial<Parts> = {}): Uint8Array {
  const p = { ...base, ...over };
  const ktri = der.seq(der.int(p.ktriVersion), p.rid, p.keyEncAlg, der.octets(p.encryptedKey));
  const eci = indef(0x30, der.oid(p.contentType), p.contentAlg, ...(p.encryptedContent ? [p.encryptedContent] : []));
  const ed = indef(
    0x30,
    der.int(p.edVersion),
    ...(p.originatorInfo ? [p.originatorInfo] : []),
    der.set(...(p.recipients ?? [ktri])),
    eci,
    ...(p.unprotectedAttrs ? [p.unprotectedAttrs] : []),
  );
  return indef(0x30, der.oid(p.outerType), indef(0xa0, ed));
}

function refusal(bytes: Uint8Array): CmsError {
  try {
    parseEnvelopedData(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(CmsError);
    return e as CmsError;
  }
  throw new Error('parsed although it should not');
}

function expectCode(bytes: Uint8Array, code: CmsErrorCode): void {
  expect(refusal(bytes).code).toBe(code);
}

describe('parseEnvelopedData on the reference vectors', () => {
  it('reads the edgebit vector field by field', () => {
    expect(fx.version).toBe(2);
    expect(fx.recipient.version).toBe(2);
    expect(fx.recipient.keyEncryptionAlgorithm).toEqual({ oid: '1.2.840.113549.1.1.7', hash: 'sha256', mgfHash: 'sha256' });
    expect(fx.recipient.encryptedKey.length).toBe(256);
    expect(fx.contentType).toBe('1.2.840.113549.1.7.1');
    expect(fx.contentEncryptionAlgorithm.oid).toBe('2.16.840.1.101.3.4.1.42');
    expect(toHex(fx.contentEncryptionAlgorithm.iv)).toBe('432bffaba264af82ce07c9bebeb52531');
    expect(fx.encryptedContent.length).toBe(48);
    expect(fx.encryptedContentEncoding).toBe('constructed');
    expect(fx.encryptedContentChunks).toBe(1);
  });

  it('its rid is SHA-256 of the fixture SPKI', async () => {
    const { createHash } = await import('node:crypto');
    expect(toHex(fx.recipient.subjectKeyIdentifier)).toBe(createHash('sha256').update(spki).digest('hex'));
  });

  it('matches the aws-nitro-enclaves-sdk-c parse vectors (encrypted key, IV, ciphertext)', () => {
    const info = parseEnvelopedData(sdkc);
    expect(toHex(info.recipient.encryptedKey)).toBe(toHex(readFixture('kms', 'sdkc_cms_test__encrypted_key_out.bin')));
    expect(toHex(info.contentEncryptionAlgorithm.iv)).toBe(toHex(readFixture('kms', 'sdkc_cms_test__iv_out.bin')));
    expect(toHex(info.encryptedContent)).toBe(toHex(readFixture('kms', 'sdkc_cms_test__ciphertext_out.bin')));
    expect(info.encryptedContentEncoding).toBe('constructed');
  });

  it('parses the CiphertextForRecipient of the sample KMS Decrypt response', () => {
    const resp = JSON.parse(readFileSync(fixturePath('kms', 'sample_decrypt_response_shape.json'), 'utf8')) as { CiphertextForRecipient: string };
    const info = parseEnvelopedData(new Uint8Array(Buffer.from(resp.CiphertextForRecipient, 'base64')));
    expect(info.recipient.encryptedKey.length).toBe(256);
    expect(info.encryptedContent.length).toBe(16);
    expect(info.recipient.subjectKeyIdentifier.length).toBe(32);
  });

  it('returns copies, not views into the input', () => {
    const buf = edgebit.slice();
    const info = parseEnvelopedData(buf);
    buf.fill(0);
    expect(toHex(info.contentEncryptionAlgorithm.iv)).toBe('432bffaba264af82ce07c9bebeb52531');
  });
});

describe('compose() reproduces KMS layout', () => {
  it('re-assembling the edgebit vector from its parts gives the identical bytes', () => {
    expect(toHex(compose())).toBe(toHex(edgebit));
  });
});

describe('encryptedContent encodings', () => {
  const ct = fx.encryptedContent;
  it('primitive [0]', () => {
    const info = parseEnvelopedData(compose({ encryptedContent: der.implicitPrim(0, ct) }));
    expect(info.encryptedContentEncoding).toBe('primitive');
    expect(toHex(info.encryptedContent)).toBe(toHex(ct));
  });
  it('constructed, definite length, several chunks', () => {
    const info = parseEnvelopedData(compose({ encryptedContent: der.implicitCons(0, concatBytes(der.octets(ct.subarray(0, 5)), der.octets(ct.subarray(5, 40)), der.octets(ct.subarray(40)))) }));
    expect(info.encryptedContentChunks).toBe(3);
    expect(toHex(info.encryptedContent)).toBe(toHex(ct));
  });
  it('constructed with nested constructed OCTET STRING segments (X.690 §8.7.3) and empty chunks', () => {
    const nested = indef(0x24, der.octets(ct.subarray(0, 16)), der.octets(new Uint8Array(0)), der.octets(ct.subarray(16, 20)));
    const info = parseEnvelopedData(compose({ encryptedContent: indef(0xa0, nested, der.octets(ct.subarray(20))) }));
    expect(toHex(info.encryptedContent)).toBe(toHex(ct));
  });
  it('segments that are not OCTET STRINGs are refused', () => {
    expectCode(compose({ encryptedContent: indef(0xa0, der.utf8('x'.repeat(48))) }), 'CMS_MALFORMED');
  });
  it('absent, empty or non-block-multiple content is refused', () => {
    expectCode(compose({ encryptedContent: undefined }), 'CMS_MALFORMED');
    expectCode(compose({ encryptedContent: der.implicitPrim(0, new Uint8Array(0)) }), 'CMS_MALFORMED');
    expectCode(compose({ encryptedContent: der.implicitPrim(0, ct.subarray(0, 47)) }), 'CMS_MALFORMED');
    expectCode(compose({ encryptedContent: der.octets(ct) }), 'CMS_MALFORMED'); // universal, not [0]
  });
});

describe('the whitelist refuses everything KMS does not send', () => {
  it('other content types', () => {
    expectCode(compose({ outerType: '1.2.840.113549.1.7.2' }), 'CMS_UNSUPPORTED_CONTENT_TYPE'); // signedData
    expectCode(compose({ outerType: '1.2.840.113549.1.9.16.1.23' }), 'CMS_UNSUPPORTED_CONTENT_TYPE'); // authEnvelopedData
    expectCode(compose({ contentType: '1.2.840.113549.1.7.2' }), 'CMS_UNSUPPORTED_CONTENT_TYPE');
  });

  it('other versions', () => {
    for (const v of [0, 1, 3, 4]) expectCode(compose({ edVersion: v }), 'CMS_UNSUPPORTED_VERSION');
    for (const v of [0, 3]) expectCode(compose({ ktriVersion: v }), 'CMS_UNSUPPORTED_VERSION');
  });

  it('originatorInfo and unprotectedAttrs', () => {
    expectCode(compose({ originatorInfo: der.implicitCons(0, new Uint8Array(0)) }), 'CMS_MALFORMED');
    expectCode(compose({ unprotectedAttrs: der.implicitCons(1, der.seq(der.oid('1.2.3'), der.set(der.null()))) }), 'CMS_MALFORMED');
  });

  it('zero, two, or non-KeyTrans recipients', () => {
    const ktri = der.seq(der.int(2), base.rid, base.keyEncAlg, der.octets(base.encryptedKey));
    expectCode(compose({ recipients: [] }), 'CMS_UNSUPPORTED_RECIPIENT');
    expectCode(compose({ recipients: [ktri, ktri] }), 'CMS_UNSUPPORTED_RECIPIENT');
    expectCode(compose({ recipients: [der.implicitCons(1, der.int(3))] }), 'CMS_UNSUPPORTED_RECIPIENT'); // KeyAgreeRecipientInfo
    expectCode(compose({ recipients: [der.implicitCons(2, der.int(4))] }), 'CMS_UNSUPPORTED_RECIPIENT'); // KEKRecipientInfo
  });

  it('a rid that is not a 32-byte [0] subjectKeyIdentifier', () => {
    const issuerAndSerial = der.seq(der.seq(der.set(der.seq(der.oid('2.5.4.3'), der.utf8('x')))), der.int(1));
    expectCode(compose({ rid: issuerAndSerial }), 'CMS_UNSUPPORTED_RECIPIENT');
    expectCode(compose({ rid: der.implicitPrim(0, new Uint8Array(20)) }), 'CMS_UNSUPPORTED_RECIPIENT'); // SHA-1 style SKI
    expectCode(compose({ rid: der.implicitCons(0, der.octets(new Uint8Array(32))) }), 'CMS_UNSUPPORTED_RECIPIENT');
    expectCode(compose({ rid: der.implicitPrim(1, new Uint8Array(32)) }), 'CMS_UNSUPPORTED_RECIPIENT');
  });

  it('key transport other than RSAES-OAEP(SHA-256, MGF1-SHA-256, empty label)', () => {
    const mgf = (h: Uint8Array) => der.explicit(1, algId(OID.mgf1, h));
    const cases: [string, Uint8Array][] = [
      ['RSAES-PKCS1-v1_5', algId('1.2.840.113549.1.1.1', der.null())],
      ['OAEP without params (SHA-1)', algId(OID.rsaesOaep)],
      ['OAEP with empty params (SHA-1 defaults)', oaepParams()],
      ['OAEP missing hashFunc', oaepParams(mgf(sha256Null))],
      ['OAEP missing maskGenFunc', oaepParams(der.explicit(0, sha256Null))],
      ['OAEP SHA-1', oaepParams(der.explicit(0, algId('1.3.14.3.2.26', der.null())), mgf(sha256Null))],
      ['OAEP SHA-384', oaepParams(der.explicit(0, algId('2.16.840.1.101.3.4.2.2', der.null())), mgf(sha256Null))],
      ['MGF1-SHA-1', oaepParams(der.explicit(0, sha256Null), mgf(algId('1.3.14.3.2.26', der.null())))],
      ['MGF other than MGF1', oaepParams(der.explicit(0, sha256Null), der.explicit(1, algId('1.2.840.113549.1.1.9', sha256Null)))],
      ['MGF1 without hash', oaepParams(der.explicit(0, sha256Null), der.explicit(1, algId(OID.mgf1)))],
      ['sha256 with non-NULL params', oaepParams(der.explicit(0, algId(OID.sha256, der.octets(new Uint8Array(0)))), mgf(sha256Null))],
      ['non-empty label', oaepParams(der.explicit(0, sha256Null), mgf(sha256Null), der.explicit(2, algId(OID.pSpecified, der.octets(Uint8Array.of(1)))))],
      ['label source other than pSpecified', oaepParams(der.explicit(0, sha256Null), mgf(sha256Null), der.explicit(2, algId('1.2.3.4', der.octets(new Uint8Array(0)))))],
    ];
    for (const [what, alg] of cases) expect(refusal(compose({ keyEncAlg: alg })).code, what).toBe('CMS_UNSUPPORTED_ALGORITHM');
  });

  it('accepts the equivalent OAEP spellings: sha256 params absent, explicit empty pSpecified label', () => {
    const sha256Absent = algId(OID.sha256);
    const alg = oaepParams(der.explicit(0, sha256Absent), der.explicit(1, algId(OID.mgf1, sha256Absent)), der.explicit(2, algId(OID.pSpecified, der.octets(new Uint8Array(0)))));
    expect(parseEnvelopedData(compose({ keyEncAlg: alg })).recipient.keyEncryptionAlgorithm.hash).toBe('sha256');
  });

  it('OAEP params out of order or duplicated are malformed', () => {
    expectCode(compose({ keyEncAlg: oaepParams(der.explicit(1, algId(OID.mgf1, sha256Null)), der.explicit(0, sha256Null)) }), 'CMS_MALFORMED');
    expectCode(compose({ keyEncAlg: oaepParams(der.explicit(0, sha256Null), der.explicit(0, sha256Null), der.explicit(1, algId(OID.mgf1, sha256Null))) }), 'CMS_MALFORMED');
  });

  it('content encryption other than aes256-CBC with a 16-byte IV', () => {
    const iv = der.octets(fx.contentEncryptionAlgorithm.iv);
    for (const oid of ['2.16.840.1.101.3.4.1.2', '2.16.840.1.101.3.4.1.22', '2.16.840.1.101.3.4.1.46', '1.2.840.113549.3.7']) {
      expectCode(compose({ contentAlg: algId(oid, iv) }), 'CMS_UNSUPPORTED_ALGORITHM');
    }
    expectCode(compose({ contentAlg: algId(OID.aes256Cbc) }), 'CMS_MALFORMED');
    expectCode(compose({ contentAlg: algId(OID.aes256Cbc, der.octets(new Uint8Array(12))) }), 'CMS_MALFORMED');
    expectCode(compose({ contentAlg: algId(OID.aes256Cbc, der.null()) }), 'CMS_MALFORMED');
  });

  it('an empty encryptedKey', () => {
    expectCode(compose({ encryptedKey: new Uint8Array(0) }), 'CMS_MALFORMED');
  });

  it('same-length OID swaps inside the real vector', () => {
    // Swap the last byte of an OID in place, keeping every length intact.
    const swap = (oid: string, to: string): Uint8Array => {
      const from = Buffer.from(der.oid(oid));
      const repl = der.oid(to);
      expect(repl.length).toBe(from.length);
      const out = Buffer.from(edgebit);
      const at = out.indexOf(from);
      expect(at).toBeGreaterThan(0);
      out.set(repl, at);
      return new Uint8Array(out);
    };
    expectCode(swap(OID.rsaesOaep, '1.2.840.113549.1.1.1'), 'CMS_UNSUPPORTED_ALGORITHM'); // RSAES-PKCS1-v1_5
    expectCode(swap(OID.aes256Cbc, '2.16.840.1.101.3.4.1.2'), 'CMS_UNSUPPORTED_ALGORITHM'); // aes128-CBC
    expectCode(swap(OID.sha256, '2.16.840.1.101.3.4.2.2'), 'CMS_UNSUPPORTED_ALGORITHM'); // first sha256 = OAEP hash → sha384
    expectCode(swap(OID.mgf1, '1.2.840.113549.1.1.9'), 'CMS_UNSUPPORTED_ALGORITHM');
    expectCode(swap(OID.envelopedData, '1.2.840.113549.1.7.2'), 'CMS_UNSUPPORTED_CONTENT_TYPE');
    expect(refusal(swap(OID.aes256Cbc, '2.16.840.1.101.3.4.1.2')).message).toContain('aes128-CBC');
  });
});

describe('BER framing', () => {
  it('trailing bytes, missing end-of-contents, non-bytes and oversize input are malformed', () => {
    expectCode(concatBytes(edgebit, Uint8Array.of(0)), 'CMS_MALFORMED');
    expectCode(edgebit.subarray(0, edgebit.length - 2), 'CMS_MALFORMED');
    expectCode(new Uint8Array(0), 'CMS_MALFORMED');
    expectCode('MIA=' as unknown as Uint8Array, 'CMS_MALFORMED');
    expectCode(new Uint8Array(64 * 1024 + 1), 'CMS_MALFORMED');
  });
  it('a primitive element dressed as constructed is refused (OID with the constructed bit)', () => {
    const out = edgebit.slice();
    expect(out[2]).toBe(0x06);
    out[2] = 0x26;
    expectCode(out, 'CMS_MALFORMED');
  });
  it('the same structure with definite lengths (DER) still parses', () => {
    const ktri = der.seq(der.int(2), base.rid, base.keyEncAlg, der.octets(base.encryptedKey));
    const eci = der.seq(der.oid(OID.data), base.contentAlg, der.implicitPrim(0, fx.encryptedContent));
    const bytes = der.seq(der.oid(OID.envelopedData), der.explicit(0, der.seq(der.int(2), der.set(ktri), eci)));
    expect(toHex(parseEnvelopedData(bytes).encryptedContent)).toBe(toHex(fx.encryptedContent));
  });
});
