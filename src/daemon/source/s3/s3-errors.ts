/**
 * What an S3 error answer says: its XML body's Code and Message
 * (`<Error><Code>InvalidAccessKeyId</Code><Message>…</Message>…`), read from at
 * most 8 KiB, cleaned to printable text: "InvalidAccessKeyId: The AWS Access
 * Key Id you provided does not exist in our records." Nothing else of the body
 * is kept (a SignatureDoesNotMatch body echoes the string to sign and the key id).
 */
import type { OriginResponse } from '../origin-request.js';

const MAX_ERROR_BODY = 8 * 1024;

/** Printable ASCII only, at most `max` characters. */
function clean(text: string, max: number): string {
  return text.replace(/[^\x20-\x7e]/g, ' ').trim().slice(0, max);
}

/** The "Code: Message" of an S3 error document; undefined when the text is not one. */
export function s3ErrorDetail(xml: string): string | undefined {
  const code = /<Code>([^<]{1,100})<\/Code>/.exec(xml)?.[1];
  if (code === undefined) return undefined;
  const message = /<Message>([^<]{0,500})<\/Message>/.exec(xml)?.[1];
  return message === undefined || message.trim() === '' ? clean(code, 100) : `${clean(code, 100)}: ${clean(message, 300)}`;
}

/** Reads (at most 8 KiB of) an error body and destroys the rest; never throws. */
export async function explainS3Error(body: OriginResponse['body'], signal: AbortSignal): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (signal.aborted) break;
      chunks.push(chunk);
      size += chunk.length;
      if (size >= MAX_ERROR_BODY) break;
    }
  } catch {
    return undefined;
  } finally {
    if (!body.destroyed) body.on('error', () => undefined).destroy();
  }
  return s3ErrorDetail(Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY).toString('utf8'));
}
