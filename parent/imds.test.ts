/**
 * IMDSv2 credentials against a fake IMDS: a real HTTP server on 127.0.0.1
 * speaking the real protocol (token PUT with a TTL header, 401 without a
 * valid token, role list, role document with an Expiration). Never
 * 169.254.169.254.
 */
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createCredentialsProvider } from './credentials.js';
import { createImdsCredentialSource, ImdsError, refreshDelay, startCredentialRefresher, type Credentials } from './imds.js';

// ------------------------------------------------------------------ the fake IMDS

type Mode =
  | 'ok'
  | 'down' // drops every connection
  | 'malformed' // role document is cut-off JSON that quotes a secret
  | 'code-failure'
  | 'missing-secret'
  | 'bad-expiration'
  | 'array'
  | 'expired'
  | 'huge'
  | 'no-role' // 404 on the role list
  | 'empty-role' // 200 with an empty body
  | 'bad-role-name'
  | 'role-404'
  | 'list-500'
  | 'token-403'
  | 'reject-all-tokens'
  | 'drop-after-token' // issues a token, then drops every GET
  | 'hang-after-token'; // issues a token, then never answers a GET

interface ServedCredentials {
  AccessKeyId: string;
  SecretAccessKey: string;
  Token: string;
  Expiration: string;
}

interface FakeImds {
  endpoint: string;
  mode: Mode;
  role: string;
  /** Life of each credential set it hands out. */
  lifetimeMs: number;
  requests: { method: string; path: string; ttl: string | undefined; token: string | undefined }[];
  /** Every credential set served, in order (a fresh one per role-document GET). */
  issued: ServedCredentials[];
  /** Every session token ever issued. */
  tokens: string[];
  /** IMDS restarted: every token it issued stops working. */
  invalidateTokens(): void;
  /** Every secret it ever handed out (credentials and session tokens). */
  secrets(): string[];
  close(): Promise<void>;
}

const ROLE_PATH = '/latest/meta-data/iam/security-credentials/';

function b64(n: number): string {
  return randomBytes(n).toString('base64');
}

