/** Process facts from Linux /proc, for the benchmarks, the soak and the tests that start the dev stack. */
import { readdirSync, readFileSync } from 'node:fs';

/** Child pids of `pid` (from /proc), with their command lines. */
export function childProcesses(pid: number): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // Field 4 (ppid) follows the parenthesised command name, which may contain spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push({ pid: Number(d), cmdline: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ') });
    } catch {
      // the process went away meanwhile
    }
  }
  return out;
}
