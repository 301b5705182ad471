/**
 * The shape every subcommand has, and the two pieces of plumbing around it:
 * `guard` maps errors to exit statuses, `group` dispatches `<group> <sub>`.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SignerError } from '../common/errors.js';
import { CliInputError, EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UsageError, formatFailure } from './errors.js';
import type { Io } from './io.js';

export type CommandFn = (argv: string[], io: Io) => Promise<number>;

export interface Command {
  name: string;
  summary: string;
  run: CommandFn;
  /** Shown in help as "(planned)" when its module is not in this build. */
  available?: () => boolean;
}

/**
 * Runs a command body and turns what it throws into an exit status:
 * UsageError → usage on stderr, 2; CliInputError → its message, 2;
 * other SignerError → the reason, 1; anything else → internal error, 70.
 * Bodies that print their own failure (for --json) return 1 themselves.
 */
export async function guard(usage: string, io: Io, title: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`error: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ''}\n${usage}`);
      return EXIT_USAGE;
    }
    if (e instanceof CliInputError) {
      io.stderr(`error: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ''}`);
      return EXIT_USAGE;
    }
    if (e instanceof SignerError) {
      io.stderr(formatFailure(title, e));
      return EXIT_FAILED;
    }
    io.stderr(`internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    return EXIT_INTERNAL;
  }
}

/** `<name> <sub> …`: dispatches to a subcommand; help lists them. */
export function group(name: string, summary: string, subs: readonly Command[]): Command {
  const usage = (): string => {
    const width = Math.max(...subs.map((s) => s.name.length));
    const lines = subs.map((s) => `  ${s.name.padEnd(width)}  ${s.summary}${s.available && !s.available() ? '  (planned: not in this build)' : ''}`);
    return `Usage: enclave-signer ${name} <command> [options]\n\n${summary}\n\nCommands:\n${lines.join('\n')}\n\nRun 'enclave-signer ${name} <command> --help' for details.\n`;
  };
  return {
    name,
    summary,
    available: () => subs.some((s) => !s.available || s.available()),
    run: async (argv, io) => {
      const [first, ...rest] = argv;
      if (first === undefined) {
        io.stderr(`error: missing command\n\n${usage()}`);
        return EXIT_USAGE;
      }
      if (first === '--help' || first === '-h' || first === 'help') {
        io.stdout(usage());
        return EXIT_OK;
      }
      const sub = subs.find((s) => s.name === first);
      if (!sub) {
        io.stderr(`error: unknown command '${name} ${first}'\n\n${usage()}`);
        return EXIT_USAGE;
      }
      return sub.run(rest, io);
    },
  };
}

/** The sibling module's file: compiled .js in dist/, or the .ts source when tests run from source. */
function moduleFile(spec: string): URL | undefined {
  const js = new URL(spec, import.meta.url);
  if (existsSync(fileURLToPath(js))) return js;
  const ts = new URL(spec.replace(/\.js$/, '.ts'), import.meta.url);
  return existsSync(fileURLToPath(ts)) ? ts : undefined;
}

export function moduleAvailable(spec: string): boolean {
  return moduleFile(spec) !== undefined;
}

/**
 * A command another module provides, loaded on first use (keeps startup fast
 * and the AWS SDK out of `attest verify`). Convention: `cli/<module>.ts`
 * exports `<exportName>(argv, io): Promise<number>`. When the module is not
 * in this build the command says so and exits 2.
 */
export function lazyCommand(name: string, summary: string, spec: string, exportName: string, label = name): Command {
  return {
    name,
    summary,
    available: () => moduleAvailable(spec),
    run: async (argv, io) => {
      const file = moduleFile(spec);
      if (!file) {
        io.stderr(`error: 'enclave-signer ${label}' is not available yet in this build (planned)\n`);
        return EXIT_USAGE;
      }
      // A variable specifier: TypeScript must not require the module at compile time.
      const mod = (await import(file.href)) as Record<string, unknown>;
      const fn = mod[exportName];
      if (typeof fn !== 'function') {
        io.stderr(`internal error: module ${spec} does not export ${exportName}()\n`);
        return EXIT_INTERNAL;
      }
      const code = await (fn as CommandFn)(argv, io);
      return typeof code === 'number' && Number.isInteger(code) ? code : EXIT_INTERNAL;
    },
  };
}
