/**
 * What `call` and `approve` share: the principal's key file and the policy
 * hash (audience) requests are addressed to.
 */
import { loadPrincipalKey, type PrincipalKey } from '../common/auth/client-signer.js';
import { AuthError } from '../common/auth/errors.js';
import { PRINCIPAL_NAME_RE } from '../common/auth/request.js';
import { SignerError } from '../common/errors.js';
import { CliInputError, UsageError } from './errors.js';
import { readTextFile, type Io } from './io.js';
import { socketRpc } from './socket-rpc.js';

const MAX_KEY_FILE = 64 * 1024;

export function principalFlag(name: string | undefined): string {
  if (name === undefined) throw new UsageError('missing --principal NAME');
  if (!PRINCIPAL_NAME_RE.test(name) || name === 'host') throw new UsageError(`--principal must be a principal name from the policy (not "host"), got ${JSON.stringify(name.slice(0, 64))}`);
  return name;
}

export async function readPrincipalKey(path: string | undefined, io: Io): Promise<PrincipalKey> {
  if (path === undefined) throw new UsageError('missing --key key.pem');
  const pem = await readTextFile(path, 'principal key', MAX_KEY_FILE, io);
  try {
    return loadPrincipalKey(pem);
  } catch (e) {
    if (e instanceof AuthError) throw new CliInputError(`${path}: ${e.message}`, { cause: e, ...(e.hint ? { hint: e.hint } : {}) });
    throw e;
  }
}

/**
 * The policy hash the request is addressed to: --policy-hash, else the one
 * signer_status reports. Trusting the host's answer is safe here: a wrong
 * audience only makes the enclave refuse our signature, it cannot make it
 * accept anything we did not sign.
 */
export async function resolveAudience(socket: string, flag: string | undefined): Promise<string> {
  if (flag !== undefined) {
    const h = flag.toLowerCase().replace(/^0x/, '');
    if (!/^[0-9a-f]{64}$/.test(h)) throw new UsageError('--policy-hash must be 64 hex characters (SHA-256)');
    return h;
  }
  const a = await socketRpc(socket, { jsonrpc: '2.0', id: 1, method: 'signer_status' });
  const hash = a.ok ? (a.result as { policy?: { hash?: unknown } } | null)?.policy?.hash : undefined;
  if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) {
    throw new SignerError('CLI_NO_POLICY_HASH', 'the signer does not report a policy hash (signer_status policy.hash)', { hint: 'pass --policy-hash (enclave-signer policy hash FILE), or upgrade the signer' });
  }
  return hash;
}
