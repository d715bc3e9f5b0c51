/**
 * `s3://BUCKET/KEY` source URLs (docs/object-storage.md). Everything a daemon
 * needs to reach the object rides in the URL, so that any host of the cluster
 * (a seed, a peer gone back to source) fetches the same object:
 *
 *     s3://BUCKET/KEY?endpoint=http%3A%2F%2Fminio%3A9000&region=eu-west-1&style=path&versionId=V
 *
 * The key is the URL's path, percent-decoded (write `?`, `#` and `%` in a key
 * as %3F, %23, %25). No endpoint: AWS. The identity of the object is the
 * endpoint, bucket, key and version; region and style only say how to reach
 * it. Credentials never appear here: each daemon signs with its own.
 */
import { ShoalError } from './errors.js';

export type S3Style = 'path' | 'virtual';

export interface S3Location {
  readonly bucket: string;
  /** The object key (a prefix, for a listing), decoded. */
  readonly key: string;
  readonly versionId: string | undefined;
  /** Scheme, host, port and an optional path prefix (no trailing slash); undefined: AWS. */
  readonly endpoint: string | undefined;
  readonly region: string | undefined;
  /** Undefined: virtual-host style on AWS (path style for a bucket with dots), path style elsewhere. */
  readonly style: S3Style | undefined;
}

/** Caps (docs/LIMITS.md): S3's own limits on names. */
const S3_LIMITS = { bucket: 255, keyBytes: 1024, versionId: 1024, region: 64 } as const;
const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const REGION = /^[a-z0-9-]+$/;
const PARAMETERS = new Set(['versionId', 'endpoint', 'region', 'style']);

function invalid(what: string): ShoalError {
  return new ShoalError('URL_INVALID', `s3 URL: ${what}`);
}

/** Parses and checks an s3: URL; `allowPrefix` accepts an empty key or one ending in "/" (a listing). Throws URL_INVALID. */
export function parseS3Url(url: URL, allowPrefix = false): S3Location {
  if (url.protocol !== 's3:') throw invalid(`scheme ${url.protocol} is not s3:`);
  if (url.username !== '' || url.password !== '') throw invalid('credentials in the URL are not accepted; the daemon uses its own (AWS_* variables, ~/.aws)');
  if (url.hash !== '') throw invalid('a fragment is not part of an object name (write # in a key as %23)');
  const bucket = url.hostname;
  if (bucket === '' || bucket.length > S3_LIMITS.bucket || !BUCKET.test(bucket)) throw invalid(`bad bucket name ${JSON.stringify(bucket.slice(0, 100))}`);
  if (url.port !== '') throw invalid('a bucket has no port; give the endpoint as ?endpoint= (shoal get --endpoint-url)');
  let key: string;
  try {
    key = decodeURIComponent(url.pathname.replace(/^\//, ''));
  } catch {
    throw invalid('the key is not valid percent-encoded UTF-8');
  }
  if (Buffer.byteLength(key) > S3_LIMITS.keyBytes) throw invalid(`key longer than ${S3_LIMITS.keyBytes} bytes`);
  if (key.includes('\0')) throw invalid('NUL in the key');
  if (!allowPrefix && (key === '' || key.endsWith('/'))) throw invalid('no object key (a prefix is fetched with --recursive)');
  for (const name of url.searchParams.keys()) if (!PARAMETERS.has(name)) throw invalid(`unknown parameter ${JSON.stringify(name.slice(0, 50))} (versionId, endpoint, region, style)`);
  const one = (name: string): string | undefined => {
    const values = url.searchParams.getAll(name);
    if (values.length > 1) throw invalid(`${name} given twice`);
    return values[0];
  };
  const versionId = one('versionId');
  if (versionId !== undefined && (versionId === '' || versionId.length > S3_LIMITS.versionId)) throw invalid('bad versionId');
  const region = one('region');
  if (region !== undefined && (region.length > S3_LIMITS.region || !REGION.test(region))) throw invalid(`bad region ${JSON.stringify(region.slice(0, 64))}`);
  const style = one('style');
  if (style !== undefined && style !== 'path' && style !== 'virtual') throw invalid('style is path or virtual');
  const endpoint = one('endpoint');
  return { bucket, key, versionId, endpoint: endpoint === undefined ? undefined : normalizeEndpoint(endpoint), region, style };
}

/** An endpoint as `scheme://host[:port][/prefix]`; throws URL_INVALID. */
export function normalizeEndpoint(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`endpoint ${JSON.stringify(value.slice(0, 200))} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid('the endpoint is an http:// or https:// URL');
  if (url.username !== '' || url.password !== '') throw invalid('credentials in the endpoint are not accepted');
  if (url.search !== '' || url.hash !== '') throw invalid('the endpoint has no query or fragment');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** The canonical URL of a location: parameters in a fixed order, so equal locations are equal strings. */
export function formatS3Url(location: S3Location): string {
  const params = new URLSearchParams();
  if (location.endpoint !== undefined) params.set('endpoint', location.endpoint);
  if (location.region !== undefined) params.set('region', location.region);
  if (location.style !== undefined) params.set('style', location.style);
  if (location.versionId !== undefined) params.set('versionId', location.versionId);
  const query = params.size === 0 ? '' : `?${params.toString()}`;
  return `s3://${location.bucket}/${encodeKey(location.key)}${query}`;
}

/** What identifies the object (task identity): endpoint, bucket, key and version; never region, style or credentials. */
export function s3Identity(location: S3Location): string {
  return ['s3', location.endpoint ?? 'aws', location.bucket, location.key, location.versionId ?? ''].join('\0');
}

/** A key as a URL path: each `/`-separated segment percent-encoded as S3's SigV4 canonical URI wants (RFC 3986 unreserved kept). */
export function encodeKey(key: string): string {
  return key.split('/').map(awsEncode).join('/');
}

/** encodeURIComponent plus `!'()*`: AWS's URI encoding. */
export function awsEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
