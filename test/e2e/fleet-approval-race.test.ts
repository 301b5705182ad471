/**
 * Fleet scope inside one enclave (enclave/service.ts with enclave/policy/durable.ts): a request
 * that opens a pending approval, and a request that hands in a newer shared record, in one turn
 * of the event loop. Two real enclaves of one keyring (attested KMS through the emulator) share
 * the record as two instances do; the parents' compare-and-swap is not in play here — what is
 * checked is what the enclave itself answers.
 *
 * The bridge runs the handlers of every frame in a chunk back to back, and a job run inline or
 * decided ahead (enclave/worker-pool.ts) is decided before its handler first yields. The take-
 * over replaces the approval book; a -32010 sealed after it carried a record without the entry it
 * names, the parent stored that record, and every approver met APPROVAL_UNKNOWN (the CI fleet
 * soak of session 16, 6 of 8 runs). Fixed: such a refusal becomes SEALED_STATE_STALE, which the
 * parent retries on the new head like a lost swap.
 */
import { describe, expect, it, vi } from 'vitest';
import { parseRecord } from '../../common/audit/record.js';
import { toWireError } from '../../common/bridge/peer.js';
import { requestContext } from '../../common/bridge/test-helpers.js';
import { jsonToCbor, type JsonLike } from '../../common/cbor-json.js';
import { testPrincipals } from '../../enclave/auth/test-helpers.js';
import { compilePolicy } from '../../enclave/policy/document.js';
import { realEnclaves } from '../real-enclaves.js';

vi.setConfig({ testTimeout: 60_000 });

const CREDS = { accessKeyId: 'AKIAFLEETRACEHOST001', secretAccessKey: 'fleet-race-secret-not-real', principalArn: 'arn:aws:iam::111122223333:role/parent' };
const IMAGE = 'enclave-signer-fleet-race';
const PAYEE = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8';
const TREASURY = '0x90f79bf6eb2c4f870365e785982e1f101e93b906';
const POLICY = compilePolicy({
  policyVersion: 1,
  name: 'fleet-race',
  stateScope: 'fleet',
  principals: testPrincipals().document,
  rules: [
    { id: 'create', effect: 'allow', ops: ['signer_createKey'] },
    { id: 'pay', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [PAYEE], window: { seconds: 86400, maxCount: 100 } },
    { id: 'treasury', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [TREASURY], approvals: { threshold: 2, from: ['alice', 'bob', 'carol'] } },
  ],
});
const tx = (to: string, value: number) => ({ tx: { type: '0x2', chainId: '0x1', nonce: '0x0', gas: '0x5208', maxFeePerGas: '0x1', maxPriorityFeePerGas: '0x1', to, value: `0x${value.toString(16)}` } });

const enclaves = realEnclaves({ image: IMAGE, credentials: CREDS, policy: POLICY, description: 'fleet race' });

type Refusal = { code: string; wireData?: { approvalId?: string }; sealedState?: { sealed: JsonLike } };
const refusal = (p: Promise<unknown>): Promise<Refusal> =>
  p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e as Refusal,
  );

let lives = 0;
/** An enclave life as the parent's boot makes it: credentials, audit log, keyring, sealed state. */
async function boot(pool: { inline: boolean; decideAhead: boolean }, keyring: JsonLike | undefined, state: JsonLike) {
  const { enclave, call } = await enclaves.boot(`e${++lives}`, pool);
  const record = keyring === undefined ? (await call('keyring.create', { kmsKeyId: enclaves.real.cmk })).record : (await call('keyring.unlock', { record: keyring }), keyring);
  const sealed = (await call('state.restore', { record: state })).record as JsonLike;
  /** Straight into the enclave's handler: no bridge between two calls made in one turn. */
  const handle = (method: string, params: unknown, id: number) => enclave.service.handler(method, jsonToCbor(params as JsonLike), requestContext(id));
  return { call, handle, keyring: record as JsonLike, sealed };
}

describe.each([
  ['run inline (an idle enclave)', { inline: true, decideAhead: true }, 'SEALED_STATE_STALE'],
  ['decided ahead (a known key under load)', { inline: false, decideAhead: true }, 'SEALED_STATE_STALE'],
  // The worker answers in a later turn: the take-over comes first and the entry is opened in it.
  ['in two steps (the worker decides later)', { inline: false, decideAhead: false }, 'APPROVAL_REQUIRED'],
] as const)('fleet scope: a pending approval and a take-over in one turn, %s', (_how, pool, first) => {
  it(`every -32010 names an entry in the record it carries (here the first answer is ${first}); a refusal is retryable and on the chain`, async () => {
    const one = await boot(pool, undefined, null);
    const two = await boot(pool, one.keyring, one.sealed);
    const { audit: _a, ...key } = await one.call('key.create', { kind: 'secp256k1' });
    // Instance one learns the key (a job decided ahead needs its facts); instance two moves the
    // fleet on, so its record is newer than anything instance one holds.
    await one.call('sign', { op: 'eth_signTransaction', key, request: tx(PAYEE, 1) });
    await two.call('sign', { op: 'eth_signTransaction', key, request: tx(PAYEE, 2) });
    const newer = (await two.call('sign', { op: 'eth_signTransaction', key, request: tx(PAYEE, 3) })).sealed;
    await new Promise((r) => setImmediate(r)); // the inline path is free again

    // One chunk from the parent: a request that needs approvals, then one carrying the new head.
    const pending = refusal(one.handle('sign', { op: 'eth_signTransaction', key, request: tx(TREASURY, 7) }, 901));
    await one.handle('approval.list', { state: newer }, 902);
    let e = await pending;
    expect(e.code).toBe(first);

    if (e.code === 'SEALED_STATE_STALE') {
      // A refusal like any other: on the chain, naming why, with no sealed record to store.
      const wire = toWireError(e as unknown as Error).data as Map<string, unknown>;
      expect(parseRecord(wire.get('audit') as Uint8Array).body).toMatchObject({ decision: 'denied', rule: 'error:SEALED_STATE_STALE' });
      expect(e.sealedState).toBeUndefined();
      // The parent decides it again on the head its enclave now holds.
      e = await refusal(one.handle('sign', { op: 'eth_signTransaction', key, request: tx(TREASURY, 7) }, 903));
      expect(e.code).toBe('APPROVAL_REQUIRED');
    }
    // The entry is in instance one's book and in the record the parent stores: instance two,
    // handed that record, shows the approvers the same entry.
    const approvalId = e.wireData!.approvalId!;
    expect((await one.call('approval.get', { approvalId })).approvalId).toBe(approvalId);
    expect((await two.call('approval.get', { approvalId, state: e.sealedState!.sealed })).approvalId).toBe(approvalId);
  });
});
