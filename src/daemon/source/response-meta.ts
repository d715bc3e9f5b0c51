/** Parsing what an origin says about the content: lengths, ranges, validators, Retry-After. */
import type { Dispatcher } from 'undici';

export type ResponseHeaders = Dispatcher.ResponseData['headers'];

/** Largest content length accepted from an origin (docs/LIMITS.md). */
export const MAX_CONTENT_LENGTH = 2 ** 50;

export interface ContentRange {
  readonly first: number;
  /** Inclusive. */
  readonly last: number;
  /** Undefined for `bytes a-b/*`. */
  readonly total: number | undefined;
}

/** The first value of a header, when present. */
export function header(headers: ResponseHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** A decimal length: a number, undefined when absent, or 'invalid' (malformed or above MAX_CONTENT_LENGTH). */
export function parseLength(value: string | undefined): number | undefined | 'invalid' {
  if (value === undefined) return undefined;
  return toLength(value.trim());
}

/** `bytes first-last/total`; undefined when absent or malformed or beyond the cap. */
export function parseContentRange(value: string | undefined): ContentRange | undefined {
  const match = value === undefined ? null : /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(value.trim());
  if (match === null) return undefined;
  const [, a = '', b = '', t = ''] = match;
  const first = toLength(a);
  const last = toLength(b);
  const total = t === '*' ? undefined : toLength(t);
  if (first === 'invalid' || last === 'invalid' || total === 'invalid' || last < first) return undefined;
  if (total !== undefined && last >= total) return undefined;
  return { first, last, total };
}

/** Retry-After as a delay in ms (delta-seconds or an HTTP date); undefined when absent or unusable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d{1,9}$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** A validator usable in If-Range: a strong ETag (RFC 9110 §13.1.5 forbids weak ones), else Last-Modified. */
export function ifRangeValidator(etag: string | undefined, lastModified: string | undefined): string | undefined {
  if (etag !== undefined && !etag.startsWith('W/')) return etag;
  return lastModified;
}

function toLength(digits: string): number | 'invalid' {
  if (!/^\d{1,16}$/.test(digits)) return 'invalid';
  const n = Number(digits);
  return n > MAX_CONTENT_LENGTH ? 'invalid' : n;
}
