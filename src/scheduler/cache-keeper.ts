/**
 * The scheduler's cache tasks (docs/cache.md): what each cache ID was
 * imported as (the first importer's content digest and piece digests win),
 * how many copies to keep, until when; and the work that keeps them: asking
 * hosts for missing copies (./cache-replicas.ts), at most one attempt per
 * missing copy at a time, each given `restoreTimeout`; dropping an entry
 * everywhere when it expires or is removed. Like the rest of the scheduler
 * it keeps no database: holders re-announce their cache tasks after a
 * restart, and the first to do so re-creates the entry.
 */
import { create } from '@bufbuild/protobuf';
import { CacheEntrySchema, HostCommandSchema, TaskSpecSchema, type CacheEntry, type TaskSpec } from '../gen/shoal/v1/scheduler_pb.js';
import { MAX_REPLICAS, cacheTaskId, checkCacheId } from '../common/cache-id.js';
import { ShoalError } from '../common/errors.js';
import { parseDigest } from '../common/ids.js';
import type { Logger } from '../common/log.js';
import { pieceCount } from '../common/pieces.js';
import { holdersOf, replicaTargets } from './cache-replicas.js';
import type { HostEntry, TaskEntry, TaskShape } from './model.js';
import type { SchedulerTimers } from './timers.js';

export { MAX_REPLICAS } from '../common/cache-id.js';
/** Cache entries the scheduler keeps, at most. */
export const MAX_CACHE_ENTRIES = 100_000;

export interface CacheRecord {
  readonly id: string;
  readonly taskId: string;
  readonly contentDigest: string;
  readonly shape: TaskShape & { contentLength: number };
  /** Every piece's SHA-256, packed in piece order. */
  readonly digests: Uint8Array;
  readonly replicas: number;
  /** Unix ms; 0 = never. */
  readonly expiresAt: number;
  /** The certificate name of the host that imported it ('' without TLS): with an admin, the one that may remove it. */
  readonly owner: string;
  /** Hosts asked for a copy, and when. */
  readonly restoring: Map<string, number>;
}

export interface CacheKeeperDeps {
  readonly hosts: ReadonlyMap<string, HostEntry>;
  readonly tasks: ReadonlyMap<string, TaskEntry>;
  readonly now: () => number;
  readonly restoreTimeout: number;
  /** The holders of a task removed: their peers leave the swarm. */
  readonly dropTask: (task: TaskEntry) => void;
  readonly logger: Logger;
}

/** What an import or a re-announce says a cache task is, checked (CACHE_ID_INVALID, DIGEST_INVALID, USAGE, LIMIT_EXCEEDED). */
export function checkEntry(entry: CacheEntry | undefined, digests: Uint8Array): Omit<CacheRecord, 'owner' | 'restoring'> {
  if (entry === undefined) throw new ShoalError('USAGE', 'a cache import without an entry');
  const id = checkCacheId(entry.id);
  if (entry.taskId !== cacheTaskId(id)) throw new ShoalError('USAGE', `task ID ${entry.taskId.slice(0, 16)}… is not the one cache ID ${id} makes`);
  parseDigest(entry.contentDigest);
  const length = entry.metadata?.contentLength;
  const pieceSize = entry.metadata?.pieceSize ?? 0;
  if (length === undefined || pieceSize <= 0) throw new ShoalError('USAGE', 'a cache entry needs its content length and piece size');
  const shape = { contentLength: Number(length), pieceSize };
  if (digests.length !== pieceCount(shape.contentLength, pieceSize) * 32) throw new ShoalError('USAGE', `a cache entry of ${shape.contentLength} bytes needs ${pieceCount(shape.contentLength, pieceSize)} piece digests`);
  if (entry.replicas < 1 || entry.replicas > MAX_REPLICAS) throw new ShoalError('USAGE', `replicas must be 1..${MAX_REPLICAS}, got ${entry.replicas}`);
  return { id, taskId: entry.taskId, contentDigest: entry.contentDigest, shape, digests, replicas: entry.replicas, expiresAt: Number(entry.expiresAtMs) };
}

function sameContent(a: Pick<CacheRecord, 'contentDigest' | 'digests' | 'shape'>, b: Pick<CacheRecord, 'contentDigest' | 'digests' | 'shape'>): boolean {
  return a.contentDigest === b.contentDigest && a.shape.pieceSize === b.shape.pieceSize && Buffer.from(a.digests).equals(Buffer.from(b.digests));
}

/** The spec peers download a cache task by: no URL, nothing to go to a source with; the content digest is checked at the end. */
export function cacheSpec(record: Pick<CacheRecord, 'id' | 'taskId' | 'contentDigest'>): TaskSpec {
  return create(TaskSpecSchema, { taskId: record.taskId, cacheId: record.id, digest: record.contentDigest });
}

/** How often entries are looked after (expiry, restorations past their time); events trigger it too. */
const TICK_MS = 1000;

export class CacheKeeper {
  #tick: { cancel(): void } | undefined;
  #running = false;
  readonly #records = new Map<string, CacheRecord>();
  readonly #byTask = new Map<string, CacheRecord>();
  readonly #deps: CacheKeeperDeps;

  constructor(deps: CacheKeeperDeps) {
    this.#deps = deps;
  }

