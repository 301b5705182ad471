/**
 * Argument parsing for every subcommand: `node:util` parseArgs does the
 * tokenising (`--x value`, `--x=value`, boolean `--x`, `--` ends flags, a lone
 * `-` is a positional), and this module adds the checks it leaves out, each a
 * UsageError (exit 2 with the command's usage):
 *
 *   - an unknown option, never silently ignored: a typo in `--nonce` must not
 *     turn a freshness check into no check;
 *   - a flag given twice that is not `multiple` (parseArgs keeps the last one,
 *     so `--manifest a --manifest b` would quietly drop `a`);
 *   - a string flag with no value, or whose value looks like the next flag
 *     (`--name --json`), and a boolean flag given a value (`--json=true`);
 *   - the wrong number of positionals.
 *
 * `--help`/`-h` anywhere before `--` wins and nothing else is validated.
 * parseArgs runs non-strict with tokens so that these messages are ours and
 * name the flag as the user typed it.
 */
import { parseArgs as nodeParseArgs } from 'node:util';
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

function emptyFlags(spec: FlagSpecs): Record<string, boolean | string | string[] | undefined> {
  const flags: Record<string, boolean | string | string[] | undefined> = {};
  for (const [name, f] of Object.entries(spec)) flags[name] = f.type === 'boolean' ? false : f.multiple ? [] : undefined;
  return flags;
}

type OptionToken = { kind: 'option'; name: string; index: number; value?: string | undefined; inlineValue?: boolean | undefined };

/** One option token checked against the spec and stored; throws the UsageError for what is wrong with it. */
function takeOption(t: OptionToken, argv: readonly string[], spec: FlagSpecs, flags: Record<string, boolean | string | string[] | undefined>, seen: Set<string>): void {
  const long = argv[t.index]!.startsWith('--');
  const f = Object.hasOwn(spec, t.name) ? spec[t.name] : undefined;
  // Short flags (other than -h) are not part of any command; name the argument as typed (`-n`, `-abc`).
  if (!long || !f) throw new UsageError(`unknown option ${long ? `--${t.name}` : argv[t.index]}`);
  const name = t.name;
  if (f.type === 'boolean') {
    if (t.inlineValue) throw new UsageError(`--${name} takes no value`);
  } else if (t.value === undefined || (!t.inlineValue && t.value.startsWith('--') && t.value.length > 2)) {
    throw new UsageError(`--${name} needs a value`);
  }
  const multiple = f.type === 'string' && f.multiple === true;
  if (!multiple && seen.has(name)) throw new UsageError(`--${name} given twice`);
  seen.add(name);
  if (f.type === 'boolean') flags[name] = true;
  else if (multiple) (flags[name] as string[]).push(t.value!);
  else flags[name] = t.value;
}

function checkPositionals(positionals: readonly string[], opts: ParseOptions): void {
  const { min, max } = opts.positionals ?? { min: 0, max: 0 };
  if (positionals.length >= min && positionals.length <= max) return;
  const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
  const extra = positionals.length > max ? ` (unexpected: ${positionals.slice(max).join(' ')})` : '';
  throw new UsageError(`expected ${want} argument${min === 1 && max === 1 ? '' : 's'}, got ${positionals.length}${extra}`);
}

export function parseArgs<S extends FlagSpecs>(argv: readonly string[], spec: S, opts: ParseOptions = {}): ParsedArgs<S> {
  const flags = emptyFlags(spec);
  const dashdash = argv.indexOf('--');
  if (argv.slice(0, dashdash === -1 ? argv.length : dashdash).some(isHelp)) {
    return { help: true, flags: flags as Flags<S>, positionals: [] };
  }

  // Non-strict: parseArgs reports everything as tokens and the checks above are made here, in argument order.
  const options = Object.fromEntries(Object.entries(spec).map(([name, f]) => [name, { type: f.type, multiple: f.type === 'string' && f.multiple === true }]));
  const { tokens } = nodeParseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const positionals: string[] = [];
  const seen = new Set<string>();
  for (const t of tokens) {
    if (t.kind === 'positional') positionals.push(t.value);
    else if (t.kind === 'option') takeOption(t, argv, spec, flags, seen);
  }
  checkPositionals(positionals, opts);
  return { help: false, flags: flags as Flags<S>, positionals };
}
