/**
 * A stand-in for an Ethereum node on loopback HTTP, enough for viem's and
 * ethers' sendTransaction to fill a transaction (chain id, nonce, gas, fees)
 * and broadcast it. It mines nothing: eth_sendRawTransaction records the raw
 * transaction and answers its hash. Adapter tests use it until a real EVM
 * (hardhat's EDR, issue 12 §2) is available to the test suite.
 */
import { createServer, type Server } from 'node:http';
import { keccak256 } from 'viem';

export interface FakeNode {
  url: string;
  /** Raw transactions received by eth_sendRawTransaction, in order. */
  sent: `0x${string}`[];
  close(): Promise<void>;
}

export async function startFakeNode(chainId: number): Promise<FakeNode> {
  const sent: `0x${string}`[] = [];
  const block = { number: '0x10', hash: `0x${'11'.repeat(32)}`, parentHash: `0x${'00'.repeat(32)}`, timestamp: '0x6553f100', baseFeePerGas: '0x3b9aca00', gasLimit: '0x1c9c380', gasUsed: '0x0', transactions: [], miner: `0x${'00'.repeat(20)}`, difficulty: '0x0', extraData: '0x', nonce: '0x0000000000000000' };
  const answers: Record<string, (params: unknown[]) => unknown> = {
    eth_chainId: () => `0x${chainId.toString(16)}`,
    net_version: () => String(chainId),
    eth_blockNumber: () => block.number,
    eth_getBlockByNumber: () => block,
    eth_getTransactionCount: () => `0x${sent.length.toString(16)}`,
    eth_estimateGas: () => '0x5208',
    eth_gasPrice: () => '0x77359400',
    eth_maxPriorityFeePerGas: () => '0x3b9aca00',
    eth_getCode: () => '0x',
    eth_sendRawTransaction: (p) => {
      const raw = p[0] as `0x${string}`;
      sent.push(raw);
      return keccak256(raw);
    },
    eth_getTransactionByHash: () => null,
  };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => {
      const one = (r: { id: unknown; method: string; params?: unknown[] }) => {
        const f = answers[r.method];
        return f ? { jsonrpc: '2.0', id: r.id, result: f(r.params ?? []) } : { jsonrpc: '2.0', id: r.id, error: { code: -32601, message: `fake node: no ${r.method}` } };
      };
      const msg = JSON.parse(body);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(Array.isArray(msg) ? msg.map(one) : one(msg)));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, sent, close: () => new Promise((r) => server.close(() => r())) };
}
