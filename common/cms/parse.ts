/**
 * Parser for the one CMS shape KMS returns as `CiphertextForRecipient`
 * (RFC 5652 EnvelopedData inside a ContentInfo, BER with indefinite lengths).
 * It is a whitelist, not a general CMS reader: every version, OID and
 * parameter must be exactly what KMS sends, anything else is a typed refusal.
 * See docs/cms.md for the byte layout.
 */
import { Asn1Error, TagClass, UNIVERSAL, children, content, decodeOid, parseBer, type Asn1Node } from '../der.js';
import { concatBytes } from '../bytes.js';
import { CmsError } from './errors.js';
import { AES256_IV_BYTES, OID, SUBJECT_KEY_ID_BYTES, oidName } from './profile.js';
import { AES_BLOCK } from './padding.js';

/** KMS plaintexts are at most 4 KiB; anything far larger is not from KMS. */
export const MAX_CMS_BYTES = 64 * 1024;
/** Nesting allowed for BER constructed OCTET STRING segments inside encryptedContent. */
const MAX_SEGMENT_DEPTH = 4;

export type EncryptedContentEncoding = 'primitive' | 'constructed';

export interface EnvelopedInfo {
  /** EnvelopedData version; always 2 (KMS uses a subjectKeyIdentifier rid). */
  readonly version: 2;
  readonly recipient: {
    /** KeyTransRecipientInfo version; always 2. */
    readonly version: 2;
    /** rid [0]: SHA-256 of the recipient's SubjectPublicKeyInfo DER (32 bytes). */
    readonly subjectKeyIdentifier: Uint8Array;
    readonly keyEncryptionAlgorithm: { readonly oid: typeof OID.rsaesOaep; readonly hash: 'sha256'; readonly mgfHash: 'sha256' };
    /** RSA-OAEP ciphertext of the 32-byte content-encryption key. */
    readonly encryptedKey: Uint8Array;
  };
  readonly contentType: typeof OID.data;
  readonly contentEncryptionAlgorithm: { readonly oid: typeof OID.aes256Cbc; readonly iv: Uint8Array };
  /** AES-256-CBC ciphertext, chunks already concatenated. */
  readonly encryptedContent: Uint8Array;
  readonly encryptedContentEncoding: EncryptedContentEncoding;
  /** Number of OCTET STRING segments (1 for primitive). */
  readonly encryptedContentChunks: number;
}

/** Parses and validates a `CiphertextForRecipient`; every refusal is a CmsError. */
export function parseEnvelopedData(ber: Uint8Array): EnvelopedInfo {
  if (!(ber instanceof Uint8Array)) throw new CmsError('CMS_MALFORMED', 'CiphertextForRecipient must be bytes');
  if (ber.length > MAX_CMS_BYTES) throw new CmsError('CMS_MALFORMED', `CiphertextForRecipient is ${ber.length} bytes, limit is ${MAX_CMS_BYTES}`);
  try {
    return parseContentInfo(parseBer(ber));
  } catch (e) {
    if (e instanceof Asn1Error) throw new CmsError('CMS_MALFORMED', `CiphertextForRecipient is not valid BER: ${e.message}`, { cause: e });
    throw e;
  }
}

// ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }
function parseContentInfo(top: Asn1Node): EnvelopedInfo {
  const [type, wrapped, ...rest] = seq(top, 'ContentInfo');
  const ct = oid(type, 'ContentInfo.contentType');
  if (ct !== OID.envelopedData) {
    throw new CmsError('CMS_UNSUPPORTED_CONTENT_TYPE', `ContentInfo holds ${oidName(ct)}, expected envelopedData`);
  }
  const inner = cons(wrapped, 0, 'ContentInfo.content [0]', TagClass.Context);
  if (inner.length !== 1 || rest.length !== 0) throw malformed('ContentInfo must be exactly { contentType, [0] EnvelopedData }', top);
  return parseEnvelopedDataBody(inner[0]!);
}

