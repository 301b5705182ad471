/**
 * HTTPS connections for the KMS SDK that go wherever the enclave can reach:
 * the SDK asks an https.Agent for a socket; this agent dials the given
 * transport (vsock to the parent's byte pipe in production, unix/tcp in dev)
 * and wraps it in TLS *here*, against the KMS endpoint's name. The parent only
 * ever sees ciphertext.
 */
import { Agent, type AgentOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, rootCertificates, type TLSSocket } from 'node:tls';
import { SignerError } from '../../common/errors.js';

export type Dial = () => Promise<Duplex>;

export interface KmsAgentOptions {
  /** Opens one raw byte stream to the KMS endpoint (through the parent's pipe). */
  dial: Dial;
  /** TLS server name to verify, e.g. kms.us-east-1.amazonaws.com. */
  servername: string;
  /**
   * Extra trust anchors (PEM), added to Node's bundled roots — never instead
   * of them: the real KMS endpoint keeps verifying against the public roots
   * it is issued under, and an emulator's dev CA is trusted as well.
   */
  ca?: string | string[];
  /** Upper bound on concurrent connections. */
  maxSockets?: number;
}

/**
 * The CA list TLS verifies KMS against: Node's bundled roots plus `extra`.
 * undefined (= Node's default roots) when there is nothing extra. Node's
 * `ca` option replaces the default roots, hence the explicit union.
 */
export function kmsTrustAnchors(extra: string | string[] | undefined): string[] | undefined {
  if (extra === undefined) return undefined;
  const more = Array.isArray(extra) ? extra : [extra];
  if (more.length === 0) return undefined;
  return [...rootCertificates, ...more];
}

type CreateConnectionCallback = (err: Error | null, socket?: Duplex) => void;

/**
 * An https.Agent whose connections come from `dial` + TLS. Node's Agent
 * accepts an asynchronous createConnection (return nothing, call back later);
 * @types/node types it as synchronous, hence the narrow cast.
 */
export function kmsHttpsAgent(opts: KmsAgentOptions): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 8 } satisfies AgentOptions);
  const { dial, servername } = opts;
  const ca = kmsTrustAnchors(opts.ca);
  const createConnection = (_o: unknown, callback?: CreateConnectionCallback): undefined => {
    dial().then(
      (raw) => {
        let tls: TLSSocket;
        try {
          tls = tlsConnect({ socket: raw, servername, ...(ca === undefined ? {} : { ca }), minVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] });
        } catch (e) {
          raw.destroy();
          callback?.(new SignerError('KMS_TLS_FAILED', `TLS setup to ${servername} failed`, { cause: e }));
          return;
        }
        raw.on('error', (e) => tls.destroy(e));
        callback?.(null, tls);
      },
      (e: unknown) => callback?.(new SignerError('KMS_CONNECT_FAILED', `cannot reach the KMS endpoint ${servername} through the transport`, { cause: e })),
    );
    return undefined;
  };
  (agent as unknown as { createConnection: typeof createConnection }).createConnection = createConnection;
  return agent;
}
