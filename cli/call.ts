/** `enclave-signer call`: one JSON-RPC request, signed as a principal, over the signing socket. */
import { parseStrictJson } from '../attestation/manifest-json.js';
import { signRequest } from '../common/auth/client-signer.js';
import { SIGNER_AUTH_MEMBER } from '../common/auth/request.js';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import { EXIT_FAILED, EXIT_OK, UsageError } from './errors.js';
import type { Io } from './io.js';
import { principalFlag, readPrincipalKey, resolveAudience } from './principal-auth.js';
import { socketRpc, type RpcErrorObject } from './socket-rpc.js';

export const CALL_USAGE = `Usage: enclave-signer call <method> [params-json] --socket PATH [--principal NAME --key key.pem] [options]

Sends one JSON-RPC request to the signing socket and prints the result. With
--principal and --key the request is signed as that principal (docs/principals.md):
the signature covers the method, the params, a fresh request id and an expiry,
so the host can neither alter nor replay it. Without them the request is
unauthenticated: the enclave's policy sees the principal "host".

Options:
  --socket PATH          the signing socket
  --principal NAME       the principal to sign as (declared in the enclave policy)
  --key FILE             its private key (PEM: Ed25519 or ECDSA P-256)
  --policy-hash HEX      the policy the request is for (default: signer_status policy.hash)
  --ttl SECONDS          how long the signed request is valid (default 60, the enclave allows at most 300)
  --webauthn             sign in WebAuthn assertion shape (ECDSA P-256 keys)
  --json                 print {"ok":true,"result":…} or {"ok":false,"error":…} on one line
  -h, --help             show this help

Exit status: 0 result, 1 JSON-RPC error (printed) or no answer, 2 usage error.
A request that needs approvals fails with -32010 and data.approvalId: approvers run
'enclave-signer approve <approvalId>', then send the identical request again.
`;

const SPEC = {
  socket: { type: 'string' },
  principal: { type: 'string' },
  key: { type: 'string' },
  'policy-hash': { type: 'string' },
  ttl: { type: 'string' },
  webauthn: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

export function parseParams(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  let v: unknown;
  try {
    v = parseStrictJson(text);
  } catch (e) {
    throw new UsageError(`params-json is not strict JSON: ${(e as Error).message}`, { hint: 'params are a JSON array or object; numbers must be integers (use hex strings for quantities)' });
  }
  if (typeof v !== 'object' || v === null) throw new UsageError('params-json must be a JSON array or object');
  return v;
}

export function printRpcError(io: Io, json: boolean, error: RpcErrorObject): number {
  if (json) io.stdout(`${JSON.stringify({ ok: false, error })}\n`);
  else {
    const lines = [`FAILED: ${error.message}`, `  rpc code  ${error.code}`];
    const d = error.data as { code?: unknown; approvalId?: unknown; rule?: unknown } | undefined;
    if (d && typeof d.code === 'string') lines.push(`  error     ${d.code}`);
    if (d && typeof d.rule === 'string') lines.push(`  rule      ${d.rule}`);
    if (d && typeof d.approvalId === 'string') lines.push(`  approval  ${d.approvalId}`, `  next      enclave-signer approve ${d.approvalId} --socket … --principal … --key …`);
    if (d !== undefined) lines.push(`  data      ${JSON.stringify(d)}`);
    io.stderr(`${lines.join('\n')}\n`);
  }
  return EXIT_FAILED;
}

/** data.expiresAfter of an AUTH_BEFORE_RESTART refusal (4100), if that is what this is. */
export function restartBarrierOf(error: RpcErrorObject): number | undefined {
  const d = error.data as { code?: unknown; expiresAfter?: unknown } | undefined;
  if (error.code !== 4100 || d?.code !== 'AUTH_BEFORE_RESTART') return undefined;
  return typeof d.expiresAfter === 'number' && Number.isSafeInteger(d.expiresAfter) ? d.expiresAfter : undefined;
}

export async function call(argv: string[], io: Io): Promise<number> {
  return guard(CALL_USAGE, io, 'call failed', async () => {
    const args = parseArgs(argv, SPEC, { positionals: { min: 1, max: 2 } });
    if (args.help) {
      io.stdout(CALL_USAGE);
      return EXIT_OK;
    }
    const f = args.flags;
    const [method, paramsText] = args.positionals as [string, string | undefined];
    if (f.socket === undefined) throw new UsageError('missing --socket PATH');
    if (method.length === 0) throw new UsageError('<method> must not be empty');
    const params = parseParams(paramsText);
    const body: Record<string, unknown> = { jsonrpc: '2.0', id: 1, method, ...(params === undefined ? {} : { params }) };
    let resign: ((expiresAt: number) => void) | undefined;
    if (f.principal !== undefined || f.key !== undefined) {
      const principal = principalFlag(f.principal);
      const key = await readPrincipalKey(f.key, io);
      let ttlSeconds: number | undefined;
      if (f.ttl !== undefined) {
        if (!/^[1-9][0-9]{0,5}$/.test(f.ttl)) throw new UsageError('--ttl must be a whole number of seconds');
        ttlSeconds = Number(f.ttl);
      }
      if (f.webauthn && key.alg !== 'ecdsa-p256') throw new UsageError('--webauthn needs an ECDSA P-256 key');
      const audience = await resolveAudience(f.socket, f['policy-hash']);
      const sign = (expiry: { ttlSeconds?: number; expiresAt?: number }) => {
        body[SIGNER_AUTH_MEMBER] = signRequest({ key, principal, audience, method, params, ...expiry, webauthn: f.webauthn ? {} : false }).auth;
      };
      sign(ttlSeconds !== undefined ? { ttlSeconds } : {});
      resign = (expiresAt) => sign({ expiresAt });
    } else if (f['policy-hash'] !== undefined || f.ttl !== undefined || f.webauthn) {
      throw new UsageError('--policy-hash, --ttl and --webauthn only apply to signed requests (--principal and --key)');
    }
    let answer = await socketRpc(f.socket, body);
    // Just after an enclave restart only requests expiring after its barrier are accepted
    // (docs/principals.md): sign once more, with a fresh request id, expiring just after it.
    const after = answer.ok ? undefined : restartBarrierOf(answer.error);
    if (resign && after !== undefined) {
      resign(after + 1);
      answer = await socketRpc(f.socket, body);
    }
    if (!answer.ok) return printRpcError(io, f.json, answer.error);
    io.stdout(f.json ? `${JSON.stringify({ ok: true, result: answer.result })}\n` : `${JSON.stringify(answer.result, null, 2)}\n`);
    return EXIT_OK;
  });
}