  /** Looks after the entries every TICK_MS on `timers` until stop(). */
  start(timers: SchedulerTimers): void {
    this.#running = true;
    const arm = (): void => {
      if (!this.#running) return;
      this.#tick = timers.after(TICK_MS, () => {
        this.maintain();
        arm();
      });
    };
    arm();
  }

  stop(): void {
    this.#running = false;
    this.#tick?.cancel();
  }

  byTask(taskId: string): CacheRecord | undefined {
    return this.#byTask.get(taskId);
  }

  /**
   * Records an import (or a holder's re-announce when the entry is unknown).
   * The same content again is the same entry; other content under a taken ID
   * is CACHE_CONFLICT, and the first importer's entry stands.
   */
  adopt(checked: Omit<CacheRecord, 'owner' | 'restoring'>, owner: string): CacheRecord {
    const existing = this.#records.get(checked.id);
    if (existing !== undefined) {
      if (!sameContent(existing, checked)) {
        throw new ShoalError('CACHE_CONFLICT', `cache ID ${checked.id} is taken by other content (${existing.contentDigest}); this is ${checked.contentDigest}`);
      }
      return existing;
    }
    if (this.#records.size >= MAX_CACHE_ENTRIES) throw new ShoalError('LIMIT_EXCEEDED', `the scheduler keeps at most ${MAX_CACHE_ENTRIES} cache entries`);
    const record: CacheRecord = { ...checked, owner, restoring: new Map() };
    this.#records.set(record.id, record);
    this.#byTask.set(record.taskId, record);
    this.#deps.logger.info({ cache: record.id, task: record.taskId, replicas: record.replicas }, 'cache entry');
    return record;
  }

  /** Whether `record` is past its time. */
  expired(record: CacheRecord): boolean {
    return record.expiresAt > 0 && this.#deps.now() >= record.expiresAt;
  }

  /** ROLE_REQUIRED unless the caller may remove `record`: its importer's certificate, an admin, or anyone without TLS. */
  checkMayRemove(record: CacheRecord, caller: { secure: boolean; name: string; admin: boolean }): void {
    if (!caller.secure || caller.admin || caller.name === record.owner) return;
    throw new ShoalError('ROLE_REQUIRED', `cache ID ${record.id} was imported by ${record.owner || 'an unnamed host'}; only it or an admin may remove it`);
  }

  /** Forgets the entry and has every holder drop the task. */
  remove(record: CacheRecord, why: string): void {
    this.#records.delete(record.id);
    this.#byTask.delete(record.taskId);
    const task = this.#deps.tasks.get(record.taskId);
    const command = create(HostCommandSchema, { command: { case: 'dropTask', value: { taskId: record.taskId } } });
    // Every host is told, not only the holders this scheduler knows of: a host that fetched a copy
    // may hold it without a peer here (it finished, or registered on another scheduler). One small
    // command per host, on a removal or an expiry; a host without the task ignores it.
    const told = [...this.#deps.hosts.values()];
    for (const host of told) host.command(command);
    if (task !== undefined) this.#deps.dropTask(task);
    this.#deps.logger.info({ cache: record.id, why, hosts: told.length }, 'cache entry dropped');
  }

  get(id: string): CacheRecord | undefined {
    return this.#records.get(id);
  }

  list(): CacheRecord[] {
    return [...this.#records.values()];
  }

  /** The entry as ListCache answers it. */
  entry(record: CacheRecord): CacheEntry {
    const holders = holdersOf(this.#deps.tasks.get(record.taskId), this.#deps.hosts);
    return create(CacheEntrySchema, {
      id: record.id,
      taskId: record.taskId,
      contentDigest: record.contentDigest,
      metadata: { contentLength: BigInt(record.shape.contentLength), pieceSize: record.shape.pieceSize, validator: '' },
      replicas: record.replicas,
      expiresAtMs: BigInt(record.expiresAt),
      holders: [...holders],
      restoring: record.restoring.size,
    });
  }

  /**
   * Every entry's upkeep: expired ones are dropped everywhere; restorations
   * done, whose host left, or past their time are forgotten; missing copies
   * are asked of other hosts.
   */
  maintain(): void {
    const now = this.#deps.now();
    for (const record of this.list()) {
      if (this.expired(record)) {
        this.remove(record, 'expired');
        continue;
      }
      const holders = holdersOf(this.#deps.tasks.get(record.taskId), this.#deps.hosts);
      for (const [hostId, at] of record.restoring) {
        if (holders.has(hostId) || !this.#deps.hosts.has(hostId) || now - at > this.#deps.restoreTimeout) record.restoring.delete(hostId);
      }
      const targets = replicaTargets({ taskId: record.taskId, replicas: record.replicas, holders, restoring: new Set(record.restoring.keys()), hosts: this.#deps.hosts.values() });
      for (const host of targets) {
        record.restoring.set(host.info.id, now);
        this.#deps.logger.info({ cache: record.id, host: host.info.id, holders: holders.size, replicas: record.replicas }, 'cache copy asked');
        host.command(create(HostCommandSchema, { command: { case: 'seedTask', value: { task: cacheSpec(record), cache: this.entry(record) } } }));
      }
    }
  }
}
