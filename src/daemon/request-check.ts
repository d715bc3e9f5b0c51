/**
 * A download request from the CLI, the API or a seed command, and its checks.
 * No protobuf here (request.ts builds the task from a checked request), so
 * `shoal get` can check its arguments without loading the wire schemas.
 */
import { ShoalError } from '../common/errors.js';
import { parseDigest, parseSourceUrl } from '../common/ids.js';
import { isValidPieceSize } from '../common/pieces.js';
import { checkCacheId } from '../common/cache-id.js';

/** Where it lives now (task identity); re-exported for the request's users. */
export { blobDigestOf } from '../common/ids.js';

/** Who asked for a download, shown per task by `shoal status`. */
export type Requester = 'get' | 'mirror' | 'proxy' | 'seed' | 'preheat';

export interface DownloadRequest {
  /** The origin; '' for a cache task (`cacheId`). */
  url: string;
  /** A cache task's ID (`shoal cache export`): no origin; url, digest and the rest must be absent. */
  cacheId?: string | undefined;
  headers?: ReadonlyArray<readonly [string, string]>;
  digest?: string | undefined;
  tag?: string | undefined;
  application?: string | undefined;
  filteredQueryParams?: readonly string[] | undefined;
  pieceSize?: number | undefined;
  /** Who asks (not part of the task). Default 'get'. */
  requester?: Requester | undefined;
  /** This caller's own download cap, bytes/s (`shoal get --limit-rate`; not part of the task). 0 or absent: none. */
  limitRate?: number | undefined;
}

/** Caps on a request (docs/LIMITS.md). */
const REQUEST_LIMITS = { urlLength: 8192, headers: 64, headerBytes: 16_384, tagLength: 256, filters: 64 } as const;

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host', 'content-length', 'range']);

/** Every check the daemon makes of a request; throws ShoalError USAGE / URL_INVALID / DIGEST_INVALID. */
export function checkDownloadRequest(request: DownloadRequest): void {
  if (request.cacheId !== undefined && request.cacheId !== '') {
    checkCacheId(request.cacheId);
    if (request.url !== '' || (request.headers ?? []).length > 0 || (request.digest ?? '') !== '') throw new ShoalError('USAGE', 'a cache task is asked for by its cache ID alone');
    return;
  }
  if (typeof request.url !== 'string' || request.url.length > REQUEST_LIMITS.urlLength) {
    throw new ShoalError('URL_INVALID', `URL must be a string of at most ${REQUEST_LIMITS.urlLength} characters`);
  }
  const url = parseSourceUrl(request.url);
  const headers = request.headers ?? [];
  if (url.protocol === 's3:' && headers.length > 0) throw new ShoalError('USAGE', 'headers are not sent to an object store: an s3: request is signed with the daemon\'s own credentials');
  if (headers.length > REQUEST_LIMITS.headers) throw new ShoalError('USAGE', `at most ${REQUEST_LIMITS.headers} headers`);
  let headerBytes = 0;
  for (const [name, value] of headers) {
    if (!HEADER_NAME.test(name)) throw new ShoalError('USAGE', `invalid header name ${JSON.stringify(name.slice(0, 100))}`);
    if (/[\r\n\0]/.test(value)) throw new ShoalError('USAGE', `header ${name} has a line break or NUL in its value`);
    if (HOP_BY_HOP.has(name.toLowerCase())) throw new ShoalError('USAGE', `header ${name} is controlled by Shoal and cannot be set`);
    headerBytes += name.length + value.length;
  }
  if (headerBytes > REQUEST_LIMITS.headerBytes) throw new ShoalError('USAGE', `headers exceed ${REQUEST_LIMITS.headerBytes} bytes`);
  if (request.digest !== undefined && request.digest !== '') parseDigest(request.digest);
  if ((request.tag ?? '').length > REQUEST_LIMITS.tagLength) throw new ShoalError('USAGE', `tag longer than ${REQUEST_LIMITS.tagLength}`);
  const filters = request.filteredQueryParams ?? [];
  if (filters.length > REQUEST_LIMITS.filters) throw new ShoalError('USAGE', `at most ${REQUEST_LIMITS.filters} filtered query parameters`);
  if (request.limitRate !== undefined && (!Number.isSafeInteger(request.limitRate) || request.limitRate < 0)) {
    throw new ShoalError('USAGE', `limit rate ${String(request.limitRate)} is not a whole number of bytes per second`);
  }
  if (request.pieceSize !== undefined && request.pieceSize !== 0 && !isValidPieceSize(request.pieceSize)) {
    throw new ShoalError('USAGE', `piece size ${request.pieceSize} is outside [16 KiB, 64 MiB]`);
  }
}
