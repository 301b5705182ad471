/**
 * `enclave-signer dev` (what `npm start` runs): the whole appliance locally on
 * embedded defaults, loudly marked DEV MODE. A rerun over the same data
 * directory serves the same keys.
 */
import { join } from 'node:path';
import { devBanner, repoRoot, startDevInfra, DEV_CREDENTIALS } from '../dev/stack.js';
import { startParent } from '../parent/main.js';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import type { Io } from './io.js';
import { untilSignal } from './run-until-signal.js';

export const DEV_USAGE = `Usage: enclave-signer dev [--data-dir DIR] [--socket PATH] [--http 127.0.0.1:PORT]

Runs the appliance locally in DEV MODE: the KMS emulator, the enclave (simulated
NSM, dev CA) and the parent with its signing socket. State lives in the data
directory (default .dev-data/ in the repository, git-ignored); a rerun serves
the same keys. Ctrl-C shuts everything down.

Options:
  --data-dir DIR   state directory (default <repo>/.dev-data)
  --socket PATH    signing socket (default <data-dir>/signer.sock)
  --http H:P       also serve JSON-RPC over loopback HTTP (127.0.0.1 or [::1] only)
  --deny-op OP     the enclave refuses this signing operation (repeatable; shows a policy denial)
  --json           print the endpoints as one JSON line once ready (for scripts)
  -h, --help       this help
`;

const SPEC = {
  'data-dir': { type: 'string' },
  socket: { type: 'string' },
  http: { type: 'string' },
  'deny-op': { type: 'string', multiple: true },
  json: { type: 'boolean' },
} as const;

export async function dev(argv: string[], io: Io): Promise<number> {
  return guard(DEV_USAGE, io, 'dev', async () => {
    const a = parseArgs(argv, SPEC);
    if (a.help) {
      io.stdout(DEV_USAGE);
      return 0;
    }
    const dataDir = a.flags['data-dir'] ?? join(repoRoot(), '.dev-data');
    const log = (l: string) => io.stderr(`[dev] ${l}\n`);
    const infra = await startDevInfra(dataDir, log, { denyOps: a.flags['deny-op'] });
    let parent;
    try {
      parent = await startParent({
        enclave: infra.enclave.uri,
        socket: a.flags.socket ?? join(infra.paths.dataDir, 'signer.sock'),
        ...(a.flags.http ? { http: a.flags.http } : {}),
        keystore: infra.paths.keystore,
        root: infra.ca.trustRoot, // the dev CA, trusted here only because dev mode says so
        manifest: { signed: infra.manifest, trustedKeys: [infra.releasePublicPem] },
        kmsKeyId: infra.cmkArn,
        credentials: { kind: 'static', ...DEV_CREDENTIALS },
        log: (l) => io.stderr(`[parent] ${l}\n`),
      });
    } catch (e) {
      await infra.close();
      throw e;
    }
    io.stderr(
      devBanner({
        socketPath: parent.socketPath,
        ...(parent.httpUrl ? { httpUrl: parent.httpUrl } : {}),
        pcrs: infra.pcrs,
        dataDir: infra.paths.dataDir,
        kmsUrl: infra.kms.url,
        manifest: infra.paths.manifest,
      }) + '\n',
    );
    if (a.flags.json) {
      io.stdout(JSON.stringify({ socket: parent.socketPath, http: parent.httpUrl ?? null, dataDir: infra.paths.dataDir, enclavePid: infra.enclave.pid ?? null }) + '\n');
    }
    return untilSignal(async () => {
      await parent.close();
      await infra.close();
    }, log);
  });
}
