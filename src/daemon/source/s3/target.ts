/**
 * Where an S3 location is fetched over HTTP, and how each request to it is
 * signed. Path style: ENDPOINT/BUCKET/KEY; virtual-host style:
 * SCHEME://BUCKET.HOST/KEY. Default: virtual host on AWS
 * (https://BUCKET.s3.REGION.amazonaws.com), except for a bucket with dots
 * (its name would break the TLS certificate's wildcard), path style on any
 * other endpoint (MinIO, Ceph, s3rver and most S3-compatible servers).
 */
import { encodeKey, awsEncode, type S3Location } from '../../../common/s3-url.js';
import type { AwsIdentity } from './credentials.js';
import { signS3 } from './sign.js';

/** Signs one request to the target: the headers to send (undici's flat form, Host included). */
export type RequestSigner = (method: 'GET' | 'HEAD', url: URL, headers: readonly string[]) => Promise<string[]>;

export interface S3Target {
  /** The object (or, with a query, the bucket's listing) as an http(s) URL. */
  readonly url: URL;
  readonly sign: RequestSigner;
}

/** The bucket's base URL (path style: with the bucket; virtual host: the bucket's host) with a trailing slash. */
export function bucketUrl(location: Pick<S3Location, 'bucket' | 'endpoint' | 'style'>, region: string): URL {
  const endpoint = new URL(location.endpoint ?? `https://s3.${region}.amazonaws.com`);
  const style = location.style ?? (location.endpoint === undefined && !location.bucket.includes('.') ? 'virtual' : 'path');
  const prefix = endpoint.pathname.replace(/\/+$/, '');
  if (style === 'virtual') {
    endpoint.hostname = `${location.bucket}.${endpoint.hostname}`;
    endpoint.pathname = `${prefix}/`;
  } else {
    endpoint.pathname = `${prefix}/${awsEncode(location.bucket)}/`;
  }
  return endpoint;
}

/** The object's URL (with ?versionId= when pinned). */
export function objectUrl(location: S3Location, region: string): URL {
  const url = bucketUrl(location, region);
  url.pathname = `${url.pathname}${encodeKey(location.key)}`;
  if (location.versionId !== undefined) url.search = `?versionId=${awsEncode(location.versionId)}`;
  return url;
}

/** Signs with `identity`, or leaves the request unsigned when it is anonymous. */
export function signerFor(identity: AwsIdentity, region: string): RequestSigner {
  const credentials = identity.credentials;
  return async (method, url, flat) => {
    if (credentials === undefined) return [...flat];
    const headers: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) headers[flat[i]!.toLowerCase()] = flat[i + 1]!;
    const signed = await signS3({ method, url, headers, region, credentials });
    return Object.entries(signed).flat();
  };
}

export function s3Target(location: S3Location, identity: AwsIdentity): S3Target {
  const region = location.region ?? identity.region;
  return { url: objectUrl(location, region), sign: signerFor(identity, region) };
}
