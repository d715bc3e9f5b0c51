/**
 * An exclusive lock on a data directory: a `lock` file naming its owner as
 * "PID START", START being the process's start time. A lock whose owner is
 * gone is taken over at once (common/processes.ts: no such process, a
 * zombie, or the PID reused by another).
 *
 * The file never appears half-written: it is written under a temporary name
 * and linked to `lock`, which fails when `lock` exists. A stale lock is
 * renamed aside before it is removed, and put back if the file moved is not
 * the one judged stale (another process took over in between).
 */
import { linkSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ShoalError } from '../../common/errors.js';
import { processAlive, processStart } from '../../common/processes.js';
import { isNoSpace } from './space.js';

export interface DirLock {
  release(): void;
}

interface Owner {
  pid: number;
  /** undefined in a lock written by an older Shoal, or where /proc is absent. */
  start: string | undefined;
}

function parseOwner(text: string): Owner | undefined {
  const [pid, start] = text.trim().split(/\s+/);
  const n = Number.parseInt(pid ?? '', 10);
  return Number.isInteger(n) && n > 0 ? { pid: n, start: start === '' ? undefined : start } : undefined;
}

/** The file's text; undefined when it is absent or unreadable. */
function readIfThere(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function unlinkIfThere(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

function storageError(err: unknown, what: string): ShoalError {
  return new ShoalError(isNoSpace(err) ? 'STORAGE_FULL' : 'STORAGE', `cannot ${what}: ${(err as Error).message}`, { cause: err });
}

export function lockDataDir(dir: string): DirLock {
  const path = join(dir, 'lock');
  const start = processStart(process.pid);
  const mine = `${process.pid}${start === undefined ? '' : ` ${start}`}\n`;
  const tmp = join(dir, `lock.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    writeFileSync(tmp, mine, { mode: 0o600 });
  } catch (err) {
    throw storageError(err, `create ${tmp}`);
  }
  try {
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        linkSync(tmp, path);
        removeStaleTemps(dir);
        return heldLock(path, mine);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw storageError(err, `create ${path}`);
      }
      const text = readIfThere(path);
      if (text === undefined) continue;
      const owner = parseOwner(text);
      if (owner !== undefined && owner.pid !== process.pid && processAlive(owner.pid, owner.start)) {
        throw new ShoalError('DATA_DIR_LOCKED', `data directory ${dir} is in use by process ${owner.pid}; use that daemon (shoal get -e SOCKET) or another --data directory`);
      }
      takeOver(path, text, `${tmp}.stale`);
    }
  } finally {
    unlinkIfThere(tmp);
  }
  throw new ShoalError('DATA_DIR_LOCKED', `could not lock data directory ${dir}`);
}

/** Removes the stale lock whose content is `stale`, unless another process replaced it meanwhile. */
function takeOver(path: string, stale: string, aside: string): void {
  try {
    renameSync(path, aside);
  } catch {
    return; // gone already
  }
  if (readIfThere(aside) !== stale) {
    try {
      linkSync(aside, path);
    } catch {
      // a third process holds it now
    }
  }
  unlinkIfThere(aside);
}

/** The temporary files (`lock.PID.HEX`) of processes killed while locking. */
function removeStaleTemps(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^lock\.(\d+)\.[0-9a-f]{8}(\.stale)?$/.exec(name);
    if (m !== null && Number(m[1]) !== process.pid && !processAlive(Number(m[1]))) unlinkIfThere(join(dir, name));
  }
}

function heldLock(path: string, mine: string): DirLock {
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      if (readIfThere(path) === mine) unlinkIfThere(path);
    },
  };
}
