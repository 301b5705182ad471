/**
 * The Nsm interface over a request/response transport. Both implementations
 * use it: the hardware transport (a native addon doing the /dev/nsm ioctl,
 * later) and the simulated device. It does what nsm-api's driver and nsm-lib
 * do around the ioctl: encode the request, refuse requests larger than the
 * driver's buffer, decode the response, turn Response::Error into a typed
 * NsmError, and check that each answer is the one that was asked for.
 */
import { wipe } from '../../common/bytes.js';
import { encodeRequest, decodeResponse, type NsmRequest, type NsmResponse } from './messages.js';
import {
  NSM_MAX_RANDOM,
  NSM_REQUEST_MAX_SIZE,
  NSM_RESPONSE_MAX_SIZE,
  NsmError,
  PCR_LENGTH,
  nsmErrorCode,
  type AttestRequest,
  type Nsm,
  type NsmDescription,
  type PcrDescription,
} from './nsm.js';

export interface NsmTransport {
  /** Sends one CBOR request, returns the CBOR response (at most NSM_RESPONSE_MAX_SIZE bytes). */
  process(request: Uint8Array): Promise<Uint8Array> | Uint8Array;
  close(): void;
}

function optionalBytes(v: unknown, what: string): Uint8Array | null {
  if (v === undefined || v === null) return null;
  if (!(v instanceof Uint8Array)) throw new NsmError('NSM_INVALID_ARGUMENT', `${what} must be a Uint8Array`);
  return v;
}

function index(v: unknown, what = 'PCR index'): number {
  // u16 on the wire; out-of-range-but-representable indexes go to the device, which answers InvalidIndex.
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff) throw new NsmError('NSM_INVALID_ARGUMENT', `${what} must be an integer 0..65535`);
  return v;
}

export function createNsmClient(transport: NsmTransport, kind: Nsm['kind']): Nsm {
  let closed = false;

  async function call<T extends NsmResponse['type']>(req: NsmRequest, expect: T): Promise<Extract<NsmResponse, { type: T }>> {
    if (closed) throw new NsmError('NSM_INVALID_OPERATION', 'the NSM handle is closed');
    const bytes = encodeRequest(req);
    if (bytes.length > NSM_REQUEST_MAX_SIZE) {
      throw new NsmError('NSM_INPUT_TOO_LARGE', `${req.type} request is ${bytes.length} bytes; the NSM accepts at most ${NSM_REQUEST_MAX_SIZE}`);
    }
    let raw: Uint8Array;
    try {
      raw = await transport.process(bytes);
    } catch (e) {
      if (e instanceof NsmError) throw e;
      throw new NsmError('NSM_INTERNAL_ERROR', `NSM transport failed during ${req.type}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    }
    if (!(raw instanceof Uint8Array) || raw.length > NSM_RESPONSE_MAX_SIZE) {
      throw new NsmError('NSM_INVALID_RESPONSE', `${req.type} response does not fit the NSM's ${NSM_RESPONSE_MAX_SIZE}-byte buffer`);
    }
    let res: NsmResponse;
    try {
      res = decodeResponse(raw);
    } finally {
      // Decoded byte strings are copies; the raw buffer may hold entropy (GetRandom) and is ours to clear.
      wipe(raw);
    }
    if (res.type === 'Error') {
      if (res.error === 'Success') throw new NsmError('NSM_INVALID_RESPONSE', `${req.type} answered Error(Success)`);
      throw new NsmError(nsmErrorCode(res.error), `NSM refused ${req.type}${'index' in req ? ` of PCR${req.index}` : ''}: ${res.error}`);
    }
    if (res.type !== expect) throw new NsmError('NSM_INVALID_RESPONSE', `${req.type} request answered with a ${res.type} response`);
    return res as Extract<NsmResponse, { type: T }>;
  }

  function pcrValue(data: Uint8Array, what: string): Uint8Array {
    if (data.length !== PCR_LENGTH) throw new NsmError('NSM_INVALID_RESPONSE', `${what} returned ${data.length} bytes, expected ${PCR_LENGTH} (SHA384)`);
    return data;
  }

  return {
    kind,

    async attest(req: AttestRequest): Promise<Uint8Array> {
      if (typeof req !== 'object' || req === null) throw new NsmError('NSM_INVALID_ARGUMENT', 'attest takes { nonce?, userData?, publicKey? }');
      const res = await call(
        {
          type: 'Attestation',
          userData: optionalBytes(req.userData, 'userData'),
          nonce: optionalBytes(req.nonce, 'nonce'),
          publicKey: optionalBytes(req.publicKey, 'publicKey'),
        },
        'Attestation',
      );
      if (res.document.length === 0) throw new NsmError('NSM_INVALID_RESPONSE', 'attestation document is empty');
      return res.document;
    },

    async describePcr(i: number): Promise<PcrDescription> {
      const res = await call({ type: 'DescribePCR', index: index(i) }, 'DescribePCR');
      return { lock: res.lock, data: pcrValue(res.data, 'DescribePCR') };
    },

    async extendPcr(i: number, data: Uint8Array): Promise<Uint8Array> {
      if (!(data instanceof Uint8Array)) throw new NsmError('NSM_INVALID_ARGUMENT', 'extend data must be a Uint8Array');
      const res = await call({ type: 'ExtendPCR', index: index(i), data }, 'ExtendPCR');
      return pcrValue(res.data, 'ExtendPCR');
    },

    async lockPcr(i: number): Promise<void> {
      await call({ type: 'LockPCR', index: index(i) }, 'LockPCR');
    },

    async lockPcrs(range: number): Promise<void> {
      await call({ type: 'LockPCRs', range: index(range, 'PCR range') }, 'LockPCRs');
    },

    async getRandom(n: number): Promise<Uint8Array> {
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > NSM_MAX_RANDOM) {
        throw new NsmError('NSM_INVALID_ARGUMENT', `getRandom length must be an integer 1..${NSM_MAX_RANDOM}`);
      }
      // The NSM hands out a bounded chunk per request; gather as many as needed. Copy exactly n
      // bytes out and wipe the chunks, so no surplus entropy lingers behind the returned view.
      const out = new Uint8Array(n);
      let have = 0;
      try {
        while (have < n) {
          const { random } = await call({ type: 'GetRandom' }, 'GetRandom');
          if (random.length === 0) throw new NsmError('NSM_INVALID_RESPONSE', 'GetRandom returned no bytes');
          const take = Math.min(random.length, n - have);
          out.set(random.subarray(0, take), have);
          have += take;
          wipe(random);
        }
      } catch (e) {
        wipe(out);
        throw e;
      }
      return out;
    },

    async describeNsm(): Promise<NsmDescription> {
      const r = await call({ type: 'DescribeNSM' }, 'DescribeNSM');
      if (r.digest !== 'SHA384') throw new NsmError('NSM_INVALID_RESPONSE', `NSM uses ${r.digest} PCRs; enclave-signer expects SHA384`);
      return {
        versionMajor: r.versionMajor,
        versionMinor: r.versionMinor,
        versionPatch: r.versionPatch,
        moduleId: r.moduleId,
        maxPcrs: r.maxPcrs,
        lockedPcrs: [...r.lockedPcrs],
        digest: 'SHA384',
      };
    },

    close(): void {
      if (closed) return;
      closed = true;
      transport.close();
    },
  };
}
