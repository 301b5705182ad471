/**
 * A simulated NSM for development and tests. It answers the same CBOR
 * requests as /dev/nsm (messages.ts) and emits attestation documents laid out
 * byte for byte like AWS's — untagged COSE_Sign1, protected {1: -35}, payload
 * keys in NSM's order, absent fields as null, a fresh ~3-hour leaf per
 * document — so every consumer runs its production code path. The one
 * difference is the chain: it ends at the dev CA's root, which no verifier
 * trusts unless told to (verifyAttestation rejects these documents with
 * ATTEST_UNTRUSTED_ROOT under the default AWS root).
 *
 * PCRs follow Nitro: 32 SHA-384 registers; 0–15 are set at "boot" and locked
 * (PCR0/1/2/8 from the image, PCR3 from the IAM role, PCR4 from the instance
 * id), 16–31 start at zero for the enclave to extend and lock.
 *
 * It prints nothing: the caller decides how loudly to say "DEV".
 */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { IndefiniteMap, encodeCbor, type CborKey, type CborValue } from '../../common/cbor.js';
import { signCoseSign1 } from '../../attestation/cose.js';
import { createNsmClient } from './client.js';
import { decodeRequest, encodeResponse, type NsmRequest, type NsmResponse } from './messages.js';
import {
  NSM_MAX_INPUT,
  NSM_MAX_PCRS,
  NSM_READONLY_PCRS,
  NSM_RANDOM_CHUNK,
  NSM_REQUEST_MAX_SIZE,
  NSM_RESPONSE_MAX_SIZE,
  NsmError,
  PCR_LENGTH,
  wireErrorCode,
  type Nsm,
} from './nsm.js';

export const SIMULATED_NSM_VERSION = { major: 1, minor: 0, patch: 0 } as const;
export const DEFAULT_IMAGE_ID = 'enclave-signer-dev';
/** Looks like an EC2 instance id; all zeros so nobody mistakes it for a real one. */
export const DEFAULT_INSTANCE_ID = 'i-00000000000000000';
export const DEFAULT_IAM_ROLE_ARN = 'arn:aws:iam::000000000000:role/enclave-signer-dev';

/**
 * What the simulated NSM needs from a CA: dev/ca's DevCa has this shape. Named
 * here, not imported, because enclave/ never imports dev/ (docs/boundaries.md);
 * the simulated NSM itself is dev-only and kept out of the image bundle
 * (build/bundle-contents.test.ts).
 */
export interface SimulatedNsmCa {
  root: { certDer: Uint8Array };
  intermediate: { certDer: Uint8Array };
  /** A fresh P-384 leaf for one attestation document, issued by the intermediate. */
  issueAttestationLeaf(subjectCn: string, now?: Date): { certDer: Uint8Array; key: KeyObject };
}

export interface SimulatedNsmOptions {
  ca: SimulatedNsmCa;
  /**
   * PCR values to report (index 0–15 → 48 bytes), e.g. PCR0/1/2/8 as measured
   * from a real EIF. Entries given here win over every default below.
   */
  pcrs?: Map<number, Uint8Array>;
  /** Seeds the default PCR0/1/2/8 (see simulatedImagePcrs). Default DEFAULT_IMAGE_ID. */
  imageId?: string;
  /** PCR4 = SHA-384(48 zero bytes ‖ instance id). Default: taken from moduleId, else DEFAULT_INSTANCE_ID. */
  instanceId?: string;
  /** PCR3 = SHA-384(48 zero bytes ‖ role ARN); null leaves PCR3 zero (an instance without a role). */
  iamRoleArn?: string | null;
  /** Default `${instanceId}-enc${16 random hex}`, like a fresh enclave. */
  moduleId?: string;
  /** Debug-mode enclave: PCR0/1/2/8 read as zero, as on Nitro. */
  debug?: boolean;
  now?: () => Date;
  /** Payload and pcrs maps indefinite-length, as newer NSM firmware writes them. */
  indefiniteLength?: boolean;
}

/** SHA-384(48 zero bytes ‖ data): a PCR extended once from its reset value — how Nitro sets PCR3/PCR4. */
export function pcrExtendFromZero(data: Uint8Array | string): Uint8Array {
  const d = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return new Uint8Array(createHash('sha384').update(new Uint8Array(PCR_LENGTH)).update(d).digest());
}

/** PCR4 for an instance id (verified against real documents: module_id "i-…-enc…" → PCR4). */
export function instancePcr(instanceId: string): Uint8Array {
  return pcrExtendFromZero(instanceId);
}

