// @ts-check
/**
 * The example's build step: compiles IssuerToken.sol with the `solc` npm
 * package (the official compiler as WebAssembly; no download, no native
 * toolchain) and caches the artifact in .cache/ (git-ignored), keyed by the
 * source's SHA-256 and the compiler version. `node build.mjs` prints the path.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const SOURCE = join(here, 'IssuerToken.sol');

/** @returns {{ abi: any[], bytecode: `0x${string}`, compiler: string, sourceSha256: string, path: string }} */
export function loadArtifact() {
  const solc = createRequire(import.meta.url)('solc');
  const source = readFileSync(SOURCE, 'utf8');
  const sourceSha256 = createHash('sha256').update(source).digest('hex');
  const compiler = solc.version();
  const path = join(here, '.cache', `IssuerToken-${sourceSha256.slice(0, 16)}-${compiler.replace(/[^\w.+-]/g, '_')}.json`);
  if (existsSync(path)) return { ...JSON.parse(readFileSync(path, 'utf8')), path };
  const input = {
    language: 'Solidity',
    sources: { 'IssuerToken.sol': { content: source } },
    settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: 'cancun', outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (out.errors ?? []).filter((/** @type {any} */ e) => e.severity === 'error');
  if (errors.length) throw new Error(`solc: ${errors.map((/** @type {any} */ e) => e.formattedMessage).join('\n')}`);
  const c = out.contracts['IssuerToken.sol'].IssuerToken;
  const artifact = { abi: c.abi, bytecode: /** @type {`0x${string}`} */ (`0x${c.evm.bytecode.object}`), compiler, sourceSha256 };
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, JSON.stringify(artifact));
  renameSync(`${path}.tmp`, path);
  return { ...artifact, path };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const a = loadArtifact();
  process.stdout.write(`${JSON.stringify({ artifact: a.path, compiler: a.compiler, bytecodeBytes: (a.bytecode.length - 2) / 2 })}\n`);
}
