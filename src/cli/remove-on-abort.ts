/**
 * A temporary output file removed the moment a get is cancelled, shared by
 * ./output.ts and ./progressive-copy.ts (which create the same file).
 */
import { unlinkSync } from 'node:fs';

/**
 * Removes the temporary file `tmp` the moment `signal` aborts, synchronously,
 * not after the copy under way: a second Ctrl-C ends the process with nothing
 * left behind. Returns the function that stops watching.
 */
export function removeOnAbort(tmp: string, signal: AbortSignal): () => void {
  const onAbort = (): void => {
    try {
      unlinkSync(tmp);
    } catch {
      // not created yet, or renamed
    }
  };
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
