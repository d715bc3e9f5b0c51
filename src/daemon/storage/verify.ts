/**
 * Content verification, in one place: a piece counts as held only when its
 * bytes hash to the SHA-256 the task's digests give (from the scheduler, or
 * made here from the origin's bytes), and a task asked for by digest is
 * complete only when its whole content hashes to that digest. The peer path
 * (download/parent.ts), the origin path (download/source-fetch.ts), the
 * store's re-check of cached content (store.ts checkIntact) and the
 * whole-content check (download/finish-task.ts) all call these.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { parseDigest } from '../../common/ids.js';

/** Bytes of a piece digest. */
export const PIECE_DIGEST_BYTES = 32;

/** The SHA-256 of a piece's bytes: its digest as the scheduler relays it and the store records it. */
export function pieceDigest(piece: Uint8Array): Buffer {
  return createHash('sha256').update(piece).digest();
}

/** Whether `piece` hashes to `expected`, compared in constant time; false for a digest of another length. */
export function verifyPiece(piece: Uint8Array, expected: Uint8Array): boolean {
  return expected.length === PIECE_DIGEST_BYTES && timingSafeEqual(pieceDigest(piece), expected);
}

/**
 * Whether the file at `path` hashes to `digest` (`sha256:<hex>`, DIGEST_INVALID
 * otherwise), streamed from disk in 1 MiB reads.
 */
export async function verifyContent(path: string, digest: string, signal?: AbortSignal): Promise<boolean> {
  const expected = Buffer.from(parseDigest(digest).hex, 'hex');
  const hash = createHash('sha256');
  const stream = createReadStream(path, { highWaterMark: 1024 * 1024, ...(signal === undefined ? {} : { signal }) });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return timingSafeEqual(hash.digest(), expected);
}
