/** Long-running commands resolve only when SIGINT/SIGTERM asks them to stop, after a clean shutdown. */
export function untilSignal(stop: () => Promise<void>, log: (s: string) => void): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      log(`${sig}: shutting down`);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      stop().then(
        () => resolve(0),
        (e: unknown) => {
          log(`shutdown error: ${(e as Error)?.message ?? String(e)}`);
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
