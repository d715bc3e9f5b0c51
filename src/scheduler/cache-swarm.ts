/**
 * A cache task in the swarm's model (./cache-keeper.ts keeps the entries):
 * its shape and digests come from the entry (the first importer's, trusted),
 * and a host holding it is a complete peer that serves it.
 */
import { pieceCount } from '../common/pieces.js';
import type { HeldTask } from '../gen/shoal/v1/scheduler_pb.js';
import type { Logger } from '../common/log.js';
import { cacheSpec, checkEntry, type CacheKeeper, type CacheRecord } from './cache-keeper.js';
import { learnDigests } from './digest-trust.js';
import { broadcastDigests } from './messages.js';
import { PeerEntry, type HostEntry, type TaskEntry } from './model.js';

/** What the swarm's scheduling offers these functions. */
export interface PeerScheduling {
  removePeer(peer: PeerEntry, state: 'left'): void;
  scheduleTask(task: TaskEntry): void;
}

/** A cache task's model: no origin, its shape and its digests from the entry. */
export function applyCache(task: TaskEntry, record: CacheRecord): void {
  task.cacheId = record.id;
  task.spec ??= cacheSpec(record);
  task.learnShape(record.shape);
  const count = pieceCount(record.shape.contentLength, record.shape.pieceSize);
  broadcastDigests(task, learnDigests(task, Array.from({ length: count }, (_, n) => n), record.digests, 'trusted'), undefined);
}

/** `host` holds the cache task complete: a peer that serves it (replacing the host's peer of it). */
export function holdCache(host: HostEntry, task: TaskEntry, peerId: string, scheduling: PeerScheduling): void {
  const existing = host.peerOf(task);
  if (existing !== undefined) scheduling.removePeer(existing, 'left');
  const peer = new PeerEntry(peerId, host, task, 'complete');
  if (task.pieceCount !== undefined) peer.pieces.fill(task.pieceCount);
  task.peers.set(peer.id, peer);
  host.addPeer(peer);
  scheduling.scheduleTask(task);
}

/**
 * A cache task a host re-announced: its task, the host a holder of it, when
 * its content is the entry's; the entry is re-created from it when the
 * scheduler does not know it (after a restart: the first holder to
 * re-announce wins). Other content, or an expired or malformed entry: no
 * holder (undefined).
 */
export function adoptHeldCache(cache: CacheKeeper, item: HeldTask, taskOf: (id: string) => TaskEntry, log: Logger): TaskEntry | undefined {
  let record: CacheRecord;
  try {
    record = cache.adopt(checkEntry(item.cache, item.digests), '');
  } catch (err) {
    log.warn({ task: item.taskId, err: (err as Error).message }, 'a re-announced cache task is not held');
    return undefined;
  }
  if (cache.expired(record)) return undefined;
  const task = taskOf(record.taskId);
  applyCache(task, record);
  return task;
}
