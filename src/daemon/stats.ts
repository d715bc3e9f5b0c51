/**
 * What `shoal status` and `GET /v1/stats` show: where a daemon's bytes came
 * from, per task and in total, and over the last ten minutes (the one-line
 * answer to "is P2P working"). Pure: the daemon passes in what it holds.
 */
import type { DownloadRecord } from './downloads.js';
import type { TaskStatsJson } from './download/task-stats.js';
import type { MirrorStats } from './mirror/context.js';
import type { ProxyStats } from './proxy/server.js';
import type { Requester } from './request.js';
import type { RateLimitJson } from '../common/rate-limiter.js';

/** The window of `DaemonStats.recent`. */
export const RECENT_WINDOW_MS = 10 * 60_000;

export interface ByteSources {
  cache: number;
  peers: number;
  seeds: number;
  source: number;
  /** Back-to-source events. */
  backToSource: number;
}

export interface TaskRecordJson extends TaskStatsJson {
  /** Who asked for it: get, mirror, proxy, seed, preheat. */
  requesters: Requester[];
}

export interface DaemonStats {
  hostId: string;
  seed: boolean;
  scheduler: { url: string | undefined; connected: boolean };
  uploads: { active: number; bytes: number; pieces: number };
  /** `memoryBytes`: pieces kept in memory for uploads; `pieceReads`: upload reads by where they found the bytes. */
  cache: { usedBytes: number; tasks: number; memoryBytes?: number; pieceReads?: { memory: number; file: number } };
  totals: ByteSources;
  /** The same for tasks active within the last `windowMs`. */
  recent: ByteSources & { windowMs: number; tasks: number; bytes: number };
  tasks: TaskRecordJson[];
  /** Registry mirror counters, when it runs. */
  mirror?: MirrorStats & { manifestCache: { entries: number; bytes: number } };
  /** HTTP proxy counters, when it runs. */
  proxy?: ProxyStats;
  /** The daemon's rate limits that are set (docs/configuration.md, "Rate limits"). */
  limits?: Partial<Record<'upload' | 'download' | 'source', RateLimitJson>>;
}

export type DaemonStatsParts = Omit<DaemonStats, 'totals' | 'recent' | 'tasks'>;

/**
 * One record per task: its latest download, with who asked for any of its
 * downloads (a task fetched twice, or a blob prefetched and then served, is
 * one task to the reader). In the order of those latest downloads.
 */
export function latestPerTask(records: readonly DownloadRecord[]): DownloadRecord[] {
  const latest = new Map<string, DownloadRecord>();
  for (const r of records) {
    const before = latest.get(r.stats.taskId);
    const requesters = before === undefined ? r.requesters : [...new Set([...before.requesters, ...r.requesters])];
    latest.delete(r.stats.taskId);
    latest.set(r.stats.taskId, { stats: r.stats, requesters });
  }
  return [...latest.values()];
}

/** Totals and the recent window over every download in `records` (oldest first), at `now`; each task listed once. */
export function daemonStats(parts: DaemonStatsParts, records: readonly DownloadRecord[], now: number = Date.now()): DaemonStats {
  const totals: ByteSources = { cache: 0, peers: 0, seeds: 0, source: 0, backToSource: 0 };
  const since = now - RECENT_WINDOW_MS;
  const recent = { windowMs: RECENT_WINDOW_MS, tasks: 0, bytes: 0, cache: 0, peers: 0, seeds: 0, source: 0, backToSource: 0 };
  const recentTasks = new Set<string>();
  for (const { stats: s } of records) {
    add(totals, s.bytes, s.backToSourceEvents.length);
    if ((s.finishedAt ?? now) < since) continue;
    recentTasks.add(s.taskId);
    recent.bytes += s.bytes.cache + s.bytes.peers + s.bytes.seeds + s.bytes.source;
    add(recent, s.bytes, s.backToSourceEvents.filter((e) => Date.parse(e.at) >= since).length);
  }
  recent.tasks = recentTasks.size;
  return { ...parts, totals, recent, tasks: latestPerTask(records).map((r) => ({ ...r.stats.toJSON(), requesters: [...r.requesters] })) };
}

function add(into: ByteSources, bytes: Omit<ByteSources, 'backToSource'>, backToSource: number): void {
  into.cache += bytes.cache;
  into.peers += bytes.peers;
  into.seeds += bytes.seeds;
  into.source += bytes.source;
  into.backToSource += backToSource;
}