// EnvelopedData ::= SEQUENCE { version, originatorInfo [0] OPTIONAL, recipientInfos SET,
//                              encryptedContentInfo, unprotectedAttrs [1] OPTIONAL }
function parseEnvelopedDataBody(n: Asn1Node): EnvelopedInfo {
  const items = seq(n, 'EnvelopedData');
  const [ver, ris, eci] = items;
  if (ver === undefined || ver.cls !== TagClass.Universal || ver.tag !== UNIVERSAL.INTEGER) throw malformed('EnvelopedData must start with its version', n);
  const version = smallVersion(ver, 'EnvelopedData.version');
  if (version !== 2) throw new CmsError('CMS_UNSUPPORTED_VERSION', `EnvelopedData version ${version}, KMS sends 2`);
  if (ris !== undefined && ris.cls === TagClass.Context && ris.tag === 0) throw malformed('EnvelopedData.originatorInfo is not used by KMS', ris);
  if (items.length !== 3) throw malformed(`EnvelopedData has ${items.length} fields; KMS sends exactly version, recipientInfos, encryptedContentInfo (no unprotectedAttrs)`, n);
  const recipient = parseRecipientInfos(ris!);
  return { version: 2, recipient, ...parseEncryptedContentInfo(eci!) };
}

function parseRecipientInfos(n: Asn1Node): EnvelopedInfo['recipient'] {
  const set = cons(n, UNIVERSAL.SET, 'EnvelopedData.recipientInfos');
  if (set.length !== 1) throw new CmsError('CMS_UNSUPPORTED_RECIPIENT', `recipientInfos holds ${set.length} recipients, KMS sends exactly one`);
  const ri = set[0]!;
  // KeyAgree [1], KEK [2], Password [3] and Other [4] recipient infos are context-tagged.
  if (ri.cls !== TagClass.Universal || ri.tag !== UNIVERSAL.SEQUENCE) {
    throw new CmsError('CMS_UNSUPPORTED_RECIPIENT', `recipient info is [${ri.tag}] (class ${ri.cls}), expected KeyTransRecipientInfo`);
  }
  return parseKeyTransRecipientInfo(ri);
}

// KeyTransRecipientInfo ::= SEQUENCE { version, rid, keyEncryptionAlgorithm, encryptedKey OCTET STRING }
function parseKeyTransRecipientInfo(n: Asn1Node): EnvelopedInfo['recipient'] {
  const items = seq(n, 'KeyTransRecipientInfo');
  const [ver, rid, alg, ek] = items;
  const version = smallVersion(ver, 'KeyTransRecipientInfo.version');
  if (version !== 2) throw new CmsError('CMS_UNSUPPORTED_VERSION', `KeyTransRecipientInfo version ${version}, KMS sends 2`);
  if (items.length !== 4) throw malformed(`KeyTransRecipientInfo has ${items.length} fields, expected 4`, n);
  // rid ::= CHOICE { issuerAndSerialNumber SEQUENCE, subjectKeyIdentifier [0] IMPLICIT OCTET STRING }
  if (rid!.cls !== TagClass.Context || rid!.tag !== 0 || rid!.constructed) {
    throw new CmsError('CMS_UNSUPPORTED_RECIPIENT', 'recipient identifier must be a primitive [0] subjectKeyIdentifier');
  }
  const ski = content(rid!);
  if (ski.length !== SUBJECT_KEY_ID_BYTES) {
    throw new CmsError('CMS_UNSUPPORTED_RECIPIENT', `subjectKeyIdentifier is ${ski.length} bytes, KMS uses the 32-byte SHA-256 of the SPKI`);
  }
  parseOaepAlgorithm(alg);
  const encryptedKey = prim(ek, UNIVERSAL.OCTET_STRING, 'KeyTransRecipientInfo.encryptedKey');
  if (encryptedKey.length === 0) throw malformed('encryptedKey is empty', ek!);
  return {
    version: 2,
    subjectKeyIdentifier: new Uint8Array(ski),
    keyEncryptionAlgorithm: { oid: OID.rsaesOaep, hash: 'sha256', mgfHash: 'sha256' },
    encryptedKey: new Uint8Array(encryptedKey),
  };
}