async function startFakeImds(init: { mode?: Mode; lifetimeMs?: number } = {}): Promise<FakeImds> {
  const valid = new Map<string, number>(); // token → expires at (ms)
  const fake: Omit<FakeImds, 'endpoint' | 'close'> = {
    mode: init.mode ?? 'ok',
    role: 'enclave-signer-parent',
    lifetimeMs: init.lifetimeMs ?? 6 * 3600_000,
    requests: [],
    issued: [],
    tokens: [],
    invalidateTokens: () => valid.clear(),
    secrets: () => [...fake.issued.flatMap((c) => [c.SecretAccessKey, c.Token]), ...fake.tokens],
  };
  const sockets = new Set<Socket>();
  const send = (res: ServerResponse, status: number, body = '') => {
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const ttl = req.headers['x-aws-ec2-metadata-token-ttl-seconds'];
    const token = req.headers['x-aws-ec2-metadata-token'];
    fake.requests.push({ method: req.method ?? '', path: req.url ?? '', ttl: typeof ttl === 'string' ? ttl : undefined, token: typeof token === 'string' ? token : undefined });
    if (fake.mode === 'down') {
      req.socket.destroy();
      return;
    }
    if (req.url === '/latest/api/token') {
      if (req.method !== 'PUT') return send(res, 405);
      if (req.headers['x-forwarded-for'] !== undefined || fake.mode === 'token-403') return send(res, 403);
      const n = typeof ttl === 'string' && /^\d+$/.test(ttl) ? Number(ttl) : NaN;
      if (!(n >= 1 && n <= 21600)) return send(res, 400);
      const t = b64(42);
      fake.tokens.push(t);
      valid.set(t, Date.now() + n * 1000);
      return send(res, 200, t);
    }
    if (req.method !== 'GET') return send(res, 405);
    if (fake.mode === 'drop-after-token') {
      req.socket.destroy();
      return;
    }
    if (fake.mode === 'hang-after-token') return;
    const exp = typeof token === 'string' ? valid.get(token) : undefined;
    if (exp === undefined || exp <= Date.now() || fake.mode === 'reject-all-tokens') return send(res, 401);
    if (req.url === ROLE_PATH) {
      if (fake.mode === 'no-role') return send(res, 404);
      if (fake.mode === 'list-500') return send(res, 500);
      if (fake.mode === 'empty-role') return send(res, 200, '');
      if (fake.mode === 'bad-role-name') return send(res, 200, '../../user-data');
      return send(res, 200, fake.role);
    }
    if (req.url === ROLE_PATH + fake.role) {
      if (fake.mode === 'role-404') return send(res, 404);
      const c: ServedCredentials = {
        AccessKeyId: 'ASIA' + randomBytes(8).toString('hex').toUpperCase(),
        SecretAccessKey: b64(30),
        Token: b64(600),
        Expiration: new Date(Date.now() + (fake.mode === 'expired' ? -60_000 : fake.lifetimeMs)).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      };
      fake.issued.push(c);
      const doc: Record<string, unknown> = { Code: 'Success', LastUpdated: new Date().toISOString(), Type: 'AWS-HMAC', ...c };
      switch (fake.mode) {
        case 'malformed':
          return send(res, 200, JSON.stringify(doc).slice(0, 120 + c.SecretAccessKey.length));
        case 'code-failure':
          // What IMDS serves when it cannot assume the role: a Code and a Message, no keys.
          return send(res, 200, JSON.stringify({ Code: 'AssumeRoleUnauthorizedAccess', Message: 'EC2 cannot assume the role', LastUpdated: doc.LastUpdated }));
        case 'missing-secret':
          delete doc.SecretAccessKey;
          return send(res, 200, JSON.stringify(doc));
        case 'bad-expiration':
          return send(res, 200, JSON.stringify({ ...doc, Expiration: 'soon' }));
        case 'array':
          return send(res, 200, JSON.stringify([doc]));
        case 'huge':
          return send(res, 200, JSON.stringify({ ...doc, Token: 'x'.repeat(9000) }));
        default:
          return send(res, 200, JSON.stringify(doc));
      }
    }
    return send(res, 404);
  };
  const server = createHttpServer(handle);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(fake, {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  }) as FakeImds;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fakeImds(init?: Parameters<typeof startFakeImds>[0]): Promise<FakeImds> {
  const f = await startFakeImds(init);
  cleanups.push(() => f.close());
  return f;
}

function asWire(c: ServedCredentials): Credentials {
  return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.Token, expiration: new Date(c.Expiration).toISOString() };
}

async function rejection(p: Promise<unknown>): Promise<ImdsError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'expected a rejection').toBeInstanceOf(ImdsError);
  return e as ImdsError;
}

function expectNoSecret(text: string, secrets: string[]): void {
  for (const s of secrets) expect(text.includes(s), 'a secret leaked').toBe(false);
}

