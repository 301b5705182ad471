/**
 * Test fixture: a small routed network of Linux network namespaces, made and
 * torn down by the test itself (docs/faults.md "Network partition"). Nothing
 * touches the root namespace: every address, route and rule lives in the
 * namespaces this module creates, named `esnet<pid>-…` so parallel runs never
 * collide and leftovers of a killed run can be recognised and swept.
 *
 *     host h1 (10.71.1.2) ─┐                 ┌─ db (10.71.9.2)
 *                          ├── router "net" ─┤
 *     host h2 (10.71.2.2) ─┘                 │
 *
 * Each host and the db have one veth to the router namespace and a default
 * route through it; the router forwards. Why a router and not a bridge: a
 * partition is then a pair of policy-routing rules in the router — packets
 * from the host's link, and packets to its subnet, go to a `blackhole` — so
 * the host keeps its link and its neighbour (no carrier loss, no ARP failure,
 * no ICMP, no RST): its packets simply vanish, as behind a failed switch or a
 * security group that drops. That is the hard case for a client (it must time
 * out by itself); a link taken down answers at once (ENETUNREACH/EHOSTUNREACH),
 * which is the easy case a stopped server also covers.
 *
 * Why not tc/netem or iptables: the CI kernel and image have neither
 * (no sch_netem, no cls_matchall, no iptables/nft binaries); `ip rule` and
 * `ip route` are always there.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { isAlive } from '../e2e/dev-stack.js';

const run = promisify(execFile);

export class NetnsError extends Error {
  override readonly name = 'NetnsError';
}

/** Root and the `ip` tool: what making namespaces needs (CI runs as root). */
export const NETNS_AVAILABLE = process.platform === 'linux' && process.getuid?.() === 0 && ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].some((p) => existsSync(p));

export interface NetHost {
  /** h1, h2, …, or db. */
  readonly name: string;
  /** The network namespace (run a process in it with `ip netns exec`). */
  readonly netns: string;
  /** Its address on its link (a /24 of its own). */
  readonly address: string;
  /** Its link's subnet (CIDR). */
  readonly subnet: string;
}

export interface PartitionNet {
  readonly hosts: readonly NetHost[];
  readonly db: NetHost;
  /** Every address the hosts may come from (for pg_hba). */
  readonly hostsCidr: string;
  /** Drops every packet between `host` and the rest of the network, silently, in both directions. */
  blackhole(host: NetHost): Promise<void>;
  /** Undoes `blackhole`. */
  heal(host: NetHost): Promise<void>;
  /** Deletes every namespace (and with them their links, addresses and rules). Never throws. */
  destroy(): Promise<void>;
}

const PREFIX = 'esnet';

async function ip(args: string[]): Promise<string> {
  try {
    return (await run('ip', args)).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new NetnsError(`ip ${args.join(' ')} failed: ${(err.stderr ?? err.message).trim()}`, { cause: e });
  }
}

/** Namespaces a killed earlier run left behind (its pid is gone): deleted, so names and memory do not pile up. */
async function sweepStale(): Promise<void> {
  const list = await ip(['netns', 'list']).catch(() => '');
  for (const line of list.split('\n')) {
    const m = new RegExp(`^(${PREFIX}(\\d+)-\\S+)`).exec(line.trim());
    if (m && Number(m[2]) !== process.pid && !isAlive(Number(m[2]))) await ip(['netns', 'del', m[1]!]).catch(() => undefined);
  }
}

/** Makes namespaces for `hostCount` hosts (h1 … hN, N ≤ 8), a db host and the router between them. */
export async function createPartitionNet(hostCount: number): Promise<PartitionNet> {
  if (!NETNS_AVAILABLE) throw new NetnsError('network namespaces need root and the ip tool (iproute2)');
  if (!Number.isInteger(hostCount) || hostCount < 1 || hostCount > 8) throw new NetnsError(`hostCount must be 1..8, got ${hostCount}`);
  await sweepStale();
  const tag = `${PREFIX}${process.pid}`;
  const router = `${tag}-net`;
  const made: string[] = [];
  const host = (name: string, octet: number): NetHost => ({ name, netns: `${tag}-${name}`, address: `10.71.${octet}.2`, subnet: `10.71.${octet}.0/24` });
  const hosts = Array.from({ length: hostCount }, (_, i) => host(`h${i + 1}`, i + 1));
  const db = host('db', 9);
  // Interface names are ≤ 15 bytes: esnet + pid (≤ 7 digits) + 2.
  const hostIf = (h: NetHost) => `${tag}${h.name === 'db' ? 'd' : h.name}`.slice(0, 15);
  const routerIf = (h: NetHost) => `${tag}r${h.name === 'db' ? 'd' : h.name.slice(1)}`.slice(0, 15);
  const gateway = (h: NetHost) => h.address.replace(/\.2$/, '.1');
  const pref = (h: NetHost) => 1000 + Number(h.address.split('.')[2]) * 2;

  const destroy = async () => {
    for (const ns of made.reverse()) await ip(['netns', 'del', ns]).catch(() => undefined);
    made.length = 0;
  };
  try {
    for (const ns of [router, ...[...hosts, db].map((h) => h.netns)]) {
      await ip(['netns', 'add', ns]);
      made.push(ns);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // Forwarding is per namespace: on in the router only.
    await ip(['netns', 'exec', router, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
    for (const h of [...hosts, db]) {
      await ip(['link', 'add', hostIf(h), 'netns', h.netns, 'type', 'veth', 'peer', 'name', routerIf(h), 'netns', router]);
      await ip(['-n', h.netns, 'addr', 'add', `${h.address}/24`, 'dev', hostIf(h)]);
      await ip(['-n', h.netns, 'link', 'set', hostIf(h), 'up']);
      await ip(['-n', router, 'addr', 'add', `${gateway(h)}/24`, 'dev', routerIf(h)]);
      await ip(['-n', router, 'link', 'set', routerIf(h), 'up']);
      await ip(['-n', h.netns, 'route', 'add', 'default', 'via', gateway(h)]);
    }
  } catch (e) {
    await destroy();
    throw e;
  }
  return {
    hosts,
    db,
    hostsCidr: '10.71.0.0/20',
    async blackhole(h) {
      // Before the main table: from its link (its packets, to anyone) and to its subnet (anyone's packets, to it).
      await ip(['-n', router, 'rule', 'add', 'iif', routerIf(h), 'pref', String(pref(h)), 'blackhole']);
      await ip(['-n', router, 'rule', 'add', 'to', h.subnet, 'pref', String(pref(h) + 1), 'blackhole']);
    },
    async heal(h) {
      await ip(['-n', router, 'rule', 'del', 'pref', String(pref(h))]);
      await ip(['-n', router, 'rule', 'del', 'pref', String(pref(h) + 1)]);
    },
    destroy,
  };
}
