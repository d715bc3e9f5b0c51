/**
 * A service (`shoal daemon`, `shoal scheduler`) returns once it has stopped
 * and released everything it started. Something still holding the event loop
 * then is a leak: it must not keep the process running for ever, as a stopped
 * daemon once did (issue 15). Name what it was, and exit. The timer itself
 * holds nothing. (Other commands may still be flushing their output: not
 * them.) Called by the executables (bin/shoal.mjs, the single binary's
 * ./sea-main.ts) once runCli has returned.
 */
const LEAK_GRACE_MS = 3000;
/** The commands that serve until stopped. */
export const SERVICES: ReadonlySet<string> = new Set(['daemon', 'scheduler']);

export function exitIfStillHeld(argv: readonly string[]): void {
  if (!SERVICES.has(argv[0] ?? '')) return;
  setTimeout(() => {
    const held = process.getActiveResourcesInfo().join(', ');
    process.stderr.write(`shoal: still running ${LEAK_GRACE_MS / 1000} s after the command finished (held by: ${held}); exiting\n`);
    process.exit();
  }, LEAK_GRACE_MS).unref();
}
