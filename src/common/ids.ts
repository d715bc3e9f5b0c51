/**
 * Task identity (DESIGN.md "Task identity"): the SHA-256 of the URL with
 * signature-like query parameters removed, plus tag and application; or, when
 * the content digest is known, the digest itself, so the same bytes fetched
 * through two URLs are one swarm.
 */
import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { ShoalError } from './errors.js';
import { parseS3Url, s3Identity } from './s3-url.js';

/** Query parameters that carry signatures or routing noise, never content identity. */
export const DEFAULT_FILTERED_QUERY_PARAMS: readonly string[] = [
  'X-Amz-*', // S3 presigned URLs
  'X-Goog-*', // GCS signed URLs
  'Expires',
  'Signature',
  'OSSAccessKeyId',
  'SecurityToken',
  'AccessKeyId',
  'X-Obs-Date',
  'X-Obs-Security-Token',
  'q-sign-*', // COS
  'q-ak',
  'q-key-time',
  'q-header-list',
  'q-url-param-list',
  'q-signature',
  'x-cos-security-token',
  'ns', // containerd's mirror parameter
];

const DIGEST_RE = /^sha256:([a-f0-9]{64})$/;

export interface Digest {
  readonly algorithm: 'sha256';
  readonly hex: string;
}

/** Parses `sha256:<64 lowercase hex>`; throws DIGEST_INVALID otherwise. */
export function parseDigest(value: string): Digest {
  const match = DIGEST_RE.exec(value);
  if (match === null) {
    throw new ShoalError('DIGEST_INVALID', `digest ${JSON.stringify(value.slice(0, 100))} is not of the form sha256:<64 lowercase hex digits>`);
  }
  return { algorithm: 'sha256', hex: match[1]! };
}

/** Parses an origin URL; http, https and s3 (./s3-url.ts) are accepted. */
export function parseSourceUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ShoalError('URL_INVALID', `${JSON.stringify(value.slice(0, 200))} is not a valid URL`);
  }
  if (url.protocol === 's3:') {
    parseS3Url(url);
    return url;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ShoalError('URL_INVALID', `unsupported URL scheme ${JSON.stringify(url.protocol.slice(0, -1))}: only http, https and s3 are supported`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new ShoalError('URL_INVALID', 'credentials in the URL are not accepted; pass them with -H "Authorization: ..."');
  }
  return url;
}

/** Whether query parameter `name` is one of `filters` (case-insensitive; `X-Amz-*` matches a prefix). */
export function matchesFilter(name: string, filters: readonly string[]): boolean {
  const lower = name.toLowerCase();
  return filters.some((filter) => {
    const f = filter.toLowerCase();
    return f.endsWith('*') ? lower.startsWith(f.slice(0, -1)) : lower === f;
  });
}

/** The URL as it identifies content: filtered query parameters and the fragment removed. */
export function filterUrl(url: URL, filters: readonly string[]): string {
  const out = new URL(url.href);
  out.hash = '';
  const kept = [...out.searchParams].filter(([name]) => !matchesFilter(name, filters));
  out.search = '';
  for (const [name, value] of kept) out.searchParams.append(name, value);
  return out.href;
}

export interface TaskIdInput {
  url: string;
  tag?: string | undefined;
  application?: string | undefined;
  /** Query parameters to leave out of the identity, added to the defaults. */
  filteredQueryParams?: readonly string[] | undefined;
  /** `sha256:<hex>`: when given, it is the identity. */
  digest?: string | undefined;
  /** An explicit piece size makes a different task (its pieces differ). */
  pieceSize?: number | undefined;
}

export function taskId(input: TaskIdInput): string {
  if (input.digest !== undefined && input.digest !== '') return parseDigest(input.digest).hex;
  const url = parseSourceUrl(input.url);
  const filters = [...DEFAULT_FILTERED_QUERY_PARAMS, ...(input.filteredQueryParams ?? [])];
  const hash = createHash('sha256');
  // An object in a store is its endpoint, bucket, key and version, however it is reached (region, style).
  hash.update(url.protocol === 's3:' ? s3Identity(parseS3Url(url)) : filterUrl(url, filters));
  hash.update('\0tag=' + (input.tag ?? ''));
  hash.update('\0app=' + (input.application ?? ''));
  if (input.pieceSize !== undefined && input.pieceSize > 0) hash.update('\0piece=' + String(input.pieceSize));
  return hash.digest('hex');
}

/** A URL as it may appear in messages, logs and stats: no credentials, query string (signatures) or fragment. */
export function redactUrl(url: string | URL): string {
  try {
    const u = typeof url === 'string' ? new URL(url) : url;
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return (typeof url === 'string' ? url : url.href).slice(0, 200).split(/[?#]/)[0] ?? '';
  }
}

const BLOB_DIGEST = /\/blobs\/(sha256:[a-f0-9]{64})$/;

/**
 * The digest of a registry blob URL (`…/blobs/sha256:<hex>`), which then
 * identifies the task: the proxy and preheat of a blob URL join the mirror's
 * swarm for that layer, whatever registry or URL it came through.
 */
export function blobDigestOf(url: string): string | undefined {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return undefined;
  }
  return BLOB_DIGEST.exec(path)?.[1];
}

const TASK_ID_RE = /^[a-f0-9]{64}$/;

export function isTaskId(value: string): boolean {
  return TASK_ID_RE.test(value);
}

/** A host's stable identity: its name and the address and port peers reach it on. */
export function hostId(ip: string, port: number): string {
  return `${hostname()}-${ip}-${port}`;
}

export function newPeerId(host: string): string {
  return `${host}-${randomUUID()}`;
}
