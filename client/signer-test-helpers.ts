/**
 * A stand-in signer for the client's principal and approval tests: a
 * geth-style IPC server on a Unix socket that runs the enclave's own request
 * verifier and approval book (enclave/auth/), so every envelope the client
 * produces is checked by the code the enclave runs. Hooks let a test play the
 * hostile host (edit a request, lie in an approval view, answer with a forged
 * refusal) or drop a connection.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthError } from '../common/auth/errors.js';
import { approvalRequiredError, approvalView } from '../enclave/auth/approval-required.js';
import { ApprovalBook } from '../enclave/auth/approvals.js';
import { ApprovalError } from '../enclave/auth/errors.js';
import type { PrincipalRegistry } from '../enclave/auth/principals.js';
import { authRpcError } from '../enclave/auth/rpc-errors.js';
import { RequestVerifier } from '../enclave/auth/verify-request.js';

export const POLICY_HASH = 'c'.repeat(64);

export type Body = { jsonrpc: '2.0'; id: unknown; method: string; params?: unknown; signer_auth?: { requestId: string; expiresAt: number; principal: string } };

export interface StandInHooks {
  /** Edits a request before the "enclave" verifies it (the parent in the middle). */
  mutate?: (b: Body) => void;
  /** Drops the connection instead of answering the first `n` requests of `method`. */
  drop?: { method: string; n: number };
  /** Shows approvers another request than the one waiting. */
  lieOnGetApproval?: boolean;
  /** Answers this error to the first `times` (default 1) requests of a method instead of handling them (a forged refusal). */
  forge?: { method: string; error: unknown; times?: number };
  /** Edits the answer to signer_openSession (a host in the middle of the opening). */
  editOpenAnswer?: (answer: Record<string, unknown>) => void;
  /** signer_status reports this policy hash instead of the real one (a lying host). */
  statusHash?: string;
  /** The verifier's restart barrier (Unix seconds). */
  restartBarrier?: number;
}

export interface StandIn {
  socket: string;
  /** Every request as received (before `mutate`). */
  seen: Body[];
  book: ApprovalBook;
  close(): Promise<void>;
}

/**
 * Methods: signer_status, signer_openSession, the four approval methods, personal_sign (allowed
 * only to `backend`: else 4001 rule backend-messages), eth_signTransaction
 * (2 of alice, bob, carol: rule treasury), anything else answers
 * { principal } after verification.
 */
export async function standInSigner(registry: PrincipalRegistry, hooks: StandInHooks = {}): Promise<StandIn> {
  const now = () => Math.floor(Date.now() / 1000);
  const verifier = new RequestVerifier({ principals: registry, audience: POLICY_HASH, now, ...(hooks.restartBarrier !== undefined ? { restartBarrier: hooks.restartBarrier } : {}) });
  const book = new ApprovalBook({ principals: registry, now });
  const seen: Body[] = [];
  const dropped = new Map<string, number>();
  let forged = 0;

  const handle = (b: Body): unknown => {
    const p = b.params as Record<string, string> | undefined;
    switch (b.method) {
      case 'signer_status':
        return { policy: { hash: hooks.statusHash ?? POLICY_HASH, name: 'stand-in' } };
      case 'signer_getApproval': {
        const v = approvalView(book.get(p!.approvalId!), now());
        if (hooks.lieOnGetApproval) v.request = { method: 'personal_sign', params: ['0x68656c6c6f', `0x${'11'.repeat(20)}`] };
        return { ...v, intent: { kind: 'test' } };
      }
      case 'signer_listApprovals':
        return book.list().map((r) => approvalView(r, now()));
      case 'signer_approve':
      case 'signer_reject': {
        const w = p as unknown as { approvalId: string; approver: string; signature: string };
        const r = b.method === 'signer_approve' ? book.approve(w.approvalId, w.approver, w.signature) : book.reject(w.approvalId, w.approver, w.signature);
        return approvalView(r, now());
      }
    }
    hooks.mutate?.(b);
    if (b.method === 'signer_openSession') {
      const answer = { ...verifier.openSession(b.params, b.signer_auth).opened } as Record<string, unknown>;
      hooks.editOpenAnswer?.(answer);
      return answer;
    }
    const a = verifier.verify(b.method, b.params, b.signer_auth);
    if (b.method === 'personal_sign') {
      if (a.principal !== 'backend') throw { code: 4001, message: 'denied: rule backend-messages', data: { code: 'POLICY_DENIED', rule: 'backend-messages' } };
      return { principal: a.principal };
    }
    if (b.method === 'eth_signTransaction') {
      const rec = book.authorize({ requestDigest: a.requestDigest, rule: 'treasury', threshold: 2, approvers: ['alice', 'bob', 'carol'], requester: a.principal, ttlSeconds: 600, request: { method: b.method, params: b.params } });
      if (book.status(rec.approvalId) !== 'approved') throw approvalRequiredError(rec);
      book.consume(rec.approvalId, { requestDigest: a.requestDigest, rule: 'treasury', requester: a.principal });
      return { principal: a.principal, approvalId: rec.approvalId };
    }
    return { principal: a.principal };
  };

  const errorOf = (e: unknown): unknown => {
    if (!(e instanceof AuthError || e instanceof ApprovalError)) return e;
    const out = authRpcError(e);
    // The wire format the lead's wiring adds: the barrier travels as data.expiresAfter.
    if (e instanceof AuthError && e.code === 'AUTH_BEFORE_RESTART') (out.data as Record<string, unknown>).expiresAfter = hooks.restartBarrier;
    return out;
  };

  const dir = mkdtempSync(join(tmpdir(), 'es-client-standin-'));
  const socket = join(dir, 's.sock');
  const conns = new Set<Socket>();
  const server: Server = createServer((s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    let buf = '';
    s.setEncoding('utf8').on('data', (c: string) => {
      buf += c;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const b = JSON.parse(buf.slice(0, nl)) as Body;
        buf = buf.slice(nl + 1);
        seen.push(structuredClone(b));
        if (hooks.drop?.method === b.method && (dropped.get(b.method) ?? 0) < hooks.drop.n) {
          dropped.set(b.method, (dropped.get(b.method) ?? 0) + 1);
          s.destroy();
          return;
        }
        let answer: Record<string, unknown>;
        if (hooks.forge?.method === b.method && forged < (hooks.forge.times ?? 1)) {
          forged++;
          answer = { error: hooks.forge.error };
        } else {
          try {
            answer = { result: handle(b) };
          } catch (e) {
            answer = { error: errorOf(e) };
          }
        }
        s.write(`${JSON.stringify({ jsonrpc: '2.0', id: b.id, ...answer })}\n`);
      }
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
  return {
    socket,
    seen,
    book,
    async close() {
      for (const c of conns) c.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
