/** Whole-content digest check, streamed from disk. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { parseDigest } from '../../common/ids.js';

export async function verifyContentDigest(path: string, digest: string, signal?: AbortSignal): Promise<boolean> {
  const expected = Buffer.from(parseDigest(digest).hex, 'hex');
  const hash = createHash('sha256');
  const stream = createReadStream(path, { highWaterMark: 1024 * 1024, ...(signal === undefined ? {} : { signal }) });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return timingSafeEqual(hash.digest(), expected);
}
