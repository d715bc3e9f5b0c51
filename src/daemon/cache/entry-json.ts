/** A cache entry as the local API and `shoal cache stat|ls` show it. */
import type { CacheEntry } from '../../gen/shoal/v1/scheduler_pb.js';

export interface CacheEntryJson {
  id: string;
  taskId: string;
  contentDigest: string;
  contentLength: number;
  pieceSize: number;
  replicas: number;
  /** ISO time it expires at; null = never. */
  expiresAt: string | null;
  /** Hosts holding it complete. */
  holders: string[];
  /** Copies being made now. */
  restoring: number;
}

export function entryJson(entry: CacheEntry): CacheEntryJson {
  const expires = Number(entry.expiresAtMs);
  return {
    id: entry.id,
    taskId: entry.taskId,
    contentDigest: entry.contentDigest,
    contentLength: Number(entry.metadata?.contentLength ?? 0),
    pieceSize: entry.metadata?.pieceSize ?? 0,
    replicas: entry.replicas,
    expiresAt: expires > 0 ? new Date(expires).toISOString() : null,
    holders: [...entry.holders],
    restoring: entry.restoring,
  };
}
