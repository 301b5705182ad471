/**
 * The hostile host in the middle of a client and the signing socket, for e2e tests: relays each
 * geth-style IPC line to the real socket after `edit` (the request) and `answer` (the reply), and
 * keeps every request as the client sent it.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { ipcExchange } from './dev-stack.js';

export type RelayedBody = Record<string, unknown> & { method?: string; signer_auth?: Record<string, unknown> };

export async function ipcRelay(
  target: string,
  path: string,
  edit: (req: RelayedBody) => void,
  answer: (req: RelayedBody, res: Record<string, unknown>) => void = () => {},
): Promise<{ server: Server; seen: RelayedBody[] }> {
  const seen: RelayedBody[] = [];
  const server = createServer((s: Socket) => {
    let buf = '';
    s.setEncoding('utf8').on('data', async (c: string) => {
      buf += c;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const req = JSON.parse(buf.slice(0, nl)) as RelayedBody;
        buf = buf.slice(nl + 1);
        seen.push(structuredClone(req));
        edit(req);
        const { answers } = await ipcExchange(target, `${JSON.stringify(req)}\n`, 1);
        const res = answers[0] as Record<string, unknown>;
        answer(req, res);
        s.write(`${JSON.stringify(res)}\n`);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { server, seen };
}
