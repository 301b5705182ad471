/**
 * Where the CLI reads and writes. Injectable so tests run main() in-process
 * and capture output; the real binary uses processIo().
 */
import { open, writeFile, unlink } from 'node:fs/promises';
import { CliInputError } from './errors.js';

export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** Reads all of standard input (only called for a `-` argument). */
  stdin?: () => Promise<Uint8Array>;
}

export function processIo(): Required<Io> {
  return {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    stdin: async () => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
      return new Uint8Array(Buffer.concat(chunks));
    },
  };
}

function describe(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return (e as Error)?.message ?? String(e);
}

/**
 * Reads a file the operator named, refusing more than `max` bytes (so a wrong
 * path to a disk image does not eat memory). `-` reads stdin when allowed.
 */
export async function readInputFile(path: string, what: string, max: number, io?: Io): Promise<Uint8Array> {
  if (path === '-') {
    if (!io?.stdin) throw new CliInputError(`cannot read ${what} from standard input here`);
    const b = await io.stdin();
    if (b.length > max) throw new CliInputError(`${what} on standard input is larger than ${max} bytes`);
    return b;
  }
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new CliInputError(`cannot read ${what} ${path}: ${describe(e)}`, { cause: e });
  }
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw new CliInputError(`cannot read ${what} ${path}: is a directory`);
    if (st.size > max) throw new CliInputError(`${what} ${path} is ${st.size} bytes, more than the ${max}-byte limit`);
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > max) throw new CliInputError(`${what} ${path} is larger than the ${max}-byte limit`);
    }
    return new Uint8Array(buf.subarray(0, n));
  } catch (e) {
    if (e instanceof CliInputError) throw e;
    throw new CliInputError(`cannot read ${what} ${path}: ${describe(e)}`, { cause: e });
  } finally {
    await fh.close();
  }
}

export async function readTextFile(path: string, what: string, max: number, io?: Io): Promise<string> {
  const b = await readInputFile(path, what, max, io);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch (e) {
    throw new CliInputError(`${what} ${path} is not UTF-8 text`, { cause: e });
  }
}

/**
 * Writes an output file. `exclusive` refuses to replace an existing file
 * (keys); `mode` applies on creation, which is why a forced overwrite unlinks first.
 */
export async function writeOutputFile(path: string, data: string | Uint8Array, opts: { mode?: number; exclusive?: boolean; force?: boolean; what: string }): Promise<void> {
  try {
    if (opts.force) await unlink(path).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
    await writeFile(path, data, { mode: opts.mode ?? 0o644, flag: opts.exclusive && !opts.force ? 'wx' : 'w' });
  } catch (e) {
    const exists = (e as NodeJS.ErrnoException)?.code === 'EEXIST';
    throw new CliInputError(`cannot write ${opts.what} ${path}: ${exists ? 'file exists' : describe(e)}`, {
      cause: e,
      ...(exists ? { hint: 'choose another --out, or pass --force to replace it' } : {}),
    });
  }
}
