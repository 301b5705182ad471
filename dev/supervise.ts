/**
 * A child process kept running, as systemd (a parent on its host) or Nitro (an enclave after a
 * crash) would: restarted with a growing delay when it dies, stopped with SIGTERM and then
 * SIGKILL. Its stderr lines go to `log`. Used for the dev enclave (stack.ts) and the dev
 * instances' parents (instances.ts).
 */
import type { ChildProcess } from 'node:child_process';

export interface Supervised {
  readonly pid: number | undefined;
  /** Kills the process (fault tests use it); the supervisor starts a new one. */
  kill(signal?: NodeJS.Signals): void;
  stop(): Promise<void>;
}

export interface SuperviseOptions {
  /** For the restart log line ("enclave exited …"). */
  name: string;
  /** Starts the process; its stderr must be a pipe. */
  spawn: () => ChildProcess;
  /** Each stderr line, already trimmed of empty lines. */
  line: (l: string) => void;
  log: (l: string) => void;
  /** How long stop() waits after SIGTERM before SIGKILL. */
  stopGraceMs: number;
}

export function superviseProcess(o: SuperviseOptions): Supervised {
  let child: ChildProcess | undefined;
  let stopping = false;
  let restarts = 0;
  const start = () => {
    child = o.spawn();
    child.stderr!.on('data', (b: Buffer) => {
      for (const line of b.toString('utf8').split('\n')) if (line.trim()) o.line(line);
    });
    child.once('exit', (code, sig) => {
      if (stopping) return;
      restarts++;
      const delay = Math.min(5000, 200 * restarts);
      o.log(`${o.name} exited (${sig ?? code}); restarting in ${delay} ms`);
      setTimeout(() => !stopping && start(), delay).unref();
    });
  };
  start();
  return {
    get pid() {
      return child?.pid;
    },
    kill(signal = 'SIGKILL') {
      child?.kill(signal);
    },
    stop() {
      stopping = true;
      return new Promise((res) => {
        if (!child || child.exitCode !== null || child.signalCode !== null) return res();
        child.once('exit', () => res());
        child.kill('SIGTERM');
        setTimeout(() => child?.kill('SIGKILL'), o.stopGraceMs).unref();
      });
    },
  };
}
