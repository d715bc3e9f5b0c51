/**
 * `shoal get s3://BUCKET/KEY --endpoint-url URL --region R --addressing-style S`:
 * the options fold into the URL (../common/s3-url.ts), so that every host
 * that fetches the object reaches the same store. The endpoint may also come
 * from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, as with the AWS CLI.
 */
import { ShoalError } from '../common/errors.js';
import { formatS3Url, normalizeEndpoint, parseS3Url, type S3Location } from '../common/s3-url.js';

export interface S3CliOptions {
  endpointUrl?: string | undefined;
  region?: string | undefined;
  addressingStyle?: string | undefined;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** The URL with the options in it (canonical form); an http(s) URL given S3 options is USAGE. */
export function withS3Options(url: string, options: S3CliOptions, env: NodeJS.ProcessEnv, allowPrefix = false): string {
  const given = options.endpointUrl !== undefined || options.region !== undefined || options.addressingStyle !== undefined;
  if (!url.startsWith('s3:')) {
    if (given) throw new ShoalError('USAGE', '--endpoint-url, --region and --addressing-style are for s3:// URLs');
    return url;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ShoalError('URL_INVALID', `${JSON.stringify(url.slice(0, 200))} is not a valid URL`);
  }
  const location = parseS3Url(parsed, allowPrefix);
  const style = options.addressingStyle;
  if (style !== undefined && style !== 'path' && style !== 'virtual') throw new ShoalError('USAGE', '--addressing-style is path or virtual');
  const endpoint = options.endpointUrl ?? (location.endpoint === undefined ? nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL) : undefined);
  const merged: S3Location = {
    ...location,
    ...(endpoint === undefined ? {} : { endpoint: normalizeEndpoint(endpoint) }),
    ...(options.region === undefined ? {} : { region: options.region }),
    ...(style === undefined ? {} : { style }),
  };
  const out = formatS3Url(merged);
  parseS3Url(new URL(out), allowPrefix); // the region is checked there
  return out;
}
