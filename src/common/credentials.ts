/**
 * Whether a request for content carries credentials: an Authorization,
 * Proxy-Authorization or Cookie header, or a signed URL (query parameters
 * such as X-Amz-Signature that the task identity leaves out), or an
 * object in an object store (s3:, signed by each daemon with its own
 * credentials: whether a bucket is public is not known here). Content
 * fetched with credentials is private: it goes to another requester only
 * once the origin accepts that requester's own (docs/security.md).
 */
import { DEFAULT_FILTERED_QUERY_PARAMS, matchesFilter } from './ids.js';

const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

/** Filtered parameters that are routing noise, not credentials. */
const NOT_CREDENTIALS = new Set(['ns']);

export interface CredentialedRequest {
  url: string;
  headers?: ReadonlyArray<readonly [string, string]> | ReadonlyArray<{ name: string; value: string }> | undefined;
  /** Parameters the requester filtered out of the identity: presumably per-requester, so treated like signatures. */
  filteredQueryParams?: readonly string[] | undefined;
}

function headerName(h: readonly [string, string] | { name: string; value: string }): string {
  return ('name' in h ? h.name : h[0]).toLowerCase();
}

export function carriesCredentials(request: CredentialedRequest): boolean {
  for (const h of request.headers ?? []) if (CREDENTIAL_HEADERS.has(headerName(h))) return true;
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return false;
  }
  if (url.protocol === 's3:') return true;
  const filters = [...DEFAULT_FILTERED_QUERY_PARAMS.filter((f) => !NOT_CREDENTIALS.has(f)), ...(request.filteredQueryParams ?? [])];
  for (const name of url.searchParams.keys()) if (matchesFilter(name, filters)) return true;
  return false;
}
