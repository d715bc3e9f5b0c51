/** The local API's `shoal cache import` parameters (in the query: the body is the file), checked: USAGE otherwise. */
import { ShoalError } from '../../common/errors.js';
import { MAX_REPLICAS } from '../../common/cache-id.js';

export interface CacheImportParams {
  id: string | undefined;
  contentDigest: string;
  length: number;
  replicas: number;
  ttlMs: number;
}

function whole(value: string | null, what: string, min: number, max: number): number {
  const n = Number(value);
  if (value === null || value === '' || !Number.isSafeInteger(n) || n < min || n > max) throw new ShoalError('USAGE', `${what} must be a whole number in [${min}, ${max}]`);
  return n;
}

export function asCacheImport(query: URLSearchParams, contentLength: string | undefined): CacheImportParams {
  const length = whole(query.get('length'), 'length', 0, Number.MAX_SAFE_INTEGER);
  if (contentLength !== undefined && Number(contentLength) !== length) throw new ShoalError('USAGE', `the body is ${contentLength} bytes, not the length ${length} given`);
  return {
    id: query.get('id') ?? undefined,
    contentDigest: query.get('digest') ?? '',
    length,
    replicas: whole(query.get('replicas') ?? '2', 'replicas', 1, MAX_REPLICAS),
    ttlMs: whole(query.get('ttlMs') ?? '0', 'ttlMs', 0, Number.MAX_SAFE_INTEGER),
  };
}
