/**
 * Is a complete task's content file still the one that was verified? A cache
 * hit must never return bytes that differ from the task's digests, and the
 * file can change under the store: someone writes into it, appends to it,
 * truncates it, or links it elsewhere and writes there.
 *
 * The rule: at completion the store records the file's stamp, its size,
 * inode, mtime and ctime (nanoseconds). A user can set mtime back (touch -d,
 * utimes) but not ctime, which the kernel moves on every write, truncate,
 * link, chmod and utimes; size and inode catch an appended or replaced file.
 * A hit whose stamp differs in any part is hashed again, piece by piece,
 * before it is served: the file is cut back to the content's length, pieces
 * that fail are dropped (and fetched again), and the new stamp recorded.
 */
import { constants as fsc, mkdirSync, type BigIntStats } from 'node:fs';
import { copyFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../../common/log.js';
import { pieceRange } from '../../common/pieces.js';
import type { MetadataDb } from './metadata.js';
import type { OpenFiles } from './open-files.js';
import type { StoredTask } from './stored-task.js';
import { verifyPiece } from './verify.js';

/** The stamp of a file's state: equal stamps, same bytes (short of someone changing the clock and the inode). */
export function stampOf(s: BigIntStats): string {
  return `${s.size}:${s.ino}:${s.mtimeNs}:${s.ctimeNs}`;
}

/** The file's stamp and link count, or undefined when it cannot be read (gone). */
export async function readStamp(path: string): Promise<{ stamp: string; links: number } | undefined> {
  const s = await stat(path, { bigint: true }).catch(() => undefined);
  return s === undefined ? undefined : { stamp: stampOf(s), links: Number(s.nlink) };
}

export interface RecheckDeps {
  files: OpenFiles;
  meta: Pick<MetadataDb, 'dropPieces' | 'setState' | 'setContentStamp'>;
  log: Logger;
  now: () => number;
}

/**
 * Checks a complete task's content file before it is served from the
 * cache; returns the number of pieces dropped (0: serve it). When its stamp
 * moved, the file is cut to length and every piece hashed again; the ones
 * that fail are dropped, so they are fetched again. A file with other names
 * (a hard link) first gets an inode of its own, so that the repair never
 * writes into someone else's file.
 */
export async function recheckContent(task: StoredTask, deps: RecheckDeps): Promise<number> {
  const found = await readStamp(task.path);
  if (found !== undefined && found.stamp === task.stamp) return 0;
  if (found === undefined) mkdirSync(dirname(task.path), { recursive: true, mode: 0o700 });
  else if (found.links > 1) await detach(task, deps);
  const bad = await deps.files.use(task.path, (file) => badPieces(file, task));
  if (bad.length > 0) {
    deps.log.warn({ task: task.id, pieces: bad.length }, 'cached content was modified; refetching those pieces');
    deps.meta.dropPieces(task.id, bad);
    deps.meta.setState(task.id, 'running', deps.now());
    task.dropPieces(bad);
    task.complete = false;
  }
  task.stamp = task.complete ? (await readStamp(task.path))?.stamp : undefined;
  deps.meta.setContentStamp(task.id, task.stamp ?? null);
  return bad.length;
}

/** Gives the task's content file an inode of its own: a copy (a reflink where the file system can) renamed over it. */
async function detach(task: StoredTask, deps: RecheckDeps): Promise<void> {
  deps.log.warn({ task: task.id }, 'cached content file has other links; copying it before checking');
  deps.files.release(task.path);
  const tmp = `${task.path}.detach`;
  try {
    await copyFile(task.path, tmp, fsc.COPYFILE_FICLONE);
    await rename(tmp, task.path);
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Cuts the file to the task's length (appended bytes go) and hashes every
 * piece held; returns the numbers of those that no longer match.
 */
export async function badPieces(file: FileHandle, task: StoredTask): Promise<number[]> {
  const { contentLength, pieceSize } = task.shape!;
  const length = contentLength!;
  if ((await file.stat()).size !== length) await file.truncate(length);
  const buf = Buffer.allocUnsafe(pieceSize);
  const bad: number[] = [];
  for (const [n, digest] of task.digests) {
    const range = pieceRange(n, length, pieceSize);
    const { bytesRead } = await file.read(buf, 0, range.length, range.offset);
    if (bytesRead !== range.length || !verifyPiece(buf.subarray(0, bytesRead), digest)) bad.push(n);
  }
  return bad;
}
