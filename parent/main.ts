/**
 * The parent program's composition root: keystore + attestation gate +
 * signing socket (+ the optional KMS byte pipe), wired from one typed config.
 *
 *   startParent(config)   used by `enclave-signer parent` (cli/parent.ts, which
 *                         owns every command-line flag), `enclave-signer dev`
 *                         and tests
 *
 * Nothing here reads argv or imports cli/. The parent host is untrusted: it
 * holds only ciphertext and public data, forwards nothing until the enclave
 * has proven its image, and every decision to sign is made in the enclave.
 * See docs/parent.md.
 */
import { registerVsockTransportFor } from '../common/transport/vsock.js';
import { chainIdMethods } from './chain-id.js';
import { resolveParentConfig, type KmsPipeConfig, type ParentConfig, type ResolvedParentConfig } from './config.js';
import { createDownstream, type Downstream } from './downstream.js';
import { checkDownstreamChain, downstreamMethods } from './downstream-methods.js';
import { createDispatcher, type Dispatcher } from './dispatch.js';
import { startGate, type Gate, type GateSnapshot } from './gate.js';
import { createHttpHandler } from './http.js';
import { loadAllowlist, startKmsPipe, type KmsPipe } from './kms-pipe.js';
import { openKeystore, type Keystore } from './keystore.js';
import { FLEET_HEARTBEAT_MS } from './keystore-fleet.js';
import { idempotentCreateKey } from './keystore-request-id.js';
import { createMetrics, type Metrics } from './metrics.js';
import { METHODS, type Method } from './methods.js';
import { startSigningServer, type SigningServer } from './server.js';
import { createEnclaveVerifier } from './verify-enclave.js';

export type { KmsPipeConfig, ParentConfig } from './config.js';

export interface RunningParent {
  /** The signing socket's path. */
  socketPath: string;
  /** http://127.0.0.1:PORT when the loopback HTTP listener is on. */
  httpUrl?: string;
  /** Gate, keyring and attestation state. */
  state(): GateSnapshot;
  /** Stops listening (removes the socket file), disconnects from the enclave, closes the keystore. */
  close(): Promise<void>;
}

/** /readyz body: `ready`, and when not ready the one-line reason first. */
export function readinessOf(s: GateSnapshot): { ready: boolean; body: Record<string, unknown> } {
  let reason: string | undefined;
  if (s.gate.state !== 'ready') {
    reason = `enclave not attested: ${s.gate.state}${s.gate.reason ? `: ${s.gate.reason}` : ''}`;
    if (s.lastFailure && s.lastFailure.reason !== s.gate.reason) reason += ` (last failure: ${s.lastFailure.reason})`;
  } else if (s.keyring.state !== 'unlocked') {
    reason = `keyring not unlocked: ${s.keyring.state}${s.keyring.reason ? `: ${s.keyring.reason}` : ''}`;
  }
  const body: Record<string, unknown> = { ready: s.ready };
  if (!s.ready) body.reason = reason ?? 'not ready';
  body.gate = s.gate;
  body.keyring = s.keyring;
  if (s.attestation) body.attestation = { moduleId: s.attestation.moduleId, pcrs: s.attestation.pcrs, ageSeconds: s.attestationAgeSeconds, manifest: s.attestation.manifest ?? null };
  if (s.lastFailure) body.lastFailure = s.lastFailure;
  return { ready: s.ready, body };
}

function warnings(cfg: ResolvedParentConfig): string[] {
  const w: string[] = [];
  if (!cfg.rootIsAws) w.push(`WARNING: attestation root is ${cfg.root.name} (SHA-256 ${cfg.root.fingerprint}), NOT the AWS Nitro Enclaves root: development only`);
  if (!cfg.manifest) w.push('WARNING: no PCR manifest: any enclave image under that root is accepted (--allow-any-pcrs, development only)');
  if (cfg.allowDebug) w.push('WARNING: debug-mode enclaves are accepted: their memory is readable by this host (development only)');
  // The attestation proves that an enclave answered the gate's nonce, not that this connection is
  // that enclave: whoever can listen at a unix:/tcp:// address can relay a genuine enclave's
  // answers through its own connection and see everything forwarded (docs/threat-model.md). On
  // Nitro the enclave's vsock CID is the hypervisor's to route; no host process can take it.
  if (!cfg.enclave.startsWith('vsock:')) w.push(`WARNING: the enclave bridge is ${cfg.enclave}, not vsock: a process that can listen there can relay a genuine enclave's attestation and read every request (development only)`);
  return w;
}

/** What the parent serves from: the keystore, the gate to the enclave, the JSON-RPC dispatcher. */
interface Services {
  keystore: Keystore;
  gate: Gate;
  dispatcher: Dispatcher;
  metrics: Metrics;
}

/** Proxy mode's forwarded methods and eth_sendTransaction; none without --downstream. */
function proxyMethods(downstream: Downstream | undefined): [string, Method][] {
  return downstream ? downstreamMethods(downstream, METHODS.get('eth_signTransaction')!) : [];
}

/** With --downstream: the node's chain id, checked against --chain-id (a contradiction refuses the start). */
async function connectDownstream(cfg: ResolvedParentConfig): Promise<Downstream | undefined> {
  if (!cfg.downstream) return undefined;
  const downstream = createDownstream(cfg.downstream);
  cfg.chainId = await checkDownstreamChain(downstream, cfg.chainId);
  cfg.log(`proxy mode: downstream node ${downstream.describe}, chain id ${cfg.chainId}`);
  return downstream;
}

/**
 * The keystore's additions to the method table: signer_createKey's requestId
 * (idempotent creation) and signer_status's `instance` (which instance of a
 * fleet answered). Wrappers, so the methods themselves stay as they are.
 */
