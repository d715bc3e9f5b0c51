/**
 * Names from a listing are never trusted as paths (docs/security.md): a name
 * becomes a file under DIR only when it is a plain relative path — no `..`
 * or `.` segment, no empty segment, not absolute, no NUL, no backslash — and
 * no directory on the way to it inside DIR is a symlink (which could lead out
 * of DIR). Anything else is PATH_UNSAFE, naming the entry.
 */
import { lstat, mkdir } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { ShoalError } from '../../common/errors.js';

/** Caps (docs/LIMITS.md). */
export const PATH_LIMITS = { pathBytes: 4096, segmentBytes: 255, depth: 64 } as const;

function unsafe(name: string, why: string): ShoalError {
  return new ShoalError('PATH_UNSAFE', `refusing the listed name ${JSON.stringify(name.slice(0, 200))}: ${why}`);
}

/** The name's segments when it is a safe relative path; throws PATH_UNSAFE otherwise. */
export function safeSegments(name: string): string[] {
  if (name.includes('\0')) throw unsafe(name, 'it contains NUL');
  if (name.includes('\\')) throw unsafe(name, 'it contains a backslash');
  if (name.startsWith('/')) throw unsafe(name, 'it is an absolute path');
  if (/^[A-Za-z]:/.test(name)) throw unsafe(name, 'it starts with a drive letter');
  if (Buffer.byteLength(name) > PATH_LIMITS.pathBytes) throw unsafe(name, `it is longer than ${PATH_LIMITS.pathBytes} bytes`);
  const segments = name.split('/');
  if (segments.length > PATH_LIMITS.depth) throw unsafe(name, `it is deeper than ${PATH_LIMITS.depth} directories`);
  for (const segment of segments) {
    if (segment === '..') throw unsafe(name, 'it has a ".." segment');
    if (segment === '.' || segment === '') throw unsafe(name, 'it has an empty or "." segment');
    if (Buffer.byteLength(segment) > PATH_LIMITS.segmentBytes) throw unsafe(name, `a segment is longer than ${PATH_LIMITS.segmentBytes} bytes`);
  }
  return segments;
}

/**
 * Where `name` goes under `dir`: creates the directories on the way (never
 * through a symlink: one there is PATH_UNSAFE) and refuses a symlink or a
 * directory at the file's own place. Resolves with the file's path.
 */
export async function prepareTarget(dir: string, name: string): Promise<string> {
  const segments = safeSegments(name);
  let path = dir;
  for (const segment of segments.slice(0, -1)) {
    path = join(path, segment);
    const info = await lstat(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw new ShoalError('OUTPUT_UNWRITABLE', `cannot inspect ${path}: ${err.message}`);
    });
    if (info === undefined) {
      await mkdir(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw new ShoalError('OUTPUT_UNWRITABLE', `cannot create ${path}: ${err.message}`);
      });
      const made = await lstat(path);
      if (!made.isDirectory()) throw unsafe(name, `${path} is not a directory`);
    } else if (info.isSymbolicLink()) {
      throw unsafe(name, `${path} is a symlink (it could lead out of ${dir})`);
    } else if (!info.isDirectory()) {
      throw unsafe(name, `${path} is not a directory`);
    }
  }
  const file = join(path, segments.at(-1)!);
  const info = await lstat(file).catch(() => undefined);
  if (info?.isSymbolicLink() === true) throw unsafe(name, `${file} is a symlink`);
  if (info?.isDirectory() === true) throw unsafe(name, `${file} is a directory`);
  if (!file.startsWith(dir.endsWith(sep) ? dir : dir + sep)) throw unsafe(name, `it resolves outside ${dir}`);
  return file;
}
