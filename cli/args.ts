/**
 * A tiny argument parser shared by every subcommand: long flags only
 * (`--x value`, `--x=value`, boolean `--x`), `-h` as the one short alias (help),
 * `--` ends flags, a lone `-` is a positional (stdin). Anything it does not
 * know is a UsageError, never silently ignored: a typo in `--nonce` must not
 * turn a freshness check into no check.
 */
import { UsageError } from './errors.js';

export type FlagSpec = { type: 'boolean' } | { type: 'string'; multiple?: false } | { type: 'string'; multiple: true };
export type FlagSpecs = Record<string, FlagSpec>;

type FlagValue<F extends FlagSpec> = F extends { type: 'boolean' } ? boolean : F extends { multiple: true } ? string[] : string | undefined;
export type Flags<S extends FlagSpecs> = { [K in keyof S]: FlagValue<S[K]> };

export interface ParsedArgs<S extends FlagSpecs> {
  /** True when --help or -h appeared (before `--`); nothing else is validated then. */
  help: boolean;
  flags: Flags<S>;
  positionals: string[];
}

export interface ParseOptions {
  /** Allowed number of positional arguments (default exactly 0). */
  positionals?: { min: number; max: number };
}

function isHelp(a: string): boolean {
  return a === '--help' || a === '-h';
}

export function parseArgs<S extends FlagSpecs>(argv: readonly string[], spec: S, opts: ParseOptions = {}): ParsedArgs<S> {
  const flags: Record<string, boolean | string | string[] | undefined> = {};
  for (const [name, f] of Object.entries(spec)) flags[name] = f.type === 'boolean' ? false : f.type === 'string' && f.multiple ? [] : undefined;
  const positionals: string[] = [];

  const dashdash = argv.indexOf('--');
  if (argv.slice(0, dashdash === -1 ? argv.length : dashdash).some(isHelp)) {
    return { help: true, flags: flags as Flags<S>, positionals: [] };
  }

  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a === '-' || !a.startsWith('-')) {
      positionals.push(a);
      continue;
    }
    if (!a.startsWith('--')) throw new UsageError(`unknown option ${a}`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq === -1 ? undefined : eq);
    const f = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (!f) throw new UsageError(`unknown option --${name}`);
    if (f.type === 'boolean') {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      if (flags[name] === true) throw new UsageError(`--${name} given twice`);
      flags[name] = true;
      continue;
    }
    let value: string;
    if (eq !== -1) value = a.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new UsageError(`--${name} needs a value`);
      value = next;
      i++;
    }
    if (f.multiple) (flags[name] as string[]).push(value);
    else {
      if (flags[name] !== undefined) throw new UsageError(`--${name} given twice`);
      flags[name] = value;
    }
  }

  const { min, max } = opts.positionals ?? { min: 0, max: 0 };
  if (positionals.length < min || positionals.length > max) {
    const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
    const extra = positionals.length > max ? ` (unexpected: ${positionals.slice(max).join(' ')})` : '';
    throw new UsageError(`expected ${want} argument${min === 1 && max === 1 ? '' : 's'}, got ${positionals.length}${extra}`);
  }
  return { help: false, flags: flags as Flags<S>, positionals };
}