/** PCR3 for an IAM role ARN. */
export function iamRolePcr(arn: string): Uint8Array {
  return pcrExtendFromZero(arn);
}

/**
 * Deterministic stand-ins for PCR0/1/2/8 of an image called `imageId`: each
 * is a register extended once with a 48-byte digest, like the real ones, but
 * derived from the name instead of an EIF. Real measurements come from
 * attestation/ (EIF measuring) and are passed in `pcrs`.
 */
export function simulatedImagePcrs(imageId: string = DEFAULT_IMAGE_ID): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>();
  for (const i of [0, 1, 2, 8]) {
    const digest = createHash('sha384').update(`enclave-signer simulated image ${JSON.stringify(imageId)} PCR${i}`).digest();
    m.set(i, pcrExtendFromZero(new Uint8Array(digest)));
  }
  return m;
}

function configError(msg: string): NsmError {
  return new NsmError('NSM_INVALID_ARGUMENT', `simulated NSM: ${msg}`);
}

/** Builds the boot-time PCR bank from the options. */
function bootPcrs(opts: SimulatedNsmOptions, instanceId: string): Uint8Array[] {
  const bank: Uint8Array[] = Array.from({ length: NSM_MAX_PCRS }, () => new Uint8Array(PCR_LENGTH));
  if (!opts.debug) for (const [i, v] of simulatedImagePcrs(opts.imageId ?? DEFAULT_IMAGE_ID)) bank[i] = v;
  const role = opts.iamRoleArn === undefined ? DEFAULT_IAM_ROLE_ARN : opts.iamRoleArn;
  if (role !== null) bank[3] = iamRolePcr(role);
  bank[4] = instancePcr(instanceId);
  for (const [i, v] of opts.pcrs ?? []) {
    if (!Number.isInteger(i) || i < 0 || i >= NSM_READONLY_PCRS) throw configError(`preset PCR index ${i} is outside 0..15 (PCR16–31 are set by extending)`);
    if (!(v instanceof Uint8Array) || v.length !== PCR_LENGTH) throw configError(`PCR${i} must be ${PCR_LENGTH} bytes`);
    bank[i] = new Uint8Array(v);
  }
  return bank;
}

/** The device side: CBOR request in, CBOR response out, NSM semantics in between. */
export interface SimulatedNsmDevice {
  process(request: Uint8Array): Uint8Array;
  close(): void;
  readonly moduleId: string;
}

