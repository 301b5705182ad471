/**
 * The parent's KMS byte pipe, like AWS's vsock-proxy: the enclave dials a
 * local port (vsock 8000 by convention; unix/tcp in dev) and gets a raw TCP
 * stream to one allow-listed host:port. TLS runs end to end between the
 * enclave and KMS, so this process moves only ciphertext and cannot read or
 * alter what the enclave exchanges with KMS.
 *
 * The allowlist uses vsock-proxy's YAML format:
 *   allowlist:
 *   - {address: kms.us-east-1.amazonaws.com, port: 443}
 */
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { SignerError } from '../common/errors.js';
import { listen, type TransportListener } from '../common/transport/index.js';

export interface AllowedTarget {
  address: string;
  port: number;
}

export class KmsPipeError extends SignerError {}

export function parseAllowlist(text: string): AllowedTarget[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new KmsPipeError('PIPE_BAD_ALLOWLIST', `allowlist is not valid YAML: ${(e as Error).message}`);
  }
  const list = (doc as { allowlist?: unknown } | null)?.allowlist;
  if (!Array.isArray(list)) throw new KmsPipeError('PIPE_BAD_ALLOWLIST', 'allowlist must contain an "allowlist:" sequence');
  return list.map((e, i) => {
    const o = e as { address?: unknown; port?: unknown };
    if (typeof o?.address !== 'string' || !/^[A-Za-z0-9.-]{1,253}$/.test(o.address)) throw new KmsPipeError('PIPE_BAD_ALLOWLIST', `allowlist[${i}].address must be a host name`);
    if (!Number.isInteger(o.port) || (o.port as number) < 1 || (o.port as number) > 65535) throw new KmsPipeError('PIPE_BAD_ALLOWLIST', `allowlist[${i}].port must be 1..65535`);
    return { address: o.address.toLowerCase(), port: o.port as number };
  });
}

export function loadAllowlist(path: string): AllowedTarget[] {
  return parseAllowlist(readFileSync(path, 'utf8'));
}

export interface KmsPipeOptions {
  /** Where the enclave dials: vsock://4294967295:8000 (any CID) on Nitro, unix:/… or tcp://127.0.0.1:… in dev. */
  listen: string;
  target: AllowedTarget;
  allowlist: AllowedTarget[];
  maxConnections?: number;
  /** Close a pipe with no traffic in either direction for this long. */
  idleTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface KmsPipe {
  readonly uri: string;
  readonly active: number;
  close(): Promise<void>;
}

export async function startKmsPipe(opts: KmsPipeOptions): Promise<KmsPipe> {
  const target = { address: opts.target.address.toLowerCase(), port: opts.target.port };
  if (!opts.allowlist.some((a) => a.address === target.address && a.port === target.port)) {
    throw new KmsPipeError('PIPE_NOT_ALLOWED', `${target.address}:${target.port} is not in the allowlist`);
  }
  const max = opts.maxConnections ?? 64;
  const idle = opts.idleTimeoutMs ?? 60_000;
  const log = opts.log ?? (() => {});
  /** Open pipes (by their enclave side) → what tears both sides down. */
  const open = new Map<Duplex, () => void>();

  const onConnection = (inner: Duplex) => {
    if (open.size >= max) {
      log(`kms pipe: refusing a connection, ${max} already open`);
      inner.destroy();
      return;
    }
    // Half-close passes through, as in TCP: a side that sent its FIN still receives the rest.
    inner.allowHalfOpen = true;
    const outer = net.createConnection({ host: target.address, port: target.port, allowHalfOpen: true });
    outer.setNoDelay(true);
    let timer: NodeJS.Timeout | undefined;
    const abort = () => {
      clearTimeout(timer);
      open.delete(inner);
      inner.destroy();
      outer.destroy();
    };
    open.set(inner, abort);
    const touch = () => {
      clearTimeout(timer);
      timer = setTimeout(abort, idle);
    };
    // A side that closed cleanly has handed its last byte to the other (pipe() then ends it);
    // the other side flushes what it still holds, sends its FIN and closes when its peer is
    // done too (or the idle timer ends it). Destroying it here would drop those bytes.
    const onClose = (other: Duplex) => (hadError?: boolean) => {
      if (hadError) return abort();
      if (!other.destroyed && !other.writableEnded) other.end();
      if (inner.destroyed && outer.destroyed) {
        clearTimeout(timer);
        open.delete(inner);
      }
    };
    touch();
    inner.on('data', touch);
    outer.on('data', touch);
    inner.on('error', abort).on('close', onClose(outer));
    outer.on('error', abort).on('close', onClose(inner));
    // pipe() gives backpressure in both directions
    inner.pipe(outer);
    outer.pipe(inner);
  };

  const listener: TransportListener = await listen(opts.listen, onConnection, { unixSocketMode: 0o600 });
  log(`kms pipe: ${listener.uri} → ${target.address}:${target.port}`);
  return {
    uri: listener.uri,
    get active() {
      return open.size;
    },
    async close() {
      for (const abort of [...open.values()]) abort();
      await listener.close();
    },
  };
}
