/**
 * An exclusive lock on a data directory: a `lock` file holding the owner's
 * PID. A lock whose process is gone is taken over.
 */
import { openSync, writeSync, closeSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ShoalError } from '../../common/errors.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface DirLock {
  release(): void;
}

export function lockDataDir(dir: string): DirLock {
  const path = join(dir, 'lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          try {
            unlinkSync(path);
          } catch {
            // already gone
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new ShoalError('STORAGE', `cannot create ${path}: ${(err as Error).message}`, { cause: err });
      }
      const owner = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) {
        throw new ShoalError('DATA_DIR_LOCKED', `data directory ${dir} is in use by process ${owner}; use that daemon (shoal get -e SOCKET) or another --data directory`);
      }
      unlinkSync(path);
    }
  }
  throw new ShoalError('DATA_DIR_LOCKED', `could not lock data directory ${dir}`);
}
