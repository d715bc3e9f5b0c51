/**
 * Which tasks the cache GC evicts: a pure policy (no files, no clock: `now`
 * is given), applied by PieceStore.gc().
 *
 * 1. Tasks unused for longer than the TTL go (ttl 0: none by age).
 * 2. Then, while the content held is over the quota (quota 0: no quota), the
 *    least recently used go: complete tasks first, then partial ones (a
 *    partial task no one downloads any more is only dead weight).
 *
 * A pinned task (being downloaded or served) is never evicted. A cache
 * task (shoal cache import, or a copy the scheduler keeps) is evicted only
 * once it expires, whatever the quota and TTL say (docs/cache.md).
 */
import type { CacheSettings } from '../../common/config/schema.js';

/** What the policy reads of a stored task. */
export interface EvictionCandidate {
  readonly id: string;
  /** When it was last used (ms, the store's clock). */
  readonly lastAccess: number;
  readonly complete: boolean;
  /** Downloads and uploads holding it open. */
  readonly pins: number;
  /** Content bytes it holds on disk. */
  readonly heldBytes: number;
  /** A cache task: kept until expiresAt (unix ms; 0 = forever). */
  readonly cache?: { readonly expiresAt: number } | undefined;
}

/** A cache task past its time (`wallNow`, unix ms). */
export function cacheExpired(task: Pick<EvictionCandidate, 'cache'>, wallNow: number): boolean {
  return task.cache !== undefined && task.cache.expiresAt > 0 && wallNow >= task.cache.expiresAt;
}

/** The IDs of the tasks to evict, TTL evictions first, then the rest in eviction order. */
export function chooseEvictions(tasks: readonly EvictionCandidate[], limits: Pick<CacheSettings, 'quota' | 'ttl'>, now: number, wallNow: number = Date.now()): string[] {
  const evicted = new Set<string>();
  const byAge = (a: EvictionCandidate, b: EvictionCandidate): number => a.lastAccess - b.lastAccess;
  for (const t of tasks) if (t.pins === 0 && cacheExpired(t, wallNow)) evicted.add(t.id);
  const unpinned = tasks.filter((t) => t.pins === 0 && t.cache === undefined);
  const candidates = [...unpinned.filter((t) => t.complete).sort(byAge), ...unpinned.filter((t) => !t.complete).sort(byAge)];
  if (limits.ttl > 0) {
    for (const task of candidates) if (now - task.lastAccess > limits.ttl) evicted.add(task.id);
  }
  if (limits.quota > 0) {
    let used = tasks.reduce((sum, t) => sum + (evicted.has(t.id) ? 0 : t.heldBytes), 0);
    for (const task of candidates) {
      if (used <= limits.quota) break;
      if (evicted.has(task.id)) continue;
      evicted.add(task.id);
      used -= task.heldBytes;
    }
  }
  return [...evicted];
}

/**
 * What the store drops when a write failed for lack of space (a pure policy,
 * applied by PieceStore after a STORAGE_FULL):
 *
 * 1. every partial task nobody holds: an interrupted download only takes
 *    space, and the one that hit the full disk goes as soon as its download
 *    lets go of it;
 * 2. then complete tasks nobody holds, least recently used first, until
 *    `free` plus what was dropped reaches `wanted` (the failed task's
 *    missing bytes and some headroom); none of them when even all would not
 *    reach it, since then dropping the cache would not let the download
 *    through.
 */
export function chooseReclaim(tasks: readonly EvictionCandidate[], space: { free: number; wanted: number }): string[] {
  const byAge = (a: EvictionCandidate, b: EvictionCandidate): number => a.lastAccess - b.lastAccess;
  const unpinned = tasks.filter((t) => t.pins === 0);
  const partial = unpinned.filter((t) => !t.complete);
  const complete = unpinned.filter((t) => t.complete).sort(byAge);
  let free = space.free + partial.reduce((sum, t) => sum + t.heldBytes, 0);
  const evicted = partial.map((t) => t.id);
  if (free >= space.wanted || free + complete.reduce((sum, t) => sum + t.heldBytes, 0) < space.wanted) return evicted;
  for (const task of complete) {
    if (free >= space.wanted) break;
    evicted.push(task.id);
    free += task.heldBytes;
  }
  return evicted;
}