export function createSimulatedNsmDevice(opts: SimulatedNsmOptions): SimulatedNsmDevice {
  if (!opts || typeof opts.ca?.issueAttestationLeaf !== 'function') throw configError('a dev CA is required (opts.ca)');
  const instanceId = opts.instanceId ?? /^(i-[0-9a-f]+)-enc/.exec(opts.moduleId ?? '')?.[1] ?? DEFAULT_INSTANCE_ID;
  const moduleId = opts.moduleId ?? `${instanceId}-enc${randomBytes(8).toString('hex')}`;
  if (typeof moduleId !== 'string' || !/^[\x21-\x7e]{1,60}$/.test(moduleId)) throw configError('moduleId must be 1..60 printable ASCII characters');
  const ca = opts.ca;
  const now = opts.now ?? (() => new Date());
  const indefinite = opts.indefiniteLength === true;
  const pcrs: Uint8Array[] = bootPcrs(opts, instanceId);
  const locked = Array.from({ length: NSM_MAX_PCRS }, (_, i) => i < NSM_READONLY_PCRS);
  const cabundle = [new Uint8Array(ca.root.certDer), new Uint8Array(ca.intermediate.certDer)];

  const fail = (code: ConstructorParameters<typeof NsmError>[0], msg: string): never => {
    throw new NsmError(code, msg);
  };
  const checkIndex = (i: number): void => {
    if (i >= NSM_MAX_PCRS) fail('NSM_INVALID_INDEX', `PCR index ${i} is outside 0..${NSM_MAX_PCRS - 1}`);
  };

  function attestation(req: Extract<NsmRequest, { type: 'Attestation' }>): Uint8Array {
    for (const [name, v] of [
      ['user_data', req.userData],
      ['nonce', req.nonce],
      ['public_key', req.publicKey],
    ] as const) {
      if (v && v.length > NSM_MAX_INPUT) fail('NSM_INPUT_TOO_LARGE', `${name} is ${v.length} bytes; NSM accepts at most ${NSM_MAX_INPUT}`);
    }
    const t = now();
    const timestamp = t.getTime();
    if (!Number.isSafeInteger(timestamp) || timestamp <= 0) fail('NSM_INTERNAL_ERROR', 'clock returned an invalid time');
    const leaf = ca.issueAttestationLeaf(`${moduleId}.dev`, t);

    const mapOf = (): Map<CborKey, CborValue> => (indefinite ? new IndefiniteMap() : new Map());
    // "Map of all locked PCRs at the moment the attestation document was generated" (nsm-api).
    const pcrMap = mapOf();
    for (let i = 0; i < NSM_MAX_PCRS; i++) if (locked[i]) pcrMap.set(i, new Uint8Array(pcrs[i]!));
    // Field order is AttestationDoc's declaration order in nsm-api, which is what real documents show.
    const payload = mapOf();
    payload.set('module_id', moduleId);
    payload.set('digest', 'SHA384');
    payload.set('timestamp', timestamp);
    payload.set('pcrs', pcrMap);
    payload.set('certificate', leaf.certDer);
    payload.set('cabundle', cabundle);
    payload.set('public_key', req.publicKey);
    payload.set('user_data', req.userData);
    payload.set('nonce', req.nonce);
    return signCoseSign1(encodeCbor(payload), leaf.key);
  }

  function handle(req: NsmRequest): NsmResponse {
    switch (req.type) {
      case 'DescribePCR':
        checkIndex(req.index);
        return { type: 'DescribePCR', lock: locked[req.index]!, data: new Uint8Array(pcrs[req.index]!) };
      case 'ExtendPCR': {
        checkIndex(req.index);
        if (locked[req.index]) fail('NSM_READONLY_INDEX', `PCR${req.index} is locked`);
        const next = new Uint8Array(createHash('sha384').update(pcrs[req.index]!).update(req.data).digest());
        pcrs[req.index] = next;
        return { type: 'ExtendPCR', data: new Uint8Array(next) };
      }
      case 'LockPCR':
        checkIndex(req.index);
        if (req.index < NSM_READONLY_PCRS) fail('NSM_READONLY_INDEX', `PCR${req.index} is read-only and cannot be locked by the enclave`);
        locked[req.index] = true; // locking a locked PCR again is harmless, as with LockPCRs
        return { type: 'LockPCR' };
      case 'LockPCRs':
        if (req.range > NSM_MAX_PCRS) fail('NSM_INVALID_INDEX', `range ${req.range} exceeds the ${NSM_MAX_PCRS} PCRs`);
        for (let i = 0; i < req.range; i++) locked[i] = true;
        return { type: 'LockPCRs' };
      case 'DescribeNSM':
        return {
          type: 'DescribeNSM',
          versionMajor: SIMULATED_NSM_VERSION.major,
          versionMinor: SIMULATED_NSM_VERSION.minor,
          versionPatch: SIMULATED_NSM_VERSION.patch,
          moduleId,
          maxPcrs: NSM_MAX_PCRS,
          lockedPcrs: locked.flatMap((l, i) => (l ? [i] : [])),
          digest: 'SHA384',
        };
      case 'Attestation':
        return { type: 'Attestation', document: attestation(req) };
      case 'GetRandom':
        return { type: 'GetRandom', random: new Uint8Array(randomBytes(NSM_RANDOM_CHUNK)) };
    }
  }

  let closed = false;
  return {
    moduleId,
    process(request: Uint8Array): Uint8Array {
      let res: NsmResponse;
      try {
        if (closed) fail('NSM_INVALID_OPERATION', 'device is closed');
        if (request.length > NSM_REQUEST_MAX_SIZE) fail('NSM_INPUT_TOO_LARGE', 'request exceeds the NSM request buffer');
        res = handle(decodeRequest(request));
      } catch (e) {
        // Like the device: every failure is a Response::Error, never an exception across the boundary.
        res = { type: 'Error', error: e instanceof NsmError ? wireErrorCode(e.code) : 'InternalError' };
      }
      const out = encodeResponse(res);
      return out.length > NSM_RESPONSE_MAX_SIZE ? encodeResponse({ type: 'Error', error: 'BufferTooSmall' }) : out;
    },
    close(): void {
      closed = true;
    },
  };
}

/**
 * A simulated NSM (kind 'simulated'): the Nsm client over a simulated device.
 * Prints nothing; callers print the DEV banner.
 */
export function createSimulatedNsm(opts: SimulatedNsmOptions): Nsm {
  return createNsmClient(createSimulatedNsmDevice(opts), 'simulated');
}
