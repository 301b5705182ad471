/**
 * Issue 10 end to end, against `enclave-signer dev` (real enclave process,
 * simulated NSM, dev root): the stack's keystore holds an audit chain that
 * `audit verify --root <dev root>` accepts; a personal_sign's receipt verifies
 * with `receipt verify` and not with another result, as does a made key's
 * public data (and not a substituted address); a checkpoint anchors the
 * chain; across a restart the chain continues with a hand-over and verifies.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseRecord } from '../../common/audit/record.js';
import { verifyKeyReceipt } from '../../attestation/receipts.js';
import { createSignerClient } from '../../client/client.js';
import { openKeystore } from '../../parent/keystore.js';
import { BIN, REPO, call, httpUnix, startDevStack, type DevStack } from './dev-stack.js';
import { collect } from '../async.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-e2e-audit-'));
const data = join(dir, 'data');
const keystore = join(data, 'keystore.sqlite');
const root = join(data, 'dev-ca', 'root.pem');
let stack: DevStack | undefined;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: REPO, timeout: 60_000 }, (e, stdout, stderr) => {
      resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function kinds(): Promise<string[]> {
  const ks = await openKeystore(keystore, { readonly: true });
  try {
    return (await collect(ks.iterateAuditRecords())).map((r) => parseRecord(r.record).body.kind);
  } finally {
    await ks.close();
  }
}

beforeAll(async () => {
  stack = await startDevStack({ dataDir: data });
});
afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('issue 10 against the dev stack', () => {
  let address: string;
  let signature: string;

  it('the dev stack produces a chain that `audit verify --root <dev root>` accepts', async () => {
    address = (await call(stack!.socket, 'signer_createKey', {})).address;
    signature = await call(stack!.socket, 'personal_sign', ['0x68656c6c6f', address]);
    expect((await kinds()).slice(0, 1)).toEqual(['handover']);
    expect((await kinds())).toEqual(expect.arrayContaining(['keyring.create', 'key.create', 'sign']));
    const v = await cli(['audit', 'verify', '--keystore', keystore, '--root', root, '--json']);
    expect(v.code).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ valid: true, gaps: [] });
  });

  it('a receipt for a personal_sign verifies with `receipt verify`; the same receipt with another result does not', async () => {
    const receipt = await call(stack!.socket, 'signer_getReceipt', { result: signature });
    const file = join(dir, 'receipt.json');
    writeFileSync(file, JSON.stringify(receipt));
    const ok = await cli(['receipt', 'verify', file, '--result', signature, '--root', root, '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ valid: true, op: 'personal_sign' });
    const other = `${signature.slice(0, -2)}${signature.endsWith('00') ? '01' : '00'}`;
    const bad = await cli(['receipt', 'verify', file, '--result', other, '--root', root]);
    expect(bad.code).toBe(1);
    // The receipt anchors the chain too.
    expect((await cli(['audit', 'verify', '--keystore', keystore, '--root', root, '--receipt', file])).code).toBe(0);
  });

  it("a key's receipt from the real enclave proves its address and xpub with `receipt verify --result <json>`; a substituted address does not", async () => {
    for (const kind of ['secp256k1', 'bip32-seed']) {
      const made = JSON.parse((await httpUnix(stack!.socket, { body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'signer_createKey', params: { kind }, receipt: true }) })).body);
      const file = join(dir, `key-receipt-${kind}.json`);
      writeFileSync(file, JSON.stringify(made.receipt));
      const served = await call(stack!.socket, 'signer_getKey', { keyId: made.result.keyId });
      const ok = await cli(['receipt', 'verify', file, '--result', JSON.stringify(served), '--root', root, '--json']);
      expect(ok.code, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout)).toMatchObject({ valid: true, kind: 'key.create', keyId: made.result.keyId });
      const text = await cli(['receipt', 'verify', file, '--result', JSON.stringify(served), '--root', root]);
      expect(text.stdout).toContain(`key made     ${made.result.keyId}`);
      const forged = kind === 'secp256k1' ? { ...served, address: '0x000000000000000000000000000000000000dEaD' } : { ...served, xpub: `${served.xpub.slice(0, -1)}${served.xpub.endsWith('A') ? 'B' : 'A'}` };
      const bad = await cli(['receipt', 'verify', file, '--result', JSON.stringify(forged), '--root', root, '--json']);
      expect(bad.code).toBe(1);
      expect(JSON.parse(bad.stdout)).toMatchObject({ valid: false, error: { code: 'AUDIT_RECEIPT' } });
    }
  });

  it("the client library fetches a key's receipt (signer_getReceipt with the key as getKey returned it), which `receipt verify` and enclave-signer/verify accept", async () => {
    const client = createSignerClient({ socket: stack!.socket });
    try {
      const key = await client.createKey({ label: 'deposit 7' });
      const file = join(dir, 'client-key-receipt.json');
      writeFileSync(file, JSON.stringify(await client.getReceipt(await client.getKey(key.keyId))));
      const ok = await cli(['receipt', 'verify', file, '--result', JSON.stringify(key), '--root', root, '--json']);
      expect(ok.code, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout)).toMatchObject({ valid: true, kind: 'key.create', keyId: key.keyId });
      // In process, with enclave-signer/verify against the dev release's signed manifest.
      const trust = { manifest: readFileSync(join(data, 'pcr-manifest.dev.json'), 'utf8'), manifestKeys: [readFileSync(join(data, 'release', 'dev-release.pub.pem'), 'utf8')], root: readFileSync(root, 'utf8') };
      const receipt = await client.getReceipt(key);
      expect(verifyKeyReceipt(receipt, key, trust)).toMatchObject({ kind: 'key.create', keyId: key.keyId, enclave: { manifest: { name: 'enclave-signer-dev' } } });
      expect(() => verifyKeyReceipt(receipt, { ...key, address: '0x000000000000000000000000000000000000dEaD' }, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    } finally {
      client.close();
    }
  });

  it('`audit checkpoint --socket` gets a signed head that anchors `audit verify`', async () => {
    const out = join(dir, 'checkpoint.hex');
    const cp = await cli(['audit', 'checkpoint', '--socket', stack!.socket, '--out', out]);
    expect(cp.code).toBe(0);
    const v = await cli(['audit', 'verify', '--keystore', keystore, '--root', root, '--checkpoint', out]);
    expect(v.code).toBe(0);
  });

  it('across a restart of the dev stack the chain continues with a hand-over and still verifies', async () => {
    const before = (await kinds()).length;
    await stack!.stop();
    stack = await startDevStack({ dataDir: data });
    await call(stack.socket, 'personal_sign', ['0x6f6b', address]);
    const after = (await kinds());
    expect(after.slice(before)).toEqual(expect.arrayContaining(['handover', 'keyring.unlock', 'sign']));
    expect(after[before]).toBe('handover');
    const v = await cli(['audit', 'verify', '--keystore', keystore, '--root', root, '--json']);
    expect(v.code).toBe(0);
    const report = JSON.parse(v.stdout);
    expect(report).toMatchObject({ valid: true, gaps: [] });
    expect(report.enclaves).toHaveLength(2);
  });
});
