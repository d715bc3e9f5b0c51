/**
 * How `shoal get` has tasks downloaded: through the local daemon's API, or,
 * when none runs, by a daemon in this process (./embedded.ts, started once,
 * for every task of a `get --recursive`). Either way: the path of the
 * verified content in the cache, and the task's stats.
 */
import { ShoalError, fromJSON } from '../common/errors.js';
import type { ApiDownloadRequest } from '../daemon/api/requests.js';
import type { TaskStatsJson } from '../daemon/download/task-stats.js';
import { endpointAlive, requestDownload } from './daemon-client.js';
import { defaultEndpoint } from './defaults.js';
import type { CliIo } from './io.js';
import { checkPieces, type PiecesNotice } from './progressive-copy.js';

export type OnProgress = (done: number, total: number | undefined) => void;

/** Pieces stored and verified in the task's content file as it downloads (./progressive-copy.ts). */
export type OnPieces = (notice: PiecesNotice) => void;

export interface Fetched {
  readonly path: string;
  readonly stats: TaskStatsJson | undefined;
  /** The generation of the content's pieces (PartialContent), when told. */
  readonly generation?: number | undefined;
}

export interface Fetcher {
  /** `onPieces`: asks for the pieces as they are stored, and hears of them there. */
  fetch(request: ApiDownloadRequest, onProgress: OnProgress, onPieces?: OnPieces): Promise<Fetched>;
  close(): Promise<void>;
}

/** Starts a daemon in this process (./embedded.ts): passed in, so that a get which needs none does not load it. */
export type StartEmbedded = (io: CliIo) => Promise<Fetcher>;

/**
 * A daemon answering at `endpoint` (default: the standard socket), else,
 * unless one was named, an in-process one started by `embedded` (without it:
 * DAEMON_UNREACHABLE).
 */
export async function openFetcher(io: CliIo, endpoint: string | undefined, embedded: StartEmbedded | undefined): Promise<Fetcher> {
  const target = endpoint ?? defaultEndpoint(io.env);
  if (await endpointAlive(target)) {
    return { fetch: (request, onProgress, onPieces) => viaDaemon(target, request, io.signal, onProgress, onPieces), close: async () => undefined };
  }
  if (endpoint !== undefined || embedded === undefined) throw new ShoalError('DAEMON_UNREACHABLE', `no daemon answers at ${target}`);
  return embedded(io);
}

export async function viaDaemon(endpoint: string, request: ApiDownloadRequest, signal: AbortSignal, onProgress: OnProgress, onPieces?: OnPieces): Promise<Fetched> {
  const asked = onPieces === undefined ? request : { ...request, pieces: true };
  for await (const event of requestDownload(endpoint, asked, signal)) {
    if (event.event === 'progress' && event.stats !== undefined) {
      onProgress(event.stats.completedBytes, event.stats.contentLength);
    } else if (event.event === 'pieces') {
      const notice = checkPieces(event as unknown as Record<string, unknown>);
      if (notice !== undefined) onPieces?.(notice);
    } else if (event.event === 'done' && typeof event.path === 'string') {
      return { path: event.path, stats: event.stats, generation: Number.isSafeInteger(event.generation) ? event.generation : undefined };
    } else if (event.event === 'error') {
      throw fromJSON(event.error ?? {});
    }
  }
  if (signal.aborted) throw new ShoalError('ABORTED', 'cancelled');
  throw new ShoalError('DAEMON_UNREACHABLE', 'the daemon closed the connection before the download finished');
}
