/**
 * Puts a completed, verified task at the user's path, as a file of its own:
 * the user's writes must never reach the cache (they would change what the
 * next get returns, or be reverted by a repair of the cache). So a reflink
 * where the file system can (btrfs, XFS: blocks shared copy-on-write, in no
 * time), else a copy written straight to disk (./direct-copy.ts: no second
 * page-cache copy of the bytes), else, where the file system refuses
 * O_DIRECT or the caller asks, the kernel's buffered copy (docs/design.md,
 * "Output", for what each costs); never a hard link.
 *
 * Always under a temporary name in the target directory,
 * `.NAME.shoal-HOST-PID-RANDOM`, renamed at the end, so FILE either does not
 * exist or is complete. A cancelled get (SIGINT/SIGTERM: the signal)
 * removes its temporary file at once; one left by a process that was killed
 * is removed by the next get into that directory (checkOutputPath).
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc, createReadStream } from 'node:fs';
import { access, copyFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ShoalError } from '../common/errors.js';
import { processAlive } from '../common/processes.js';
import { DirectIoUnsupported, directCopy } from './direct-copy.js';
import { removeOnAbort } from './remove-on-abort.js';
import type { ProgressiveCopy } from './progressive-copy.js';

/** This host in temporary names (8 hex): a PID names a process only on its own host (an NFS directory is shared). */
const HOST = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
const TEMP = /^\..+\.shoal-([0-9a-f]{8})-(\d+)-[0-9a-f]{12}$/;

export function tempPath(output: string): string {
  return join(dirname(output), `.${basename(output)}.shoal-${HOST}-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** Checks before downloading that FILE can be created; removes the temporary files of dead gets in its directory. */
export async function checkOutputPath(file: string): Promise<string> {
  if (file === '-') return file;
  const path = resolve(file);
  const dir = dirname(path);
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) throw new ShoalError('OUTPUT_UNWRITABLE', `output directory ${dir} does not exist`);
  try {
    await access(dir, fsc.W_OK | fsc.X_OK);
  } catch {
    throw new ShoalError('OUTPUT_UNWRITABLE', `output directory ${dir} is not writable`);
  }
  const existing = await stat(path).catch(() => undefined);
  if (existing?.isDirectory() === true) throw new ShoalError('OUTPUT_UNWRITABLE', `${path} is a directory`);
  await removeStaleTemps(dir);
  return path;
}

/** Temporary files of gets on this host whose process is gone. */
async function removeStaleTemps(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const m = TEMP.exec(name);
    if (m === null || m[1] !== HOST || processAlive(Number(m[2]))) continue;
    await rm(join(dir, name), { force: true }).catch(() => undefined);
  }
}

export type Placement = 'reflink' | 'copy' | 'buffered copy' | 'stdout';

export interface PlaceOptions {
  /** false: a copy goes through the page cache (`--no-direct-io`), instead of O_DIRECT. Default true. */
  direct?: boolean;
  /** The output copied while the download ran (./progressive-copy.ts), finished here if it can be, with the content's generation. */
  progressive?: { copy: ProgressiveCopy; generation: number | undefined } | undefined;
}

export async function placeOutput(cachePath: string, output: string, stdout: NodeJS.WritableStream, signal: AbortSignal, options: PlaceOptions = {}): Promise<Placement> {
  if (output === '-') {
    await pipeline(createReadStream(cachePath, { highWaterMark: 1024 * 1024 }), stdout, { end: false, signal });
    return 'stdout';
  }
  const progressive = options.progressive;
  const tmp = progressive?.copy.tmp ?? tempPath(output);
  const stopRemoving = removeOnAbort(tmp, signal);
  try {
    let how: Placement;
    if (progressive !== undefined && (await progressive.copy.finish(cachePath, progressive.generation, signal))) {
      how = 'copy';
    } else {
      await progressive?.copy.discard();
      how = await cloneOrCopy(cachePath, tmp, options.direct !== false, signal);
    }
    if (signal.aborted) throw new ShoalError('ABORTED', 'cancelled');
    await rename(tmp, output);
    return how;
  } catch (err) {
    await rm(tmp, { force: true });
    if (signal.aborted) throw new ShoalError('ABORTED', 'cancelled');
    throw new ShoalError('OUTPUT_UNWRITABLE', `cannot write ${output}: ${(err as Error).message}`, { cause: err });
  } finally {
    stopRemoving();
  }
}

/** A reflink when the file system makes one, else a direct copy, else the kernel's buffered one (copy_file_range or sendfile). */
async function cloneOrCopy(from: string, to: string, direct: boolean, signal: AbortSignal): Promise<'reflink' | 'copy' | 'buffered copy'> {
  try {
    await copyFile(from, to, fsc.COPYFILE_FICLONE_FORCE);
    return 'reflink';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV' && code !== 'EINVAL' && code !== 'ENOSYS' && code !== 'ENOTTY') throw err;
  }
  if (direct) {
    try {
      await directCopy(from, to, signal);
      return 'copy';
    } catch (err) {
      if (!(err instanceof DirectIoUnsupported)) throw err;
      await rm(to, { force: true });
    }
  }
  await copyFile(from, to);
  return 'buffered copy';
}
