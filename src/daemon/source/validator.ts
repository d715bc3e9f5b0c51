/**
 * A version of an origin's content, as one string the scheduler and the store
 * compare: `etag:<ETag>` (a strong one preferred), else
 * `last-modified:<date>`, else empty (the origin sent neither: only a change
 * of length can be seen). Pieces of two versions are never mixed
 * (docs/reliability.md).
 */
import type { ContentVersion } from './response-check.js';

export function validatorOf(etag: string | undefined, lastModified: string | undefined): string {
  if (etag !== undefined && !etag.startsWith('W/')) return `etag:${etag}`;
  if (lastModified !== undefined) return `last-modified:${lastModified}`;
  return etag === undefined ? '' : `etag:${etag}`;
}

/** The version a validator stands for, for a request that must find the same (If-Range, and the checks of response-check.ts). */
export function versionOf(validator: string): ContentVersion | undefined {
  if (validator.startsWith('etag:')) return { total: undefined, etag: validator.slice('etag:'.length), lastModified: undefined };
  if (validator.startsWith('last-modified:')) return { total: undefined, etag: undefined, lastModified: validator.slice('last-modified:'.length) };
  return undefined;
}