/** Lets real I/O run (setImmediate is not faked) until `cond` holds; bounded in real time. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

// ------------------------------------------------------------------ the source

describe('createImdsCredentialSource', () => {
  it('speaks IMDSv2: token PUT with the TTL header, then role list and role document with that token', async () => {
    const imds = await fakeImds();
    const source = createImdsCredentialSource({ endpoint: imds.endpoint });
    const c = await source.get();
    expect(imds.issued).toHaveLength(1);
    expect(c).toEqual(asWire(imds.issued[0]!));
    expect(imds.requests).toEqual([
      { method: 'PUT', path: '/latest/api/token', ttl: '21600', token: undefined },
      { method: 'GET', path: ROLE_PATH, ttl: undefined, token: imds.tokens[0] },
      { method: 'GET', path: ROLE_PATH + imds.role, ttl: undefined, token: imds.tokens[0] },
    ]);
    expect(source.endpoint).toBe(imds.endpoint);
  });

  it('the fake is strict: 401 without or with a wrong token, 400 without a TTL, 403 with X-Forwarded-For', async () => {
    const imds = await fakeImds();
    expect((await fetch(imds.endpoint + ROLE_PATH)).status).toBe(401);
    expect((await fetch(imds.endpoint + ROLE_PATH, { headers: { 'x-aws-ec2-metadata-token': 'forged' } })).status).toBe(401);
    expect((await fetch(imds.endpoint + '/latest/api/token', { method: 'PUT' })).status).toBe(400);
    expect((await fetch(imds.endpoint + '/latest/api/token', { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '21601' } })).status).toBe(400);
    expect((await fetch(imds.endpoint + '/latest/api/token', { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60', 'x-forwarded-for': '1.2.3.4' } })).status).toBe(403);
  });

  it('asks for a fresh token (TTL 21600) on every fetch and never sends a GET without one (IMDSv2 only)', async () => {
    const imds = await fakeImds();
    const source = createImdsCredentialSource({ endpoint: imds.endpoint });
    await source.get();
    await source.get();
    const puts = imds.requests.filter((r) => r.method === 'PUT');
    expect(puts.map((r) => r.ttl)).toEqual(['21600', '21600']);
    expect(imds.requests.filter((r) => r.method === 'GET').every((r) => r.token !== undefined && imds.tokens.includes(r.token))).toBe(true);
    // A refused token never turns into an unauthenticated (IMDSv1) GET.
    imds.mode = 'token-403';
    const before = imds.requests.length;
    await rejection(source.get());
    expect(imds.requests.slice(before).map((r) => r.method)).toEqual(['PUT']);
  });

  it('sources with different endpoints in one process each reach their own IMDS, and the SDK endpoint variable is left as it was', async () => {
    const a = await fakeImds();
    const b = await fakeImds();
    const before = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    const [ca, cb] = await Promise.all([createImdsCredentialSource({ endpoint: a.endpoint }).get(), createImdsCredentialSource({ endpoint: b.endpoint }).get()]);
    expect(ca).toEqual(asWire(a.issued[0]!));
    expect(cb).toEqual(asWire(b.issued[0]!));
    expect(a.issued).toHaveLength(1);
    expect(b.issued).toHaveLength(1);
    expect(process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT).toBe(before);
  });

  it('replaces a token IMDS stopped honouring (401) once, and fails with IMDS_TOKEN when IMDS keeps refusing', async () => {
    const imds = await fakeImds();
    const source = createImdsCredentialSource({ endpoint: imds.endpoint });
    await source.get();
    imds.invalidateTokens(); // IMDS restarted
    const c = await source.get();
    expect(c).toEqual(asWire(imds.issued[1]!));
    expect(imds.tokens).toHaveLength(2);
    imds.mode = 'reject-all-tokens';
    const e = await rejection(source.get());
    expect(e.code).toBe('IMDS_TOKEN');
    expect(imds.tokens).toHaveLength(3); // a fresh token per fetch; a refused one is not retried
  });

  it('IMDS refusing the token request is IMDS_TOKEN with a hint', async () => {
    const imds = await fakeImds({ mode: 'token-403' });
    const e = await rejection(createImdsCredentialSource({ endpoint: imds.endpoint }).get());
    expect(e.code).toBe('IMDS_TOKEN');
    expect(e.message).toContain(`IMDS at ${imds.endpoint} issued no IMDSv2 session token`);
    expect(e.hint).toContain('X-Forwarded-For');
    expect(e.hint).toContain('HttpPutResponseHopLimit');
  });

  it('takes only http://host[:port] endpoints and sane numbers', () => {
    for (const endpoint of ['https://169.254.169.254', 'file:///etc/passwd', 'ftp://127.0.0.1', 'not a url', 'http://u:p@127.0.0.1', 'http://127.0.0.1/latest', 'http://127.0.0.1/?x=1']) {
      expect(() => createImdsCredentialSource({ endpoint }), endpoint).toThrowError(expect.objectContaining({ code: 'IMDS_CONFIG' }));
    }
    expect(() => createImdsCredentialSource({ timeoutMs: 0 })).toThrowError(expect.objectContaining({ code: 'IMDS_CONFIG' }));
    // Constructing contacts nothing; the default is the link-local IMDS.
    expect(createImdsCredentialSource().endpoint).toBe('http://169.254.169.254');
    expect(createImdsCredentialSource({ endpoint: 'http://[fd00:ec2::254]' }).endpoint).toBe('http://[fd00:ec2::254]');
  });

  it('IMDS down: no token is IMDS_TOKEN naming the endpoint; a drop after the token is IMDS_UNREACHABLE with the errno', async () => {
    const probe = createNetServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const e = await rejection(createImdsCredentialSource({ endpoint: `http://127.0.0.1:${port}` }).get());
    expect(e.code).toBe('IMDS_TOKEN');
    expect(e.message).toContain(`127.0.0.1:${port}`);

    const imds = await fakeImds({ mode: 'down' });
    expect((await rejection(createImdsCredentialSource({ endpoint: imds.endpoint }).get())).code).toBe('IMDS_TOKEN');

    const dropping = await fakeImds({ mode: 'drop-after-token' });
    const d = await rejection(createImdsCredentialSource({ endpoint: dropping.endpoint }).get());
    expect(d.code).toBe('IMDS_UNREACHABLE');
    expect(d.message).toBe(`cannot reach IMDS at ${dropping.endpoint}: ECONNRESET`);
  });

  it('IMDS that accepts but never answers: no token is IMDS_TOKEN with the hop-limit hint; silence after the token is IMDS_TIMEOUT', async () => {
    const held: Socket[] = [];
    const silent = createNetServer((s) => held.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of held) s.destroy();
          silent.close(() => r());
        }),
    );
    const e = await rejection(createImdsCredentialSource({ endpoint: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, timeoutMs: 150 }).get());
    expect(e.code).toBe('IMDS_TOKEN');
    expect(e.message).toContain('no answer within 150 ms');
    expect(e.hint).toContain('HttpPutResponseHopLimit');

    const hanging = await fakeImds({ mode: 'hang-after-token' });
    const h = await rejection(createImdsCredentialSource({ endpoint: hanging.endpoint, timeoutMs: 150 }).get());
    expect(h.code).toBe('IMDS_TIMEOUT');
    expect(h.message).toBe(`IMDS at ${hanging.endpoint} did not answer within 150 ms`);
  });

  it('malformed JSON is IMDS_BAD_RESPONSE, and neither message nor cause quotes the body', async () => {
    const imds = await fakeImds({ mode: 'malformed' });
    const e = await rejection(createImdsCredentialSource({ endpoint: imds.endpoint }).get());
    expect(e.code).toBe('IMDS_BAD_RESPONSE');
    expect(e.message).toMatch(/not valid JSON/);
    expect(e.cause).toBeUndefined();
    expectNoSecret(`${e.message} ${e.hint ?? ''} ${JSON.stringify(e)} ${String(e.stack)}`, imds.secrets());
    expect(imds.issued[0]!.SecretAccessKey.length).toBeGreaterThan(0);
  });

  it.each([
    ['code-failure', 'IMDS_BAD_RESPONSE', /not a credentials document/],
    ['missing-secret', 'IMDS_BAD_RESPONSE', /not a credentials document/],
    ['bad-expiration', 'IMDS_BAD_RESPONSE', /Expiration that is not a date/],
    ['array', 'IMDS_BAD_RESPONSE', /not a credentials document/],
    ['huge', 'IMDS_BAD_RESPONSE', /no valid Token/],
    ['expired', 'IMDS_EXPIRED', /expired at/],
    ['no-role', 'IMDS_NO_ROLE', /no IAM role/],
    ['empty-role', 'IMDS_BAD_RESPONSE', /not valid JSON/],
    ['bad-role-name', 'IMDS_NO_ROLE', /no IAM role/],
    ['role-404', 'IMDS_NO_ROLE', /no IAM role/],
    ['list-500', 'IMDS_HTTP', /HTTP 500/],
  ] as const)('%s → %s', async (mode, code, message) => {
    const imds = await fakeImds({ mode });
    const e = await rejection(createImdsCredentialSource({ endpoint: imds.endpoint }).get());
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
    expectNoSecret(JSON.stringify(e) + String(e.stack), imds.secrets());
  });

  it('plugs into the parent credentials provider (custom kind) in credentials.set shape', async () => {
    const imds = await fakeImds();
    const source = createImdsCredentialSource({ endpoint: imds.endpoint });
    const provider = createCredentialsProvider({ kind: 'custom', name: 'imds', get: () => source.get() });
    expect(await provider.get()).toEqual(asWire(imds.issued[0]!));
    imds.mode = 'no-role';
    await expect(provider.get()).rejects.toMatchObject({ code: 'PARENT_CREDENTIALS', message: expect.stringMatching(/^credentials provider imds failed: IMDS_NO_ROLE/) });
  });
});

// ------------------------------------------------------------------ the refresher

describe('refreshDelay', () => {
  const t0 = new Date('2030-01-01T00:00:00Z');
  const at = (ms: number) => new Date(t0.getTime() + ms);
  it.each([
    ['6 h left → at 80% (4 h 48 min)', 6 * 3600_000, 288 * 60_000],
    ['1 h left → 48 min (80%) beats 55 min', 3600_000, 48 * 60_000],
    ['20 min left → 5 min before expiry (15 min) beats 16 min', 20 * 60_000, 15 * 60_000],
    ['5 min left → not in a loop: 30 s', 5 * 60_000, 30_000],
    ['10 s left → half of it', 10_000, 5_000],
    ['1 s left → 1 s', 1_000, 1_000],
  ])('%s', (_name, left, want) => {
    expect(refreshDelay(at(left), t0, 5 * 60_000)).toBe(want);
  });
});

describe('startCredentialRefresher', () => {
  const T0 = new Date('2030-01-01T00:00:00Z');
  const fakeClock = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: T0 });

  it('hands over at once, then refreshes at min(80% of the life, 5 min before expiry), with fresh credentials each time', async () => {
    fakeClock();
    const imds = await fakeImds({ lifetimeMs: 6 * 3600_000 });
    const pushed: Credentials[] = [];
    const logs: string[] = [];
    const r = startCredentialRefresher({
      source: createImdsCredentialSource({ endpoint: imds.endpoint }),
      push: async (c) => void pushed.push(c),
      log: (l) => logs.push(l),
    });
    cleanups.push(() => r.stop());
    await until(() => pushed.length === 1 && r.next !== undefined, 'the first hand-over');
    expect(pushed[0]).toEqual(asWire(imds.issued[0]!));
    const due = T0.getTime() + 288 * 60_000; // 80% of 6 h
    expect(r.next?.getTime()).toBe(due);
    expect(r.expiration?.toISOString()).toBe(asWire(imds.issued[0]!).expiration);

    await vi.advanceTimersByTimeAsync(due - Date.now() - 1_000);
    expect(pushed).toHaveLength(1);
    expect(imds.issued).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_000);
    await until(() => pushed.length === 2 && r.next !== undefined, 'the refresh');
    expect(pushed[1]).toEqual(asWire(imds.issued[1]!));
    expect(pushed[1]!.secretAccessKey).not.toBe(pushed[0]!.secretAccessKey);
    expect(r.next?.getTime()).toBe(due + 288 * 60_000);
    expect(r.failures).toBe(0);
    expect(logs).toHaveLength(2);
    expect(logs[0]).toMatch(/^credentials: handed over to the enclave, expire 2030-01-01T06:00:00.000Z, next refresh 2030-01-01T04:48:00.000Z$/);
    expectNoSecret(logs.join('\n'), [...imds.secrets(), ...pushed.map((c) => c.accessKeyId)]);
  });

  it('short-lived credentials are refreshed 5 min before expiry (minRefreshBeforeExpiryMs)', async () => {
    fakeClock();
    const imds = await fakeImds({ lifetimeMs: 20 * 60_000 });
    const pushed: Credentials[] = [];
    const r = startCredentialRefresher({ source: createImdsCredentialSource({ endpoint: imds.endpoint }), push: async (c) => void pushed.push(c) });
    cleanups.push(() => r.stop());
    await until(() => r.next !== undefined, 'the first hand-over');
    expect(r.next!.getTime() - T0.getTime()).toBe(15 * 60_000);
    r.stop();
    const r2 = startCredentialRefresher({ source: createImdsCredentialSource({ endpoint: imds.endpoint }), push: async (c) => void pushed.push(c), minRefreshBeforeExpiryMs: 10 * 60_000 });
    cleanups.push(() => r2.stop());
    await until(() => r2.next !== undefined, 'the second refresher');
    expect(r2.next!.getTime() - T0.getTime()).toBe(10 * 60_000);
  });

  it('IMDS down: a clear log line, retries with backoff 1 s, 2 s, 4 s, and recovers when IMDS is back', async () => {
    fakeClock();
    const imds = await fakeImds({ mode: 'down' });
    const pushed: Credentials[] = [];
    const logs: string[] = [];
    const r = startCredentialRefresher({ source: createImdsCredentialSource({ endpoint: imds.endpoint }), push: async (c) => void pushed.push(c), log: (l) => logs.push(l) });
    cleanups.push(() => r.stop());
    const waits: number[] = [];
    for (let i = 1; i <= 3; i++) {
      await until(() => r.failures === i && r.next !== undefined, `failure ${i}`);
      waits.push(r.next!.getTime() - Date.now());
      await vi.advanceTimersByTimeAsync(r.next!.getTime() - Date.now());
    }
    expect(waits).toEqual([1_000, 2_000, 4_000]);
    expect(logs[0]).toBe(`credentials: refresh failed (IMDS_TOKEN: IMDS at ${imds.endpoint} issued no IMDSv2 session token (refused, unreachable, or no answer within 2000 ms); IMDSv1 is never tried); attempt 2 in 1 s`);
    expect(logs[2]).toMatch(/attempt 4 in 4 s$/);
    expect(pushed).toHaveLength(0);

    imds.mode = 'ok';
    await until(() => r.failures === 4 || pushed.length === 1, 'the fourth attempt');
    // the fourth attempt was already under way when IMDS came back, or it failed and the fifth succeeds
    if (pushed.length === 0) await vi.advanceTimersByTimeAsync(8_000);
    await until(() => pushed.length === 1 && r.next !== undefined, 'recovery');
    expect(r.failures).toBe(0);
    expect(pushed[0]).toEqual(asWire(imds.issued[0]!));
    expect(logs.at(-1)).toMatch(/^credentials: handed over to the enclave/);
    expectNoSecret(logs.join('\n'), imds.secrets());
  });

  it('malformed IMDS answers and a push that fails while quoting the secret never put a secret in a log line', async () => {
    fakeClock();
    const imds = await fakeImds({ mode: 'malformed' });
    const logs: string[] = [];
    let pushes = 0;
    const r = startCredentialRefresher({
      source: createImdsCredentialSource({ endpoint: imds.endpoint }),
      push: async (c) => {
        pushes++;
        // a careless error that quotes what it was given
        if (pushes === 1) throw new Error(`enclave refused ${JSON.stringify(c)}`);
      },
      log: (l) => logs.push(l),
    });
    cleanups.push(() => r.stop());
    await until(() => r.failures === 1 && r.next !== undefined, 'the malformed answer');
    expect(logs[0]).toMatch(/IMDS_BAD_RESPONSE: the credentials document IMDS returned is not valid JSON/);
    imds.mode = 'ok';
    await vi.advanceTimersByTimeAsync(1_000);
    await until(() => r.failures === 2 && r.next !== undefined, 'the failed push');
    expect(logs[1]).toBe('credentials: refresh failed (Error); attempt 3 in 2 s');
    await vi.advanceTimersByTimeAsync(2_000);
    await until(() => pushes === 2 && r.next !== undefined, 'the good push');
    expect(r.failures).toBe(0);
    expect(imds.issued.length).toBe(3);
    expectNoSecret(logs.join('\n'), [...imds.secrets(), ...imds.issued.map((c) => c.AccessKeyId)]);
  });

  it('stop() cancels the timer, and an attempt in flight at stop() never pushes', async () => {
    const imds = await fakeImds();
    const pushed: Credentials[] = [];
    const r = startCredentialRefresher({ source: createImdsCredentialSource({ endpoint: imds.endpoint }), push: async (c) => void pushed.push(c) });
    r.stop(); // the first attempt is already under way
    await until(() => imds.issued.length === 1, 'IMDS to answer');
    await new Promise((res) => setTimeout(res, 50));
    expect(pushed).toHaveLength(0);
    expect(r.next).toBeUndefined();

    const r2 = startCredentialRefresher({ source: createImdsCredentialSource({ endpoint: imds.endpoint }), push: async (c) => void pushed.push(c) });
    await until(() => r2.next !== undefined, 'the hand-over');
    r2.stop();
    expect(r2.next).toBeUndefined();
    expect(pushed).toHaveLength(1);
  });

  it('rejects nonsensical options', () => {
    const source = { get: async (): Promise<Credentials> => ({ accessKeyId: 'x', secretAccessKey: 'y' }) };
    expect(() => startCredentialRefresher({ source, push: async () => {}, retryMinMs: 0 })).toThrowError(expect.objectContaining({ code: 'IMDS_CONFIG' }));
    expect(() => startCredentialRefresher({ source, push: async () => {}, retryMinMs: 10, retryMaxMs: 5 })).toThrowError(expect.objectContaining({ code: 'IMDS_CONFIG' }));
    expect(() => startCredentialRefresher({ source, push: async () => {}, minRefreshBeforeExpiryMs: -1 })).toThrowError(expect.objectContaining({ code: 'IMDS_CONFIG' }));
  });
});
