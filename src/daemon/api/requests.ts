/**
 * The local API's request bodies, read and checked: JSON of at most
 * MAX_API_BODY bytes, every field typed, USAGE / LIMIT_EXCEEDED otherwise.
 */
import type { IncomingMessage } from 'node:http';
import { ShoalError } from '../../common/errors.js';
import type { PreheatInput } from '../preheat/run.js';
import type { DownloadRequest } from '../request.js';

export const MAX_API_BODY = 64 * 1024;

/** Files preheated in one request, at most (the scheduler's cap too). */
export const MAX_PREHEAT_URLS = 1024;

export interface ApiDownloadRequest extends DownloadRequest {
  timeoutMs?: number | undefined;
  /** Send `progress` events (default true); a client that shows none says false and is woken only for the result. */
  progress?: boolean | undefined;
  /**
   * Send `pieces` events: the content file and the pieces stored in it as they
   * come, for a client that copies them while the rest downloads
   * (src/cli/progressive-copy.ts). Default false.
   */
  pieces?: boolean | undefined;
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_API_BODY) throw new ShoalError('LIMIT_EXCEEDED', `request body over ${MAX_API_BODY} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new ShoalError('USAGE', 'request body is not JSON');
  }
}

export function asRequest(body: unknown): ApiDownloadRequest {
  if (typeof body !== 'object' || body === null) throw new ShoalError('USAGE', 'request must be a JSON object');
  const b = body as Record<string, unknown>;
  const str = (k: string): string | undefined => optionalString(b, k);
  const headers = asHeaders(b['headers']);
  const filters = b['filteredQueryParams'] ?? [];
  if (!Array.isArray(filters) || !filters.every((f) => typeof f === 'string')) throw new ShoalError('USAGE', 'filteredQueryParams must be strings');
  const num = (k: string): number | undefined => {
    const v = b[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ShoalError('USAGE', `${k} must be a non-negative number`);
    return v;
  };
  const cacheId = str('cacheId');
  const url = str('url') ?? (cacheId === undefined ? undefined : '');
  if (url === undefined) throw new ShoalError('USAGE', 'url (or cacheId) is required');
  const progress = b['progress'];
  if (progress !== undefined && progress !== null && typeof progress !== 'boolean') throw new ShoalError('USAGE', 'progress must be true or false');
  const pieces = b['pieces'];
  if (pieces !== undefined && pieces !== null && typeof pieces !== 'boolean') throw new ShoalError('USAGE', 'pieces must be true or false');
  return {
    url,
    ...(cacheId === undefined ? {} : { cacheId }),
    headers,
    digest: str('digest'),
    tag: str('tag'),
    application: str('application'),
    filteredQueryParams: filters,
    pieceSize: num('pieceSize'),
    limitRate: num('limitRate'),
    timeoutMs: num('timeoutMs'),
    progress: progress === true || progress === false ? progress : undefined,
    pieces: pieces === true ? true : undefined,
  };
}

function asHeaders(value: unknown): Array<[string, string]> {
  const headers = value ?? [];
  if (!Array.isArray(headers) || !headers.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && typeof h[1] === 'string')) {
    throw new ShoalError('USAGE', 'headers must be a list of [name, value] string pairs');
  }
  return headers as Array<[string, string]>;
}

function optionalString(b: Record<string, unknown>, k: string): string | undefined {
  const v = b[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new ShoalError('USAGE', `${k} must be a string`);
  return v;
}


export function asPreheat(body: unknown): PreheatInput {
  if (typeof body !== 'object' || body === null) throw new ShoalError('USAGE', 'request must be a JSON object');
  const b = body as Record<string, unknown>;
  const headers = asHeaders(b['headers']);
  const timeout = b['timeoutMs'];
  if (timeout !== undefined && timeout !== null && (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0)) {
    throw new ShoalError('USAGE', 'timeoutMs must be a non-negative number');
  }
  const timeoutMs = typeof timeout === 'number' ? timeout : undefined;
  if (b['image'] !== undefined && b['image'] !== null) {
    if (typeof b['image'] !== 'object') throw new ShoalError('USAGE', 'image must be an object');
    const i = b['image'] as Record<string, unknown>;
    const ref = optionalString(i, 'ref');
    if (ref === undefined) throw new ShoalError('USAGE', 'image.ref is required');
    return { image: { ref, platform: optionalString(i, 'platform'), upstream: optionalString(i, 'upstream') }, headers, timeoutMs };
  }
  const urls = b['urls'];
  if (!Array.isArray(urls) || urls.length === 0) throw new ShoalError('USAGE', 'urls (a non-empty list) or image is required');
  if (urls.length > MAX_PREHEAT_URLS) throw new ShoalError('LIMIT_EXCEEDED', `at most ${MAX_PREHEAT_URLS} URLs per preheat`);
  return {
    urls: urls.map((u: unknown) => {
      if (typeof u !== 'object' || u === null) throw new ShoalError('USAGE', 'each of urls must be {url, digest?}');
      const url = optionalString(u as Record<string, unknown>, 'url');
      if (url === undefined) throw new ShoalError('USAGE', 'each of urls needs a url');
      return { url, digest: optionalString(u as Record<string, unknown>, 'digest') };
    }),
    headers,
    timeoutMs,
  };
}
