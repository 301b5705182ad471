/**
 * Long-running commands resolve only when SIGINT/SIGTERM (or `signal`, for
 * tests) asks them to stop, after a clean shutdown: 0, or 1 when stopping failed.
 */
export function untilSignal(stop: () => Promise<void>, log: (s: string) => void, signal?: AbortSignal): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const onStop = (why: string) => {
      if (stopping) return;
      stopping = true;
      log(`${why}: shutting down`);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      signal?.removeEventListener('abort', onAbort);
      stop().then(
        () => resolve(0),
        (e: unknown) => {
          log(`shutdown error: ${(e as Error)?.message ?? String(e)}`);
          resolve(1);
        },
      );
    };
    // One handler per signal: the name comes from which one fired, not from an argument.
    const onInt = () => onStop('SIGINT');
    const onTerm = () => onStop('SIGTERM');
    const onAbort = () => onStop('stop requested');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
