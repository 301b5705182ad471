/**
 * `principal keygen`, `call` and `approve` against a stand-in signer on a
 * Unix socket that runs the real enclave-side verifier and approval book
 * (enclave/auth/). The stand-in is what the lead's wiring will do in the
 * enclave; here it lets the CLI's signing output be checked against the
 * verifier end to end, and lets it play the hostile host.
 */
import { readFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuthError } from '../common/auth/errors.js';
import { approvalRequiredError, approvalView } from '../enclave/auth/approval-required.js';
import { ApprovalBook } from '../enclave/auth/approvals.js';
import { ApprovalError } from '../enclave/auth/errors.js';
import { PrincipalRegistry } from '../enclave/auth/principals.js';
import { authRpcError } from '../enclave/auth/rpc-errors.js';
import { RequestVerifier } from '../enclave/auth/verify-request.js';
import { main } from './main.js';

const dir = mkdtempSync(join(tmpdir(), 'enclave-signer-principal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const AUDIENCE = 'e'.repeat(64);

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

type Body = { method: string; params?: unknown; signer_auth?: unknown; id?: unknown };
interface Hostile {
  /** Edits a request before the "enclave" sees it (the parent in the middle). */
  mutate?: (b: Body) => void;
  /** Shows approvers another request than the one waiting. */
  lieOnGetApproval?: boolean;
}

/** A stand-in signer: signer_status, the approval methods, and two ops under a tiny policy. */
function standIn(registry: PrincipalRegistry, hostile: Hostile) {
  const now = () => Math.floor(Date.now() / 1000);
  const verifier = new RequestVerifier({ principals: registry, audience: AUDIENCE, now });
  const book = new ApprovalBook({ principals: registry, now });
  const seen: Body[] = [];
  const handle = (b: Body): unknown => {
    seen.push(structuredClone(b));
    const p = b.params as Record<string, string> | undefined;
    switch (b.method) {
      case 'signer_status':
        return { policy: { hash: AUDIENCE } };
      case 'signer_getApproval': {
        const v = approvalView(book.get(p!.approvalId!), now());
        if (hostile.lieOnGetApproval) v.request = { method: 'personal_sign', params: ['0x68656c6c6f', '0x' + '11'.repeat(20)] };
        return { ...v, intent: { kind: 'test', note: 'decoded inside the enclave' } };
      }
      case 'signer_approve':
      case 'signer_reject': {
        const w = p as unknown as { approvalId: string; approver: string; signature: string; webauthn?: never };
        const r = b.method === 'signer_approve' ? book.approve(w.approvalId, w.approver, w.signature, w.webauthn) : book.reject(w.approvalId, w.approver, w.signature, w.webauthn);
        return approvalView(r, now());
      }
      default: {
        hostile.mutate?.(b);
        const a = verifier.verify(b.method, b.params, b.signer_auth);
        if (b.method === 'personal_sign') {
          if (a.principal !== 'backend') throw { code: 4001, message: 'denied: rule backend-messages', data: { code: 'POLICY_DENIED', rule: 'backend-messages' } };
          return { signedBy: a.principal };
        }
        const rec = book.authorize({ requestDigest: a.requestDigest, rule: 'treasury', threshold: 2, approvers: ['alice', 'bob', 'carol'], requester: a.principal, ttlSeconds: 600, request: { method: b.method, params: b.params } });
        if (book.status(rec.approvalId) !== 'approved') throw approvalRequiredError(rec);
        book.consume(rec.approvalId, { requestDigest: a.requestDigest, rule: 'treasury', requester: a.principal });
        return { signedBy: a.principal, approvalId: rec.approvalId };
      }
    }
  };
  const server: Server = createServer((req, res) => {
    let s = '';
    req.on('data', (c) => (s += c));
    req.on('end', () => {
      const b = JSON.parse(s) as Body;
      let out: unknown;
      try {
        out = { jsonrpc: '2.0', id: b.id ?? null, result: handle(b) };
      } catch (e) {
        const error = e instanceof AuthError || e instanceof ApprovalError ? authRpcError(e) : (e as object);
        out = { jsonrpc: '2.0', id: b.id ?? null, error };
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(out));
    });
  });
  return { server, seen, book };
}

const keys: Record<string, string> = {};
let registry: PrincipalRegistry;
let n = 0;
let current: { server: Server; seen: Body[] } | undefined;

async function signer(hostile: Hostile = {}): Promise<{ socket: string; seen: Body[] }> {
  const s = standIn(registry, hostile);
  const socket = join(dir, `s${++n}.sock`);
  await new Promise<void>((r) => s.server.listen(socket, r));
  current = s;
  return { socket, seen: s.seen };
}
afterEach(async () => {
  if (current) await new Promise<void>((r) => current!.server.close(() => r()));
  current = undefined;
});

beforeAll(async () => {
  const doc: Record<string, { alg: 'ed25519' | 'ecdsa-p256'; publicKey: string }> = {};
  for (const [name, alg] of [['backend', 'ed25519'], ['alice', 'ecdsa-p256'], ['bob', 'ed25519'], ['carol', 'ecdsa-p256']] as const) {
    const out = join(dir, `${name}.pem`);
    const r = await run(['principal', 'keygen', '--alg', alg, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    doc[name] = JSON.parse(r.stdout);
    keys[name] = out;
  }
  registry = new PrincipalRegistry(doc);
});

const TX = JSON.stringify([{ from: '0x' + '11'.repeat(20), to: '0x' + '22'.repeat(20), value: '0xde0b6b3a7640000', nonce: '0x0', gas: '0x5208', chainId: '0x1' }]);
const as = (who: string, socket: string) => ['--socket', socket, '--principal', who, '--key', keys[who]!];

describe('principal keygen', () => {
  it('writes the private key 0600 and the public key, prints the policy entry', () => {
    expect(statSync(keys.alice!).mode & 0o777).toBe(0o600);
    expect(readFileSync(keys.alice!.replace(/\.pem$/, '.pub.pem'), 'utf8')).toMatch(/BEGIN PUBLIC KEY/);
    expect(registry.require('alice')).toBe('ecdsa-p256');
  });

  it('refuses to overwrite, and an unknown --alg is a usage error', async () => {
    expect((await run(['principal', 'keygen', '--alg', 'ed25519', '--out', keys.alice!])).code).toBe(2);
    expect((await run(['principal', 'keygen', '--alg', 'rsa', '--out', join(dir, 'x.pem')])).code).toBe(2);
  });
});

describe('call', () => {
  it('a signed request authenticates as the principal; unsigned, the same request is the host and denied (4001)', async () => {
    const { socket } = await signer();
    const ok = await run(['call', 'personal_sign', '["0x68656c6c6f","0x' + '11'.repeat(20) + '"]', ...as('backend', socket), '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ ok: true, result: { signedBy: 'backend' } });
    const host = await run(['call', 'personal_sign', '["0x68656c6c6f","0x' + '11'.repeat(20) + '"]', '--socket', socket, '--json']);
    expect(host.code).toBe(1);
    expect(JSON.parse(host.stdout).error).toMatchObject({ code: 4001, data: { rule: 'backend-messages' } });
  });

  it('hostile host: params altered after the CLI signed them → refused (4100 AUTH_BAD_SIGNATURE)', async () => {
    const { socket } = await signer({ mutate: (b) => void ((b.params as string[])[0] = '0x' + 'ff'.repeat(5)) });
    const r = await run(['call', 'personal_sign', '["0x68656c6c6f","0x' + '11'.repeat(20) + '"]', ...as('backend', socket), '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 4100, data: { code: 'AUTH_BAD_SIGNATURE' } });
  });

  it('hostile host: replaying the CLI’s signed request → refused (AUTH_REPLAYED)', async () => {
    const { socket, seen } = await signer();
    expect((await run(['call', 'personal_sign', '["0x00"]', ...as('backend', socket)])).code).toBe(0);
    const captured = seen.find((b) => b.method === 'personal_sign')!;
    const replay = await fetchUnix(socket, { jsonrpc: '2.0', id: 9, ...captured });
    expect(replay.error).toMatchObject({ code: 4100, data: { code: 'AUTH_REPLAYED' } });
  });

  it('WebAuthn-shaped signing (--webauthn, P-256) verifies', async () => {
    const { socket } = await signer();
    const r = await run(['call', 'personal_sign', '["0x00"]', ...as('alice', socket), '--webauthn', '--json']);
    // alice authenticates (the stand-in policy then denies non-backend messages: 4001, not 4100).
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 4001 });
  });

  it('usage: --principal without --key, floats in params, missing --socket', async () => {
    expect((await run(['call', 'personal_sign', '["0x00"]', '--socket', '/nope', '--principal', 'backend'])).code).toBe(2);
    expect((await run(['call', 'personal_sign', '[1.5]', '--socket', '/nope'])).code).toBe(2);
    expect((await run(['call', 'personal_sign'])).code).toBe(2);
    const gone = await run(['call', 'signer_status', '--socket', join(dir, 'missing.sock')]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/CLI_SOCKET/);
  });
});

describe('approve: the 2-of-3 flow through the CLI', () => {
  async function pending(socket: string): Promise<string> {
    const r = await run(['call', 'eth_signTransaction', TX, ...as('backend', socket), '--json']);
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout).error;
    expect(e).toMatchObject({ code: -32010, data: { code: 'APPROVAL_REQUIRED', rule: 'treasury', threshold: 2, approvers: ['alice', 'bob', 'carol'] } });
    return e.data.approvalId as string;
  }

  it('pending → alice approves → bob approves → the identical request is signed once; again needs a new approval', async () => {
    const { socket } = await signer();
    const id = await pending(socket);
    const a = await run(['approve', id, ...as('alice', socket)]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stderr).toMatch(/recomputed from the request below: matches/);
    expect(a.stderr).toMatch(/decoded inside the enclave/);
    expect(JSON.parse(a.stdout)).toMatchObject({ status: 'pending', approvedBy: ['alice'] });
    const again = await run(['approve', id, ...as('alice', socket), '--json']);
    expect(JSON.parse(again.stdout).approval.approvedBy).toEqual(['alice']);
    const b = await run(['approve', id, ...as('bob', socket), '--json']);
    expect(JSON.parse(b.stdout).approval).toMatchObject({ status: 'approved', approvedBy: ['alice', 'bob'] });
    const signed = await run(['call', 'eth_signTransaction', TX, ...as('backend', socket), '--json']);
    expect(JSON.parse(signed.stdout)).toEqual({ ok: true, result: { signedBy: 'backend', approvalId: id } });
    expect(await pending(socket)).not.toBe(id);
  });

  it('separation of duties: the requester approving its own request → APPROVAL_SELF (exit 1)', async () => {
    const { socket } = await signer();
    const id = await pending(socket);
    const r = await run(['approve', id, ...as('backend', socket), '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: -32011, data: { code: 'APPROVAL_SELF', approvalId: id } });
  });

  it('--reject vetoes: a later approval is refused', async () => {
    const { socket } = await signer();
    const id = await pending(socket);
    expect((await run(['approve', id, ...as('carol', socket), '--reject'])).code).toBe(0);
    const r = await run(['approve', id, ...as('alice', socket), '--json']);
    expect(JSON.parse(r.stdout).error.data.code).toBe('APPROVAL_REJECTED');
  });

  it('hostile host: shows the approver another request than the digest names → the CLI refuses to sign (nothing sent)', async () => {
    const { socket, seen } = await signer({ lieOnGetApproval: true });
    const id = await pending(socket);
    const r = await run(['approve', id, ...as('alice', socket)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/CLI_APPROVAL_MISMATCH/);
    expect(seen.some((b) => b.method === 'signer_approve')).toBe(false);
  });
});

async function fetchUnix(socket: string, body: unknown): Promise<{ error?: { code: number; data?: { code?: string } } }> {
  const { socketRpc } = await import('./socket-rpc.js');
  const a = await socketRpc(socket, body as Record<string, unknown>);
  return a.ok ? {} : { error: a.error as never };
}