// RSAES-OAEP-params ::= SEQUENCE { hashFunc [0] DEFAULT sha1, maskGenFunc [1] DEFAULT mgf1SHA1,
//                                  pSourceFunc [2] DEFAULT pSpecifiedEmpty }
function parseOaepAlgorithm(n: Asn1Node | undefined): void {
  const { oid: alg, params } = algorithmIdentifier(n, 'keyEncryptionAlgorithm');
  if (alg !== OID.rsaesOaep) unsupported(`key transport ${oidName(alg)}, KMS uses id-RSAES-OAEP`);
  // Absent parameters mean SHA-1 / MGF1-SHA-1, which KMS never uses.
  if (params === undefined) unsupported('RSAES-OAEP without parameters means SHA-1; KMS uses SHA-256');
  const fields = seq(params, 'RSAES-OAEP-params');
  let next = 0;
  const take = (tag: number): Asn1Node | undefined => {
    const f = fields[next];
    if (f && f.cls === TagClass.Context && f.tag === tag) {
      next++;
      const inner = cons(f, tag, `RSAES-OAEP-params [${tag}]`, TagClass.Context);
      if (inner.length !== 1) throw malformed(`RSAES-OAEP-params [${tag}] must hold one element`, f);
      return inner[0];
    }
    return undefined;
  };
  const hashFunc = take(0);
  const maskGen = take(1);
  const pSource = take(2);
  if (next !== fields.length) throw malformed('RSAES-OAEP-params has unexpected fields', params);
  if (hashFunc === undefined) unsupported('RSAES-OAEP hash defaults to SHA-1; KMS uses SHA-256');
  requireSha256(hashFunc, 'RSAES-OAEP hashFunc');
  if (maskGen === undefined) unsupported('RSAES-OAEP mask generation defaults to MGF1-SHA-1; KMS uses MGF1-SHA-256');
  const mgf = algorithmIdentifier(maskGen, 'RSAES-OAEP maskGenFunc');
  if (mgf.oid !== OID.mgf1) unsupported(`mask generation ${oidName(mgf.oid)}, expected id-mgf1`);
  if (mgf.params === undefined) unsupported('MGF1 without a hash parameter');
  requireSha256(mgf.params, 'MGF1 hash');
  if (pSource !== undefined) {
    // DER would omit the default, but an explicit empty label means the same thing.
    const ps = algorithmIdentifier(pSource, 'RSAES-OAEP pSourceFunc');
    if (ps.oid !== OID.pSpecified) unsupported(`OAEP label source ${oidName(ps.oid)}, expected id-pSpecified`);
    const label = ps.params === undefined ? undefined : prim(ps.params, UNIVERSAL.OCTET_STRING, 'OAEP label');
    if (label === undefined || label.length !== 0) unsupported('OAEP label must be empty');
  }
}

/** sha256 with NULL or absent parameters (RFC 4055 §2.1: both occur, both mean none). */
function requireSha256(n: Asn1Node | undefined, what: string): void {
  const { oid: h, params } = algorithmIdentifier(n, what);
  if (h !== OID.sha256) unsupported(`${what} is ${oidName(h)}, KMS uses sha256`);
  if (params !== undefined) {
    if (params.cls !== TagClass.Universal || params.tag !== UNIVERSAL.NULL || params.constructed || params.contentEnd !== params.contentStart) {
      unsupported(`${what} sha256 parameters must be NULL or absent`);
    }
  }
}

// EncryptedContentInfo ::= SEQUENCE { contentType, contentEncryptionAlgorithm,
//                                     encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }
function parseEncryptedContentInfo(
  n: Asn1Node,
): Pick<EnvelopedInfo, 'contentType' | 'contentEncryptionAlgorithm' | 'encryptedContent' | 'encryptedContentEncoding' | 'encryptedContentChunks'> {
  const items = seq(n, 'EncryptedContentInfo');
  const [type, alg, ec] = items;
  const ct = oid(type, 'EncryptedContentInfo.contentType');
  if (ct !== OID.data) throw new CmsError('CMS_UNSUPPORTED_CONTENT_TYPE', `encrypted content type ${oidName(ct)}, expected id-data`);
  const { oid: cea, params } = algorithmIdentifier(alg, 'contentEncryptionAlgorithm');
  if (cea !== OID.aes256Cbc) unsupported(`content encryption ${oidName(cea)}, KMS uses aes256-CBC`);
  if (params === undefined) throw malformed('aes256-CBC parameters (the IV) are missing', alg!);
  const iv = prim(params, UNIVERSAL.OCTET_STRING, 'aes256-CBC IV');
  if (iv.length !== AES256_IV_BYTES) throw malformed(`aes256-CBC IV is ${iv.length} bytes, expected ${AES256_IV_BYTES}`, params);
  if (ec === undefined) throw malformed('encryptedContent is absent (detached content is not used by KMS)', n);
  if (items.length !== 3) throw malformed(`EncryptedContentInfo has ${items.length} fields, expected 3`, n);
  if (ec.cls !== TagClass.Context || ec.tag !== 0) throw malformed(`encryptedContent must be [0], found class ${ec.cls} tag ${ec.tag}`, ec);
  let encryptedContent: Uint8Array;
  let chunks: number;
  if (ec.constructed) {
    const segs: Uint8Array[] = [];
    collectSegments(ec, segs, 0);
    encryptedContent = concatBytes(...segs);
    chunks = segs.length;
  } else {
    encryptedContent = new Uint8Array(content(ec));
    chunks = 1;
  }
  if (encryptedContent.length === 0 || encryptedContent.length % AES_BLOCK !== 0) {
    throw malformed(`encryptedContent is ${encryptedContent.length} bytes, not a positive multiple of ${AES_BLOCK}`, ec);
  }
  return {
    contentType: OID.data,
    contentEncryptionAlgorithm: { oid: OID.aes256Cbc, iv: new Uint8Array(iv) },
    encryptedContent,
    encryptedContentEncoding: ec.constructed ? 'constructed' : 'primitive',
    encryptedContentChunks: chunks,
  };
}

