/**
 * Running out of space: how the store recognises it, and how much it has.
 * A write that fails for lack of space fails its download with STORAGE_FULL
 * and makes the store reclaim space (PieceStore, ./eviction.ts
 * chooseReclaim), so the daemon recovers by itself once space is free.
 */
import { statfs } from 'node:fs/promises';
import type { Logger } from '../../common/log.js';
import { chooseReclaim } from './eviction.js';
import type { StoredTask } from './stored-task.js';

/** Space asked for beyond a failed task's length when reclaiming (metadata, its journal). */
const RECLAIM_HEADROOM = 16 * 1024 * 1024;

/** ENOSPC, EDQUOT (the user's quota), and SQLite's SQLITE_FULL ("database or disk is full"). */
export function isNoSpace(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL';
}

/** Bytes an unprivileged writer can still use on the file system of `dir`; undefined when it cannot be asked. */
export async function freeBytes(dir: string): Promise<number | undefined> {
  const s = await statfs(dir).catch(() => undefined);
  return s === undefined ? undefined : s.bavail * s.bsize;
}

/** What a reclaim works on: the store. */
export interface ReclaimTarget {
  readonly dataDir: string;
  tasks(): StoredTask[];
  delete(id: string): Promise<void>;
}

/** Frees space after a STORAGE_FULL, one run at a time: the tasks chooseReclaim picks. */
export class SpaceReclaimer {
  readonly #target: ReclaimTarget;
  readonly #log: Logger;
  #running: Promise<void> | undefined;

  constructor(target: ReclaimTarget, log: Logger) {
    this.#target = target;
    this.#log = log;
  }

  /**
   * Starts a run unless one is under way, and returns it. `cause`: the task
   * whose write failed; when it is to be dropped (`dropWhenIdle`, the store
   * does that once nobody holds it) its bytes count as freed.
   */
  run(cause: StoredTask | undefined): Promise<void> {
    this.#running ??= this.#reclaim(cause).finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #reclaim(cause: StoredTask | undefined): Promise<void> {
    const free = (await freeBytes(this.#target.dataDir)) ?? 0;
    const dropping = cause?.dropWhenIdle === true ? cause.heldBytes : 0;
    const wanted = (cause?.shape?.contentLength ?? 0) + RECLAIM_HEADROOM;
    const others = this.#target.tasks().filter((t) => t !== cause);
    const evicted = chooseReclaim(others, { free: free + dropping, wanted });
    for (const id of evicted) await this.#target.delete(id);
    this.#log.warn({ free, evicted: evicted.length }, 'storage full; space reclaimed');
  }
}
