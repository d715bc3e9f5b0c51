/**
 * `shoal cache` through the local daemon: import (./import.ts), and the
 * scheduler's entries read or removed on the caller's behalf with this
 * daemon's own certificate. The local API depends on this port only.
 */
import { cacheTaskId, checkCacheId } from '../../common/cache-id.js';
import { ShoalError } from '../../common/errors.js';
import { fromConnectError } from '../../common/rpc-errors.js';
import { entryJson, type CacheEntryJson } from './entry-json.js';
import { importCache, type CacheImportDeps, type CacheImportInput } from './import.js';

export type { CacheEntryJson } from './entry-json.js';
export type { CacheImportInput } from './import.js';

export interface CacheService {
  importFile(input: CacheImportInput): Promise<CacheEntryJson>;
  /** One entry (`id`) or all; [] when the ID is unknown. */
  list(id: string | undefined, signal: AbortSignal): Promise<CacheEntryJson[]>;
  /** CACHE_NOT_FOUND when unknown; ROLE_REQUIRED unless this host imported it (with TLS). */
  remove(id: string, signal: AbortSignal): Promise<CacheEntryJson>;
}

export function createCacheService(deps: CacheImportDeps): CacheService {
  const rpc = <T>(call: Promise<T>): Promise<T> =>
    call.catch((err: unknown) => {
      throw fromConnectError(err, 'SCHEDULER_UNREACHABLE');
    });
  return {
    importFile: (input) => importCache(input, deps),
    async list(id, signal) {
      if (id !== undefined) {
        const list = await rpc(deps.client(cacheTaskId(checkCacheId(id))).listCache({ id }, { signal }));
        return list.entries.map(entryJson);
      }
      // Each entry lives on one scheduler; after a failover one may be known to two: the first answer wins.
      const lists = await Promise.all(deps.clients().map((c) => rpc(c.listCache({ id: '' }, { signal }))));
      const byId = new Map<string, CacheEntryJson>();
      for (const list of lists) for (const e of list.entries) if (!byId.has(e.id)) byId.set(e.id, entryJson(e));
      return [...byId.values()];
    },
    async remove(id, signal) {
      const list = await rpc(deps.client(cacheTaskId(checkCacheId(id))).removeCache({ id }, { signal }));
      const entry = list.entries[0];
      if (entry === undefined) throw new ShoalError('CACHE_NOT_FOUND', `no cache ID ${id} in the cluster`);
      await deps.store.delete(entry.taskId);
      return entryJson(entry);
    },
  };
}
