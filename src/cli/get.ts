/**
 * `shoal get URL -O FILE`: wget/curl/dfget-like. Asks the local daemon for
 * the task (or runs one in-process when none is running), then copies (or
 * reflinks) the verified content to FILE (./output.ts).
 */
import { ShoalError, fromJSON, toShoalError } from '../common/errors.js';
import { parseDigest, parseSourceUrl } from '../common/ids.js';
import { setLongTimeout } from '../common/timers.js';
import { parseDuration, parseSize } from '../common/units.js';
import type { ApiDownloadRequest } from '../daemon/api/requests.js';
import type { TaskStatsJson } from '../daemon/download/task-stats.js';
import { checkDownloadRequest } from '../daemon/request-check.js';
import { endpointAlive, requestDownload } from './daemon-client.js';
import { defaultDataDir, defaultEndpoint } from './defaults.js';
import type { CliIo } from './io.js';
import { checkOutputPath, placeOutput } from './output.js';
import { createProgress } from './progress.js';
import { withS3Options } from './s3-options.js';

export interface GetOptions {
  output: string;
  header: string[];
  digest?: string;
  timeout?: string;
  tag?: string;
  application?: string;
  filter: string[];
  endpoint?: string;
  pieceLength?: string;
  quiet: boolean;
  progress: boolean;
  /** s3:// only (./s3-options.ts). */
  endpointUrl?: string;
  region?: string;
  addressingStyle?: string;
}

export function parseHeader(raw: string): [string, string] {
  const colon = raw.indexOf(':');
  if (colon <= 0) throw new ShoalError('USAGE', `header ${JSON.stringify(raw.slice(0, 100))} is not "Name: value"`);
  return [raw.slice(0, colon).trim(), raw.slice(colon + 1).trim()];
}

export function buildRequest(given: string, options: GetOptions, env: NodeJS.ProcessEnv = {}): ApiDownloadRequest {
  const url = withS3Options(given, options, env);
  parseSourceUrl(url);
  if (options.digest !== undefined) parseDigest(options.digest);
  const request: ApiDownloadRequest = {
    url,
    headers: options.header.map(parseHeader),
    digest: options.digest,
    tag: options.tag,
    application: options.application,
    filteredQueryParams: options.filter.flatMap((f) => f.split('&')).filter((f) => f !== ''),
  };
  if (options.pieceLength !== undefined) {
    try {
      request.pieceSize = parseSize(options.pieceLength);
    } catch (err) {
      throw new ShoalError('USAGE', `--piece-length: ${(err as Error).message}`);
    }
  }
  if (options.timeout !== undefined) {
    try {
      request.timeoutMs = parseDuration(options.timeout);
    } catch (err) {
      throw new ShoalError('USAGE', `--timeout: ${(err as Error).message}`);
    }
  }
  checkDownloadRequest(request); // every check the daemon makes, before anything starts
  return request;
}

export async function runGet(url: string, options: GetOptions, io: CliIo): Promise<number> {
  const request = buildRequest(url, options, io.env);
  const output = await checkOutputPath(options.output);
  const endpoint = options.endpoint ?? defaultEndpoint(io.env);
  const progress = await createProgress(io.stderr, options.progress && !options.quiet);
  const say = (line: string): void => {
    if (!options.quiet) io.stderr.write(line + '\n');
  };
  try {
    let result: { path: string; stats: TaskStatsJson | undefined };
    if (await endpointAlive(endpoint)) {
      result = await viaDaemon(endpoint, { ...request, progress: progress.shown }, io.signal, progress.update);
    } else if (options.endpoint !== undefined) {
      throw new ShoalError('DAEMON_UNREACHABLE', `no daemon answers at ${endpoint}`);
    } else {
      result = await embedded(request, io, progress.update);
    }
    progress.stop();
    const how = await placeOutput(result.path, output, io.stdout, io.signal);
    const bytes = result.stats?.bytes;
    if (bytes !== undefined && output !== '-') {
      say(`saved ${output} (${how}; from cache ${bytes.cache} B, peers ${bytes.peers} B, seeds ${bytes.seeds} B, origin ${bytes.source} B)`);
    }
    return 0;
  } finally {
    progress.stop();
  }
}

async function viaDaemon(
  endpoint: string,
  request: ApiDownloadRequest,
  signal: AbortSignal,
  onProgress: (done: number, total: number | undefined) => void,
): Promise<{ path: string; stats: TaskStatsJson | undefined }> {
  for await (const event of requestDownload(endpoint, request, signal)) {
    if (event.event === 'progress' && event.stats !== undefined) {
      onProgress(event.stats.completedBytes, event.stats.contentLength);
    } else if (event.event === 'done' && typeof event.path === 'string') {
      return { path: event.path, stats: event.stats };
    } else if (event.event === 'error') {
      throw fromJSON(event.error ?? {});
    }
  }
  if (signal.aborted) throw new ShoalError('ABORTED', 'cancelled');
  throw new ShoalError('DAEMON_UNREACHABLE', 'the daemon closed the connection before the download finished');
}

/** No daemon running: one in this process, with its own scheduler, for the length of the download. */
async function embedded(
  request: ApiDownloadRequest,
  io: CliIo,
  onProgress: (done: number, total: number | undefined) => void,
): Promise<{ path: string; stats: TaskStatsJson | undefined }> {
  // Loaded only here: a get through a running daemon never evaluates the daemon's modules.
  const { createDaemon } = await import('../daemon/daemon.js');
  const daemon = createDaemon({ data: defaultDataDir(io.env), listen: '127.0.0.1:0' }, { env: io.env });
  await daemon.start();
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
    try {
      const task = await handle.done;
      return { path: task.path, stats: handle.stats.toJSON() };
    } finally {
      off();
    }
  } catch (err) {
    throw toShoalError(err);
  } finally {
    timer?.clear();
    io.signal.removeEventListener('abort', onCancel);
    await daemon.stop();
  }
}