/** BER constructed string: OCTET STRING segments, themselves possibly constructed (X.690 §8.7.3). */
function collectSegments(n: Asn1Node, out: Uint8Array[], depth: number): void {
  if (depth > MAX_SEGMENT_DEPTH) throw malformed('encryptedContent segments nested too deeply', n);
  for (const c of children(n)) {
    if (c.cls !== TagClass.Universal || c.tag !== UNIVERSAL.OCTET_STRING) {
      throw malformed(`encryptedContent segment must be an OCTET STRING, found class ${c.cls} tag ${c.tag}`, c);
    }
    if (c.constructed) collectSegments(c, out, depth + 1);
    else out.push(content(c));
  }
}

// ------------------------------------------------------------------ helpers

function malformed(msg: string, at: Asn1Node): CmsError {
  return new CmsError('CMS_MALFORMED', `${msg} (at byte ${at.start})`);
}

function unsupported(msg: string): never {
  throw new CmsError('CMS_UNSUPPORTED_ALGORITHM', msg);
}

function describe(n: Asn1Node): string {
  return `class ${n.cls} tag ${n.tag}${n.constructed ? ' constructed' : ''}`;
}

function cons(n: Asn1Node | undefined, tag: number, what: string, cls: TagClass = TagClass.Universal): Asn1Node[] {
  if (n === undefined) throw new CmsError('CMS_MALFORMED', `missing ${what}`);
  if (n.cls !== cls || n.tag !== tag || !n.constructed) throw malformed(`expected ${what}, found ${describe(n)}`, n);
  return children(n);
}

function seq(n: Asn1Node | undefined, what: string): Asn1Node[] {
  return cons(n, UNIVERSAL.SEQUENCE, what);
}

function prim(n: Asn1Node | undefined, tag: number, what: string, cls: TagClass = TagClass.Universal): Uint8Array {
  if (n === undefined) throw new CmsError('CMS_MALFORMED', `missing ${what}`);
  if (n.cls !== cls || n.tag !== tag || n.constructed) throw malformed(`expected primitive ${what}, found ${describe(n)}`, n);
  return content(n);
}

function oid(n: Asn1Node | undefined, what: string): string {
  return decodeOid(prim(n, UNIVERSAL.OID, what));
}

/** Versions are tiny INTEGERs; only the minimal one-byte form is accepted. */
function smallVersion(n: Asn1Node | undefined, what: string): number {
  const c = prim(n, UNIVERSAL.INTEGER, what);
  if (c.length !== 1 || c[0]! > 0x7f) throw malformed(`${what} must be a one-byte non-negative INTEGER`, n!);
  return c[0]!;
}

// AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }
function algorithmIdentifier(n: Asn1Node | undefined, what: string): { oid: string; params: Asn1Node | undefined } {
  const items = seq(n, what);
  if (items.length < 1 || items.length > 2) throw malformed(`${what} must be { algorithm, parameters? }`, n!);
  return { oid: oid(items[0], `${what}.algorithm`), params: items[1] };
}