function keystoreMethods(cfg: ResolvedParentConfig): [string, Method][] {
  const status = METHODS.get('signer_status')!;
  return [
    ['signer_createKey', idempotentCreateKey(METHODS.get('signer_createKey')!)],
    ['signer_status', async (params, ctx) => ({ instance: cfg.instanceId, ...((await status(params, ctx)) as Record<string, unknown>) })],
  ];
}

async function startServices(cfg: ResolvedParentConfig, downstream: Downstream | undefined): Promise<Services> {
  const keystore: Keystore = await openKeystore(cfg.keystore, { readonly: cfg.keystoreReadonly, instanceId: cfg.instanceId, log: cfg.log });
  let gate: Gate;
  try {
    gate = startGate({ cfg, keystore, verifier: createEnclaveVerifier(cfg), log: cfg.log });
  } catch (e) {
    await keystore.close();
    throw e;
  }
  const methods = new Map<string, Method>([...METHODS, ...keystoreMethods(cfg), ...chainIdMethods(cfg.chainId), ...proxyMethods(downstream)]);
  const metrics = createMetrics(methods.keys());
  const dispatcher = createDispatcher({
    methods,
    context: { gate, keystore, keystoreReadonly: cfg.keystoreReadonly, ...(cfg.chainId === undefined ? {} : { chainId: cfg.chainId }) },
    metrics,
    maxBatch: cfg.maxBatch,
    maxInFlight: cfg.maxInFlight,
    log: cfg.log,
  });
  return { keystore, gate, dispatcher, metrics };
}

/** The signing socket (HTTP and IPC) and the optional loopback HTTP listener. */
function listen(cfg: ResolvedParentConfig, { keystore, gate, dispatcher, metrics }: Services): Promise<SigningServer> {
  // /metrics is rendered synchronously: it shows the last count, refreshed in the background.
  let keys: number | undefined;
  const keysCount = () => {
    keystore.countKeys().then(
      (n) => {
        keys = n;
      },
      () => {
        keys = undefined;
      },
    );
    return keys;
  };
  const handlerOpts = {
    dispatcher,
    maxBodyBytes: cfg.maxBodyBytes,
    readiness: () => readinessOf(gate.snapshot()),
    metrics: () => metrics.render(gate.snapshot(), { keys: keysCount() }),
  };
  return startSigningServer({
    socketPath: cfg.socket,
    socketMode: cfg.socketMode,
    ...(cfg.http ? { http: cfg.http } : {}),
    unixHttpHandler: createHttpHandler(handlerOpts),
    tcpHttpHandler: (allowedHosts) => createHttpHandler({ ...handlerOpts, allowedHosts }),
    ipcHandle: (message, cancellation) => dispatcher.handle(message, cancellation),
    maxBodyBytes: cfg.maxBodyBytes,
    limits: cfg.connectionLimits,
  });
}

function startPipe(p: KmsPipeConfig, log: (line: string) => void): Promise<KmsPipe> {
  return startKmsPipe({ listen: p.listen, target: p.target, allowlist: loadAllowlist(p.allowlistFile), log });
}

/** Runs `steps` in order; every step runs even when one fails, and the first failure is rethrown. */
async function closeInOrder(steps: readonly (() => unknown)[]): Promise<void> {
  let first: { e: unknown } | undefined;
  for (const step of steps) {
    try {
      await step();
    } catch (e) {
      first ??= { e };
    }
  }
  if (first) throw first.e;
}

/**
 * Starts the parent: validates the config (PARENT_CONFIG on anything wrong),
 * then the KMS pipe (when configured), the keystore and gate, and the
 * listeners. What was started is closed again when a later step fails.
 */
export async function startParent(config: ParentConfig): Promise<RunningParent> {
  const cfg = resolveParentConfig(config);
  const log = cfg.log;
  for (const line of warnings(cfg)) log(line);
  // vsock only when the config names it: a unix:/tcp:// configuration never opens AF_VSOCK.
  await registerVsockTransportFor([cfg.enclave, config.kmsPipe?.listen]);

  const downstream = await connectDownstream(cfg);
  const pipe = config.kmsPipe ? await startPipe(config.kmsPipe, log) : undefined;
  let services: Services | undefined;
  let server: SigningServer;
  try {
    services = await startServices(cfg, downstream);
    server = await listen(cfg, services);
  } catch (e) {
    const s = services;
    await closeInOrder([() => s?.gate.close(), () => s?.keystore.close(), () => pipe?.close()]).catch(() => {});
    throw e;
  }
  const { gate, keystore } = services;
  log(`signing socket ${server.socketPath} (mode ${cfg.socketMode.toString(8)})${server.httpUrl ? `, HTTP ${server.httpUrl}` : ''}; enclave ${cfg.enclave}${cfg.chainId === undefined ? '' : `; chain id ${cfg.chainId}`}`);

  // The fleet check's liveness (docs/scale-out.md): only a shared (PostgreSQL) keystore has a fleet.
  const heartbeat =
    keystore.backend === 'postgres' && !cfg.keystoreReadonly
      ? setInterval(() => void keystore.touchFleet().catch(() => undefined), FLEET_HEARTBEAT_MS).unref()
      : undefined;
  let closing: Promise<void> | undefined;
  const out: RunningParent = {
    socketPath: server.socketPath,
    state: () => gate.snapshot(),
    close() {
      clearInterval(heartbeat);
      closing ??= closeInOrder([() => server.close(), () => gate.close(), () => keystore.close(), () => pipe?.close()]).then(() => log('stopped'));
      return closing;
    },
  };
  if (server.httpUrl) out.httpUrl = server.httpUrl;
  return out;
}
