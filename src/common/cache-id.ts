/**
 * Cache IDs (`shoal cache import --id`, docs/cache.md): the name a cache
 * task is known by across the cluster, and the task ID derived from it. An ID
 * is 1–128 characters of A–Z a–z 0–9 . _ - : starting with a letter or digit
 * (safe in a URL path, a shell and a log line, never a file path); without
 * --id it is the content's digest, `sha256:<hex>`, and an ID of that form
 * must be the content's own digest.
 */
import { createHash } from 'node:crypto';
import { ShoalError } from './errors.js';

const CACHE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** CACHE_ID_INVALID unless `id` is a well-formed cache ID. */
export function checkCacheId(id: unknown): string {
  if (typeof id !== 'string' || !CACHE_ID_RE.test(id)) {
    throw new ShoalError('CACHE_ID_INVALID', `cache ID ${JSON.stringify(String(id).slice(0, 140))} is not 1-128 of A-Z a-z 0-9 . _ - : starting with a letter or digit`);
  }
  return id;
}

/** The ID an import gets: the one given (checked; a sha256: one must be the content's digest), else the content digest. */
export function importId(given: string | undefined, contentDigest: string): string {
  if (given === undefined || given === '') return contentDigest;
  checkCacheId(given);
  if (given.startsWith('sha256:') && given !== contentDigest) {
    throw new ShoalError('CACHE_ID_INVALID', `cache ID ${given.slice(0, 80)}… has the form of a digest but is not this content's (${contentDigest})`);
  }
  return given;
}

/** The task ID of a cache task: SHA-256 of a prefix and its cache ID, apart from every URL-derived or digest task ID. */
export function cacheTaskId(id: string): string {
  return createHash('sha256').update('shoal-cache\0').update(checkCacheId(id)).digest('hex');
}

/** Copies of one cache task the scheduler keeps, at most (docs/LIMITS.md). */
export const MAX_REPLICAS = 16;
