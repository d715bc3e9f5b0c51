/**
 * AWS Signature Version 4 for S3 requests, by the AWS SDK's own signer
 * (@smithy/signature-v4 with @aws-crypto/sha256-js): never a hand-written
 * canonical request. The path is sent as given (already encoded once with
 * ../../../common/s3-url.ts's encodeKey, as S3 wants: no double encoding);
 * the payload hash is that of the empty body of a GET.
 */
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentials } from './credentials.js';

export interface SignInput {
  readonly method: 'GET' | 'HEAD';
  /** The full request URL; its path already encoded. */
  readonly url: URL;
  /** Lower-case names; `host` is added. */
  readonly headers: Readonly<Record<string, string>>;
  readonly region: string;
  readonly credentials: AwsCredentials;
  /** The signing time; default now. */
  readonly date?: Date;
}

/** The headers to send: the given ones plus host, x-amz-date, x-amz-content-sha256, x-amz-security-token (with a session token) and authorization. */
export async function signS3(input: SignInput): Promise<Record<string, string>> {
  const { url } = input;
  const signer = new SignatureV4({
    service: 's3',
    region: input.region,
    credentials: {
      accessKeyId: input.credentials.accessKeyId,
      secretAccessKey: input.credentials.secretAccessKey,
      ...(input.credentials.sessionToken === undefined ? {} : { sessionToken: input.credentials.sessionToken }),
    },
    sha256: Sha256,
    uriEscapePath: false,
    applyChecksum: true,
  });
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of url.searchParams) {
    const seen = query[name];
    query[name] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  const signed = await signer.sign(
    {
      method: input.method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port === '' ? {} : { port: Number(url.port) }),
      path: url.pathname,
      query,
      headers: { ...input.headers, host: url.host },
    },
    input.date === undefined ? {} : { signingDate: input.date },
  );
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(signed.headers)) out[name.toLowerCase()] = String(value);
  return out;
}
