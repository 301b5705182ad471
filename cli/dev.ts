/**
 * `enclave-signer dev` (what `npm start` runs): the whole appliance locally on
 * embedded defaults, loudly marked DEV MODE. A rerun over the same data
 * directory serves the same keys. The program is dev/appliance.ts
 * (`startDevAppliance`); this file is its command line.
 */
import { startDevAppliance, type DevApplianceConfig } from '../dev/appliance.js';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadPolicyFile } from '../enclave/policy/load.js';
import { parseArgs } from './args.js';
import { CliInputError, UsageError } from './errors.js';
import { guard } from './command.js';
import type { Io } from './io.js';
import { untilSignal } from './run-until-signal.js';
import { chainIdFlag } from './values.js';

export const DEV_USAGE = `Usage: enclave-signer dev [--data-dir DIR] [--socket PATH] [--http 127.0.0.1:PORT] [--chain-id N]
                          [--instances N --keystore postgres://…]

Runs the appliance locally in DEV MODE: the KMS emulator, the enclave (simulated
NSM, dev CA) and the parent with its signing socket. State lives in the data
directory (default .dev-data/ in the repository, git-ignored); a rerun serves
the same keys. Ctrl-C shuts everything down.

Options:
  --data-dir DIR   state directory (default <repo>/.dev-data)
  --socket PATH    signing socket (default <data-dir>/signer.sock)
  --http H:P       also serve JSON-RPC over loopback HTTP (127.0.0.1 or [::1] only)
  --chain-id N     serve chain N: eth_chainId/net_version answer it, other chainIds are refused
  --policy FILE    the enclave's signing policy (docs/policy.md); an invalid file means dev refuses
                   to start, with the reason. Without it: the permissive dev policy (said in the banner)
  --downstream URL proxy mode: forward read methods to this Ethereum node, and serve
                   eth_sendTransaction (fill from the node, sign in the enclave, broadcast);
                   without --chain-id the node's chain id is served, with it they must match
  --deny-op OP     the enclave refuses this signing operation (repeatable; shows a policy denial)
  --keystore SPEC  the keystore: default <data-dir>/keystore.sqlite; postgres://USER@HOST/DB for
                   one shared by several instances (docs/keystore.md)
  --instances N    run N instances (1..16), each its own parent and enclave process, sharing the
                   KMS emulator, the dev CA and the keystore (needs --keystore postgres://…);
                   instance i's socket is <socket>.<i> (docs/scale-out.md)
  --enclave-node PATH
                   run the enclave process on this node binary (default: the one running dev),
                   e.g. the pinned Node 22 the image ships (build/runtime; docs/performance.md)
  --enclave-allocator PATH
                   the enclave process preloads this malloc library (LD_PRELOAD), as the image
                   preloads tcmalloc (docs/enclave.md, "The allocator"); dev checks it is mapped
  --json           print the endpoints as one JSON line once ready (for scripts)
  -h, --help       this help
`;

const SPEC = {
  'data-dir': { type: 'string' },
  socket: { type: 'string' },
  http: { type: 'string' },
  'deny-op': { type: 'string', multiple: true },
  policy: { type: 'string' },
  json: { type: 'boolean' },
  'chain-id': { type: 'string' },
  downstream: { type: 'string' },
  keystore: { type: 'string' },
  instances: { type: 'string' },
  'enclave-node': { type: 'string' },
  'enclave-allocator': { type: 'string' },
} as const;

export async function dev(argv: string[], io: Io): Promise<number> {
  return guard(DEV_USAGE, io, 'dev', async () => {
    const a = parseArgs(argv, SPEC);
    if (a.help) {
      io.stdout(DEV_USAGE);
      return 0;
    }
    const log = (l: string) => io.stderr(`[dev] ${l}\n`);
    const config: DevApplianceConfig = { denyOps: a.flags['deny-op'], log, parentLog: (l) => io.stderr(`[parent] ${l}\n`) };
    if (a.flags['data-dir'] !== undefined) config.dataDir = a.flags['data-dir'];
    if (a.flags.socket !== undefined) config.socket = a.flags.socket;
    if (a.flags.http) config.http = a.flags.http;
    const chainId = chainIdFlag(a.flags['chain-id']);
    if (chainId !== undefined) config.chainId = chainId;
    if (a.flags.policy !== undefined) {
      // Checked here first, so an invalid policy stops dev before anything starts.
      try {
        loadPolicyFile(a.flags.policy);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      config.policy = resolve(a.flags.policy);
    }
    if (a.flags.downstream !== undefined) config.downstream = a.flags.downstream;
    if (a.flags['enclave-node'] !== undefined) {
      const node = resolve(a.flags['enclave-node']);
      if (!existsSync(node)) throw new UsageError(`--enclave-node: no such file: ${node}`);
      config.enclaveNode = node;
    }
    if (a.flags['enclave-allocator'] !== undefined) {
      const lib = resolve(a.flags['enclave-allocator']);
      if (!existsSync(lib)) throw new UsageError(`--enclave-allocator: no such file: ${lib}`);
      config.enclaveAllocator = lib;
    }
    if (a.flags.keystore !== undefined) config.keystore = /^postgres(ql)?:\/\//i.test(a.flags.keystore) ? a.flags.keystore : resolve(a.flags.keystore.replace(/^sqlite:/, ''));
    if (a.flags.instances !== undefined) {
      const n = a.flags.instances;
      if (!/^\d{1,2}$/.test(n) || Number(n) < 1 || Number(n) > 16) throw new UsageError(`--instances must be a number 1..16, got ${JSON.stringify(n)}`);
      config.instances = Number(n);
      if (config.instances > 1 && !/^postgres(ql)?:\/\//i.test(config.keystore ?? '')) {
        throw new UsageError('--instances N needs a keystore the instances share: --keystore postgres://…');
      }
    }
    const running = await startDevAppliance(config);
    if (config.enclaveAllocator !== undefined) {
      // ld.so only warns when a preload fails: refuse to run on another malloc than the one asked for.
      const missing = running.enclavePids.filter((pid) => pid === undefined || !mapsLibrary(pid, config.enclaveAllocator!));
      if (missing.length > 0) {
        await running.close();
        throw new CliInputError(`--enclave-allocator: ${config.enclaveAllocator} is not loaded in the enclave process`, {
          hint: 'ld.so ignores a preload it cannot load (see its message above): name a shared library for this machine, e.g. the pinned libtcmalloc_minimal.so.4 in .cache/image-allocator/',
        });
      }
      log(`enclave malloc: ${config.enclaveAllocator} (preloaded)`);
    }
    io.stderr(running.banner + '\n');
    if (a.flags.json) {
      io.stdout(
        JSON.stringify({
          socket: running.socketPath,
          sockets: running.sockets,
          http: running.httpUrl ?? null,
          dataDir: running.dataDir,
          enclavePid: running.enclavePid ?? null,
          enclavePids: running.enclavePids.map((p) => p ?? null),
          parentPids: running.parentPids.map((p) => p ?? null),
        }) + '\n',
      );
    }
    return untilSignal(() => running.close(), log);
  });
}

/** Whether process `pid` has `lib` mapped (Linux /proc; false when the process is gone). */
function mapsLibrary(pid: number, lib: string): boolean {
  try {
    const real = realpathSync(lib);
    return readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').some((l) => l.endsWith(` ${real}`) || l.endsWith(` ${lib}`));
  } catch {
    return false;
  }
}
