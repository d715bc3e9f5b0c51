/**
 * `shoal get URL -O FILE`: wget/curl/dfget-like. Asks the local daemon for
 * the task (or runs one in-process when none is running), then copies (or
 * reflinks) the verified content to FILE (./output.ts).
 */
import { ShoalError } from '../common/errors.js';
import { parseDigest, parseSourceUrl } from '../common/ids.js';
import { parseDuration, parseSize } from '../common/units.js';
import type { ApiDownloadRequest } from '../daemon/api/requests.js';
import { checkDownloadRequest } from '../daemon/request-check.js';
import { openFetcher, type StartEmbedded } from './fetcher.js';
import type { CliIo } from './io.js';
import { checkOutputPath, placeOutput, tempPath } from './output.js';
import { ProgressiveCopy } from './progressive-copy.js';
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
  limitRate?: string;
  quiet: boolean;
  progress: boolean;
  /** false (`--no-direct-io`): the output copy goes through the page cache (./output.ts). */
  directIo?: boolean;
  /** s3:// only (./s3-options.ts). */
  endpointUrl?: string | undefined;
  region?: string | undefined;
  addressingStyle?: string | undefined;
}

export function parseHeader(raw: string): [string, string] {
  const colon = raw.indexOf(':');
  if (colon <= 0) throw new ShoalError('USAGE', `header ${JSON.stringify(raw.slice(0, 100))} is not "Name: value"`);
  return [raw.slice(0, colon).trim(), raw.slice(colon + 1).trim()];
}

/**
 * `--limit-rate` as curl and wget spell it: bytes per second, with an
 * optional k, M or G suffix (powers of 1024; case-insensitive; 1.5M works),
 * or any size Shoal takes (2MiB, 10MB). Zero means no limit. USAGE otherwise.
 */
export function parseLimitRate(value: string): number {
  let rate: number;
  try {
    rate = parseSize(value);
  } catch (err) {
    throw new ShoalError('USAGE', `--limit-rate: ${(err as Error).message.replace('e.g. 512MiB, 10GB', 'e.g. 500k, 2M, 1G')}`);
  }
  return rate;
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
  if (options.limitRate !== undefined) request.limitRate = parseLimitRate(options.limitRate);
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

/** `embedded`: how to start an in-process daemon when none runs (./fetcher.ts). */
export async function runGet(url: string, options: GetOptions, io: CliIo, embedded: StartEmbedded | undefined): Promise<number> {
  const request = buildRequest(url, options, io.env);
  const output = await checkOutputPath(options.output);
  const progress = await createProgress(io.stderr, options.progress && !options.quiet);
  const say = (line: string): void => {
    if (!options.quiet) io.stderr.write(line + '\n');
  };
  const fetcher = await openFetcher(io, options.endpoint, embedded);
  // The output is copied as pieces come, where it is a file written with O_DIRECT (./progressive-copy.ts).
  const copy = output === '-' || options.directIo === false ? undefined : new ProgressiveCopy(tempPath(output), io.signal);
  try {
    const result = await fetcher.fetch({ ...request, progress: progress.shown }, progress.update, copy === undefined ? undefined : (notice) => copy.pieces(notice));
    progress.stop();
    const progressive = copy === undefined ? undefined : { copy, generation: result.generation };
    const how = await placeOutput(result.path, output, io.stdout, io.signal, { direct: options.directIo !== false, progressive });
    const bytes = result.stats?.bytes;
    if (bytes !== undefined && output !== '-') {
      say(`saved ${output} (${how}; from cache ${bytes.cache} B, peers ${bytes.peers} B, seeds ${bytes.seeds} B, origin ${bytes.source} B)`);
    }
    return 0;
  } finally {
    progress.stop();
    await copy?.discard();
    await fetcher.close();
  }
}
