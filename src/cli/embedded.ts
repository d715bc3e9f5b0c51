/**
 * `shoal get` with no daemon running: one in this process, with its own
 * scheduler, for as long as the get (./fetcher.ts). Loaded only then: a get
 * through a running daemon never evaluates the daemon's modules.
 */
import { ShoalError, toShoalError } from '../common/errors.js';
import { setLongTimeout } from '../common/timers.js';
import { pieceEvents } from '../daemon/api/piece-events.js';
import { defaultDataDir } from './defaults.js';
import type { Fetcher } from './fetcher.js';
import type { CliIo } from './io.js';

/** No daemon running: one in this process, with its own scheduler, until close(). */
export async function embedded(io: CliIo): Promise<Fetcher> {
  // Loaded only here: a get through a running daemon never evaluates the daemon's modules.
  const { createDaemon } = await import('../daemon/daemon.js');
  const daemon = createDaemon({ data: defaultDataDir(io.env), listen: '127.0.0.1:0' }, { env: io.env });
  await daemon.start();
  return {
    async fetch(request, onProgress, onPieces) {
      const abort = new AbortController();
      const onCancel = (): void => abort.abort(new ShoalError('ABORTED', 'cancelled'));
      io.signal.addEventListener('abort', onCancel, { once: true });
      const timer =
        request.timeoutMs !== undefined && request.timeoutMs > 0
          ? setLongTimeout(() => abort.abort(new ShoalError('TIMEOUT', `download did not finish within ${request.timeoutMs} ms`)), request.timeoutMs)
          : undefined;
      try {
        const handle = daemon.download(request, abort.signal);
        const off = handle.onProgress((s) => onProgress(s.completedBytes, s.contentLength));
        // The same events as through the API, without the socket.
        const offPieces = onPieces === undefined ? () => undefined : pieceEvents(handle, onPieces);
        try {
          const task = await handle.done;
          return { path: task.path, stats: handle.stats.toJSON(), generation: task.generation };
        } finally {
          off();
          offPieces();
        }
      } catch (err) {
        throw toShoalError(err);
      } finally {
        timer?.clear();
        io.signal.removeEventListener('abort', onCancel);
      }
    },
    close: () => daemon.stop(),
  };
}
