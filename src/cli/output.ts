/**
 * Puts a completed, verified task at the user's path: a hard link from the
 * cache when on the same file system, else a copy, always under a temporary
 * name in the target directory and renamed at the end, so FILE either does
 * not exist or is complete.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc, createReadStream } from 'node:fs';
import { access, copyFile, link, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ShoalError } from '../common/errors.js';

/** Checks before downloading that FILE can be created. */
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
  return path;
}

export async function placeOutput(cachePath: string, output: string, stdout: NodeJS.WritableStream): Promise<'link' | 'copy' | 'stdout'> {
  if (output === '-') {
    await pipeline(createReadStream(cachePath, { highWaterMark: 1024 * 1024 }), stdout, { end: false });
    return 'stdout';
  }
  const tmp = join(dirname(output), `.${basename(output)}.shoal-${randomBytes(6).toString('hex')}`);
  let how: 'link' | 'copy' = 'link';
  try {
    try {
      await link(cachePath, tmp);
    } catch {
      how = 'copy';
      await copyFile(cachePath, tmp);
    }
    await rename(tmp, output);
    return how;
  } catch (err) {
    await rm(tmp, { force: true });
    throw new ShoalError('OUTPUT_UNWRITABLE', `cannot write ${output}: ${(err as Error).message}`, { cause: err });
  }
}
