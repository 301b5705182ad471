/**
 * Hand-made HTTPS requests to the emulator, signed with SigV4 like the SDK
 * signs them, for the malformed inputs the SDK would never send.
 */
import { request, type Agent } from 'node:https';
import { signRequestHeaders, type SigV4Credential } from './sigv4.js';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: unknown;
  reusedSocket: boolean;
}

export async function rawKmsRequest(
  url: string,
  opts: {
    agent: Agent;
    target?: string;
    body: string | Uint8Array;
    credential?: SigV4Credential;
    region?: string;
    contentType?: string;
    path?: string;
    extraHeaders?: Record<string, string>;
  },
): Promise<RawResponse> {
  const u = new URL(url);
  const path = opts.path ?? '/';
  const headers: Record<string, string> = {
    'content-type': opts.contentType ?? 'application/x-amz-json-1.1',
    ...(opts.target === undefined ? {} : { 'x-amz-target': opts.target }),
    ...opts.extraHeaders,
  };
  const body = typeof opts.body === 'string' ? Buffer.from(opts.body, 'utf8') : Buffer.from(opts.body);
  const signed = opts.credential
    ? await signRequestHeaders({ method: 'POST', url: path, host: u.host, headers, body }, opts.credential, opts.region ?? 'us-east-1', 'kms')
    : headers;
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, method: 'POST', path, agent: opts.agent, headers: { ...signed, host: u.host, 'content-length': String(body.length) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json, reusedSocket: req.reusedSocket });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
