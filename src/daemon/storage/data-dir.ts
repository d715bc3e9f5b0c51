/**
 * Opening a store's data directory: its content folder made (mode 0700), the
 * directory locked (./lock.ts: DATA_DIR_LOCKED when another process holds
 * it), and its metadata opened; on a failure after the lock, the lock is let
 * go again. `error` turns a file system error into the store's ShoalError.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ShoalError } from '../../common/errors.js';
import { lockDataDir, type DirLock } from './lock.js';
import { MetadataDb } from './metadata.js';

export function openDataDir(dir: string, error: (err: unknown, what: string) => ShoalError): { lock: DirLock; db: MetadataDb } {
  try {
    mkdirSync(join(dir, 'content'), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw error(err, `create data directory ${dir}`);
  }
  const lock = lockDataDir(dir);
  const dbPath = join(dir, 'metadata.db');
  try {
    return { lock, db: new MetadataDb(dbPath) };
  } catch (err) {
    lock.release();
    throw error(err, `open ${dbPath}`);
  }
}
