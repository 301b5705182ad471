/**
 * Test doubles for the parent's tests — built from real parts, not mocks:
 *
 * - `startFakeEnclave`: the real bridge server (common/bridge) answering the
 *   enclave API (common/protocol/enclave-api.ts): `attest` with documents from
 *   the real simulated NSM under a dev CA, `sign` with real signatures from
 *   enclave/operations.ts (the enclave's own dispatch to its signers). Keys
 *   are kept in memory by key id; the "blob" is opaque random bytes that the
 *   parent must hand back unchanged. Impostor behaviours are options.
 * - `devManifest`: a signed PCR manifest for the simulated image's PCRs.
 *
 * Dev/test only: nothing here is used by the parent itself.
 */
import { generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { request as httpRequestRaw } from 'node:http';
import { connect as netConnect } from 'node:net';
import { createManifest } from '../attestation/manifest-format.js';
import { signManifest, type SignedManifest } from '../attestation/manifest-signature.js';
import { requestDigest } from '../common/audit/digest.js';
import { parseRecord } from '../common/audit/record.js';
import { keyPublicDigest } from '../common/audit/result.js';
import { toHex } from '../common/bytes.js';
import { serveBridge, type BridgeServer, type BridgeHandler } from '../common/bridge/index.js';
import type { CborValue } from '../common/cbor.js';
import { cborToJson, jsonToCbor, type JsonLike } from '../common/cbor-json.js';
import { SignerError } from '../common/errors.js';
import { asBytes, asKeyRecord, asKeyringRecord, asKind, asRecord, asSignOp, onlyKeys, type KeyKind, type SignOp } from '../common/protocol/enclave-api.js';
import { createDevCa, type DevCa } from '../dev/ca/index.js';
import { AuditTrail, withAuditRecord } from '../enclave/audit/trail.js';
import { createSimulatedNsm, simulatedImagePcrs } from '../enclave/nsm/simulated.js';
import { prepareOperation } from '../enclave/operations.js';
import { addressFromPrivateKey, deriveBip32PublicKey, publicKeyOf } from '../enclave/signers/index.js';
import { startParent, type ParentConfig, type RunningParent } from './main.js';

export interface FakeEnclaveOptions {
  /** Bridge URI to listen on (unix:/… in tests). */
  uri: string;
  /** CA that signs the attestation documents. Default: a fresh dev CA. */
  ca?: DevCa;
  /** PCR overrides (index → 48 bytes), e.g. to play an enclave running another image. */
  pcrs?: Map<number, Uint8Array>;
  /** Impostor modes for `attest`: answer with a random nonce, or replay the first document ever made. */
  attestNonce?: 'echo' | 'random' | 'replay';
  /** `keyring.unlock`/`keyring.create` fail with this (KMS refusing the enclave). */
  kmsError?: { code: string; message: string };
  /** Ops the fake's policy denies (like enclave/policy.ts builtinPolicy). */
  denyOps?: SignOp[];
  /** Delay before answering `sign` (to kill the connection mid-request). */
  signDelayMs?: number;
  /** The first `keyring.create` makes the keyring, then drops the connection before answering (the answer is lost). */
  dropAfterKeyringCreate?: boolean;
  /** The policy hash `status` reports (the mixed-fleet check); default 64 × "f". */
  policyHash?: string;
}

export interface FakeEnclave {
  readonly uri: string;
  readonly ca: DevCa;
  /** How many times each method was called. */
  readonly calls: Map<string, number>;
  /** The last `credentials.set` params (tests check what was handed over). */
  readonly credentials: Record<string, unknown> | undefined;
  readonly keyringId: string | undefined;
  /** Requests whose handler was aborted (cancelled by the parent, deadline, disconnect). */
  readonly cancelled: number;
  /** Live connections. */
  readonly server: BridgeServer;
  /** Drops every connection (the parent should reconnect and re-attest). */
  dropConnections(): void;
  close(): Promise<void>;
}

const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

function newSecret(kind: KeyKind): Uint8Array {
  for (;;) {
    const s = new Uint8Array(randomBytes(32));
    if (kind === 'bip32-seed') return s;
    const v = BigInt(`0x${toHex(s)}`);
    if (v > 0n && v < SECP256K1_N) return s;
  }
}

export async function startFakeEnclave(opts: FakeEnclaveOptions): Promise<FakeEnclave> {
  const ca = opts.ca ?? createDevCa();
  const nsm = createSimulatedNsm({ ca, ...(opts.pcrs ? { pcrs: opts.pcrs } : {}) });
  const calls = new Map<string, number>();
  const keys = new Map<string, { kind: KeyKind; secret: Uint8Array; blob: Uint8Array; keyringId: string }>();
  let keyringId: string | undefined;
  let keyringRecord: Record<string, unknown> | undefined;
  let dropNext = opts.dropAfterKeyringCreate === true;
  let credentials: Record<string, unknown> | undefined;
  let firstDocument: Uint8Array | undefined;
  // Like the real enclave: every decision is a signed audit record (enclave/audit/trail.ts).
  const trail = new AuditTrail({ nsm });
  const done = (kind: 'key.create' | 'keyring.create' | 'keyring.unlock', keyId: string, resultDigest: Uint8Array | null = null) => [trail.append({ kind, decision: 'done', principal: 'host', op: kind, keyId, resultDigest }).bytes];

  const methods: Record<string, (p: Record<string, unknown>) => Promise<unknown>> = {
    async 'audit.open'(p) {
      onlyKeys(p, ['head'], 'params');
      const head = p.head === undefined ? undefined : asBytes(p.head, 'head', 1, 65536);
      const r = await trail.open(head, head ? parseRecord(head).body.seq : undefined);
      return { records: r.records.map((x) => x.bytes), auditKey: r.auditKey, opened: r.opened, headSeq: r.headSeq };
    },
    async 'audit.records'(p) {
      return { records: trail.since(Number(p.fromSeq)).map((x) => x.bytes), headSeq: trail.log().head().seq };
    },
    async 'audit.checkpoint'() {
      return { checkpoint: trail.log().checkpoint(), attestation: await trail.log().attest() };
    },
    async attest(p) {
      onlyKeys(p, ['nonce'], 'params');
      const nonce = asBytes(p.nonce, 'nonce', 16, 512);
      if (opts.attestNonce === 'replay' && firstDocument) return { document: firstDocument };
      const userData = trail.isOpen ? trail.log().binding : undefined;
      const document = await nsm.attest({ nonce: opts.attestNonce === 'random' ? new Uint8Array(randomBytes(32)) : nonce, ...(userData ? { userData } : {}) });
      firstDocument ??= document;
      return { document };
    },
    async status() {
      return { version: 'fake-0', nsm: 'simulated', keyringId: keyringId ?? null, workers: 1, credentialsExpire: null, policy: { hash: opts.policyHash ?? 'f'.repeat(64), name: 'fake', source: 'fake' } };
    },
    async 'credentials.set'(p) {
      onlyKeys(p, ['accessKeyId', 'secretAccessKey', 'sessionToken', 'expiration'], 'params');
      credentials = { ...p };
      return { ok: true };
    },
    async 'keyring.create'(p) {
      onlyKeys(p, ['kmsKeyId'], 'params');
      if (opts.kmsError) throw new SignerError(opts.kmsError.code, opts.kmsError.message);
      if (keyringId) throw new SignerError('KEYRING_ALREADY_UNLOCKED', `keyring ${keyringId} is already unlocked in this enclave`);
      keyringId = randomUUID();
      const record = {
        format: 'enclave-signer/keyring',
        version: 1,
        keyringId,
        kmsKeyId: String(p.kmsKeyId),
        dataKeyCiphertext: new Uint8Array(randomBytes(184)),
        createdAt: new Date().toISOString(),
      };
      keyringRecord = record;
      const audit = done('keyring.create', keyringId);
      if (dropNext) {
        dropNext = false;
        for (const peer of server.peers) peer.close();
        // Never answered: the connection is gone.
        return new Promise(() => {});
      }
      return { record, audit };
    },
    async 'keyring.unlock'(p) {
      onlyKeys(p, ['record'], 'params');
      const record = asKeyringRecord(p.record);
      if (opts.kmsError) throw new SignerError(opts.kmsError.code, opts.kmsError.message);
      if (keyringId === record.keyringId) return { keyringId, audit: [] };
      keyringId = record.keyringId;
      keyringRecord = { ...record };
      return { keyringId, audit: done('keyring.unlock', keyringId) };
    },
    async 'keyring.current'(p) {
      onlyKeys(p, [], 'params');
      return { record: keyringRecord ?? null };
    },
    // Sealed state: the fake seals nothing real, it only hands back a record with a growing sequence.
    async 'state.restore'(p) {
      onlyKeys(p, ['record'], 'params');
      const prev = (p.record as { sequence?: number } | null)?.sequence ?? 0;
      return { record: { v: 1, keyringId: keyringId ?? '', sequence: prev + 1, nonce: 'AAAAAAAAAAAAAAAA', ciphertext: 'AA' }, unclean: p.record === null, restored: p.record !== null };
    },
    async 'key.create'(p) {
      onlyKeys(p, ['kind'], 'params');
      const kind = asKind(p.kind);
      if (!keyringId) throw new SignerError('KEYRING_LOCKED', 'no keyring is unlocked in this enclave');
      const keyId = randomUUID();
      const secret = newSecret(kind);
      const blob = new Uint8Array(randomBytes(61));
      keys.set(keyId, { kind, secret, blob, keyringId });
      if (kind === 'secp256k1') {
        const pub = { keyId, kind, keyringId, publicKey: toHex(publicKeyOf(secret)), address: addressFromPrivateKey(secret) };
        return { ...pub, blob, audit: done('key.create', keyId, keyPublicDigest(pub)) };
      }
      const m = deriveBip32PublicKey(secret, 'm');
      const pub = { keyId, kind, keyringId, publicKey: m.publicKey.replace(/^0x/, ''), xpub: m.xpub, fingerprint: m.masterFingerprint };
      return { ...pub, blob, audit: done('key.create', keyId, keyPublicDigest(pub)) };
    },
    async sign(p) {
      onlyKeys(p, ['op', 'key', 'request'], 'params');
      const op = asSignOp(p.op);
      const key = asKeyRecord(p.key);
      const request = asRecord(p.request, 'request') as Record<string, JsonLike>;
      if (!keyringId) throw new SignerError('KEYRING_LOCKED', 'no keyring is unlocked in this enclave');
      const digest = requestDigest('sign', jsonToCbor(p as JsonLike));
      const deny = (e: SignerError) => withAuditRecord(e, trail.denied({ principal: 'host', op, keyId: key.keyId, requestDigest: digest, rule: `error:${e.code}` }));
      const k = keys.get(key.keyId);
      // Like the real vault: a blob that is not the one made for this id/kind/keyring does not open.
      if (!k || k.kind !== key.kind || k.keyringId !== key.keyringId || Buffer.compare(Buffer.from(k.blob), Buffer.from(key.blob)) !== 0) {
        throw deny(new SignerError('WRAPPED_KEY_INVALID', 'the key blob does not open under this keyring'));
      }
      if (opts.denyOps?.includes(op)) throw deny(new SignerError('POLICY_DENIED', `denied: ${op} is disabled by the enclave's policy`));
      if (opts.signDelayMs) await new Promise((r) => setTimeout(r, opts.signDelayMs));
      // Like the real enclave: the op's result and the facts derived from the secret.
      const prepared = prepareOperation(op, { keyId: key.keyId, kind: k.kind, keyringId: k.keyringId }, k.secret, request);
      try {
        const result = prepared.sign() as JsonLike;
        return { result, signer: prepared.facts, audit: [trail.signed({ principal: 'host', op, keyId: key.keyId, requestDigest: digest }, result).bytes] };
      } finally {
        prepared.wipe();
      }
    },
  };

  let cancelled = 0;
  const handler: BridgeHandler = async (method, params: CborValue, ctx) => {
    calls.set(method, (calls.get(method) ?? 0) + 1);
    ctx.cancellation.onAbort(() => cancelled++);
    const fn = Object.hasOwn(methods, method) ? methods[method] : undefined;
    if (!fn) throw new SignerError('METHOD_NOT_FOUND', `the enclave has no method ${JSON.stringify(method)}`);
    return jsonToCbor(await fn(asRecord(cborToJson(params), 'params')));
  };

  const server = await serveBridge(opts.uri, handler, { role: 'enclave' });
  return {
    uri: server.uri,
    ca,
    calls,
    get credentials() {
      return credentials;
    },
    get keyringId() {
      return keyringId;
    },
    get cancelled() {
      return cancelled;
    },
    server,
    dropConnections() {
      for (const p of server.peers) p.close();
    },
    async close() {
      await server.close();
      nsm.close();
    },
  };
}

export interface DevManifest {
  signed: SignedManifest;
  /** The manifest signer (trusted key = its public half). */
  key: KeyObject;
  publicKeyPem: string;
}

/** A manifest naming the simulated NSM's default image PCRs (or `pcrs`), signed with a fresh P-384 key. */
export function devManifest(pcrs: Map<number, Uint8Array> = simulatedImagePcrs()): DevManifest {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const hex = (i: number) => toHex(pcrs.get(i)!);
  const m = createManifest({
    image: { name: 'enclave-signer', version: '0.0.0-test', sourceCommit: '0'.repeat(40), eifSha256: '1'.repeat(64) },
    pcrs: { 0: hex(0), 1: hex(1), 2: hex(2), 8: hex(8) },
    match: [0, 1, 2],
  });
  return { signed: signManifest(m, privateKey), key: privateKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

// ------------------------------------------------------------------ clients for tests

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request over a Unix socket (node:http, no fetch/undici). */
export function httpRequest(socketPath: string, req: { method?: string; path?: string; body?: string | Buffer; headers?: Record<string, string> }): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const r = httpRequestRaw(
      {
        socketPath,
        method: req.method ?? 'POST',
        path: req.path ?? '/',
        headers: { ...(req.body !== undefined ? { 'content-type': 'application/json' } : {}), ...(req.headers ?? {}) },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    r.on('error', reject);
    if (req.body !== undefined) r.end(req.body);
    else r.end();
  });
}

let nextRpcId = 1;

/** A JSON-RPC call over HTTP on the Unix socket; returns the parsed response object. */
export async function rpc(socketPath: string, method: string, params?: unknown): Promise<{ id: unknown; result?: any; error?: { code: number; message: string; data?: any } }> {
  const body = JSON.stringify({ jsonrpc: '2.0', id: nextRpcId++, method, ...(params === undefined ? {} : { params }) });
  const r = await httpRequest(socketPath, { body });
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.body}`);
  return JSON.parse(r.body);
}

/** Sends raw bytes over IPC and collects `count` newline-terminated answers (or, with `untilClose`, everything until the server closes). */
export function ipcExchange(socketPath: string, payload: string | Buffer, count: number, timeoutMs = 10_000, untilClose = false): Promise<{ lines: string[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = netConnect({ path: socketPath });
    let buf = '';
    const lines: string[] = [];
    let closed = false;
    const done = () => {
      clearTimeout(t);
      sock.destroy();
      resolve({ lines, closed });
    };
    const t = setTimeout(() => {
      sock.destroy();
      reject(new Error(`IPC: got ${lines.length} of ${count} answers: ${JSON.stringify(lines)}`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(payload));
    sock.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      if (lines.length >= count && !untilClose) done();
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      closed = true;
      done();
    });
  });
}

/** Polls until `cond()` holds; throws after `ms` with `what`. */
export async function waitFor(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ------------------------------------------------------------------ a parent + fake enclave rig

export interface RigOptions {
  dir: string;
  enclave?: Omit<FakeEnclaveOptions, 'uri'>;
  /** Overrides of the parent config. */
  parent?: Partial<ParentConfig>;
  /** Start the parent only (no fake enclave yet). */
  noEnclave?: boolean;
  /** Wait until the parent is ready. Default true when an enclave runs. */
  waitReady?: boolean;
}

export interface Rig {
  dir: string;
  socket: string;
  enclaveUri: string;
  enclave: FakeEnclave | undefined;
  parent: RunningParent;
  manifest: DevManifest;
  ca: DevCa;
  logs: string[];
  close(): Promise<void>;
}

let rigN = 0;

export async function startRig(o: RigOptions): Promise<Rig> {
  const n = ++rigN;
  const enclaveUri = `unix:${o.dir}/enclave-${n}.sock`;
  const socket = `${o.dir}/signer-${n}.sock`;
  const ca = o.enclave?.ca ?? createDevCa();
  const manifest = devManifest();
  const enclave = o.noEnclave ? undefined : await startFakeEnclave({ ...o.enclave, ca, uri: enclaveUri });
  const logs: string[] = [];
  const parent = await startParent({
    enclave: enclaveUri,
    socket,
    keystore: `${o.dir}/keystore-${n}.db`,
    root: ca.trustRoot,
    manifest: { signed: manifest.signed, trustedKeys: [manifest.publicKeyPem] },
    kmsKeyId: 'arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555',
    credentials: { kind: 'static', accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret-not-real' },
    reconnect: { minMs: 20, maxMs: 200 },
    log: (l) => logs.push(l),
    ...o.parent,
  });
  if (o.waitReady ?? !o.noEnclave) await waitFor(() => parent.state().ready, 10_000, `parent ready (logs: ${logs.join(' | ')})`);
  return {
    dir: o.dir,
    socket,
    enclaveUri,
    enclave,
    parent,
    manifest,
    ca,
    logs,
    async close() {
      await parent.close();
      await enclave?.close();
    },
  };
}

/**
 * A client with its own deadline (fault tests): the answer, or 'hung' when it did not come within
 * `deadlineMs`, and how long it took.
 */
export async function within<T>(request: Promise<T>, deadlineMs: number): Promise<{ a: T | 'hung'; ms: number }> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const a = await Promise.race([
    request,
    new Promise<'hung'>((r) => {
      timer = setTimeout(() => r('hung'), deadlineMs);
    }),
  ]);
  clearTimeout(timer);
  return { a, ms: performance.now() - t0 };
}
