/**
 * An S3 prefix's objects by ListObjectsV2 (`GET /?list-type=2&prefix=P`),
 * page by page (`continuation-token`), signed like any S3 request but with
 * the credentials of this process (`shoal get`'s environment, ~/.aws): the
 * listing is the user's; the objects are fetched by the daemon with its own.
 */
import { ShoalError } from '../../common/errors.js';
import { formatS3Url, type S3Location } from '../../common/s3-url.js';
import { resolveAwsIdentity, type AwsEnv } from '../../daemon/source/s3/credentials.js';
import { s3ErrorDetail } from '../../daemon/source/s3/s3-errors.js';
import { bucketUrl, signerFor } from '../../daemon/source/s3/target.js';
import { judgeStatus } from '../../daemon/source/source-errors.js';
import { LISTING_LIMITS, type ListedFile } from './listing.js';
import { readCapped } from './read-capped.js';

export interface ListPage {
  readonly objects: ReadonlyArray<{ key: string; size: number | undefined; mtime: number | undefined }>;
  /** Set when more pages follow. */
  readonly next: string | undefined;
}

function invalid(what: string): ShoalError {
  return new ShoalError('LISTING_INVALID', `ListObjectsV2: ${what}`);
}

function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e] ?? '';
  });
}

function tag(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  return m?.[1] === undefined ? undefined : unescapeXml(m[1]);
}

/** One ListObjectsV2 result document. Pure. */
export function parseListPage(xml: string): ListPage {
  if (!/<ListBucketResult[\s>]/.test(xml)) throw invalid('the answer is not a ListBucketResult');
  const objects: Array<{ key: string; size: number | undefined; mtime: number | undefined }> = [];
  for (const m of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
    const body = m[1] ?? '';
    const key = tag(body, 'Key');
    if (key === undefined) throw invalid('an entry has no Key');
    const sizeText = tag(body, 'Size');
    const size = sizeText !== undefined && /^\d{1,16}$/.test(sizeText) ? Number(sizeText) : undefined;
    const modified = tag(body, 'LastModified');
    const mtime = modified === undefined ? undefined : Date.parse(modified);
    objects.push({ key, size, mtime: mtime === undefined || Number.isNaN(mtime) ? undefined : mtime });
  }
  const truncated = tag(xml, 'IsTruncated') === 'true';
  const next = tag(xml, 'NextContinuationToken');
  if (truncated && (next === undefined || next === '')) throw invalid('IsTruncated without NextContinuationToken');
  return { objects, next: truncated ? next : undefined };
}

/** Every object under the location's key (a prefix), as files named relative to the prefix. */
/** `pageSize`: max-keys per page (default: the store's, 1000 on S3). */
export async function listS3Prefix(location: S3Location, env: AwsEnv, signal: AbortSignal, pageSize?: number): Promise<ListedFile[]> {
  const identity = await resolveAwsIdentity(env);
  const region = location.region ?? identity.region;
  const sign = signerFor(identity, region);
  const prefix = location.key === '' || location.key.endsWith('/') ? location.key : `${location.key}/`;
  const files: ListedFile[] = [];
  const seen = new Set<string>();
  let token: string | undefined;
  for (let page = 0; ; page++) {
    if (page >= LISTING_LIMITS.pages) throw new ShoalError('LIMIT_EXCEEDED', `the listing has more than ${LISTING_LIMITS.pages} pages`);
    const url = bucketUrl(location, region);
    const params = new URLSearchParams({ 'list-type': '2', prefix });
    if (token !== undefined) params.set('continuation-token', token);
    if (pageSize !== undefined) params.set('max-keys', String(pageSize));
    url.search = `?${params.toString().replace(/\+/g, '%20')}`;
    const flat = await sign('GET', url, []);
    const headers: Array<[string, string]> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i] !== 'host') headers.push([flat[i]!, flat[i + 1]!]);
    let response: Response;
    try {
      response = await fetch(url, { headers, signal, redirect: 'manual' });
    } catch (err) {
      if (signal.aborted) throw new ShoalError('ABORTED', 'cancelled');
      throw new ShoalError('SOURCE_NETWORK', `ListObjectsV2 ${url.origin}: ${(err as Error).message}`, { cause: err });
    }
    const text = await readCapped(response, LISTING_LIMITS.pageBytes);
    if (response.status !== 200) {
      const verdict = judgeStatus(response.status);
      const code = verdict === 'ok' || verdict === 'retry' ? 'SOURCE_STATUS' : verdict;
      const detail = s3ErrorDetail(text);
      throw new ShoalError(code, `ListObjectsV2 s3://${location.bucket}/${prefix}: HTTP ${response.status}${detail === undefined ? '' : `: ${detail}`}`, { sourceStatus: response.status });
    }
    const result = parseListPage(text);
    for (const object of result.objects) {
      if (!object.key.startsWith(prefix)) throw invalid(`key ${JSON.stringify(object.key.slice(0, 200))} is outside the prefix`);
      if (object.key.endsWith('/') || seen.has(object.key)) continue; // a "folder" marker object; a key twice (overlapping pages)
      seen.add(object.key);
      if (files.length >= LISTING_LIMITS.files) throw new ShoalError('LIMIT_EXCEEDED', `the prefix holds more than ${LISTING_LIMITS.files} objects`);
      const file: S3Location = { ...location, key: object.key, versionId: undefined };
      files.push({ name: object.key.slice(prefix.length), url: formatS3Url(file), size: object.size, mtime: object.mtime });
    }
    if (result.next === undefined) return files;
    token = result.next;
  }
}
