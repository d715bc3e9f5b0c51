/**
 * A daemon's Prometheus metrics (docs/metrics.md). Nothing is counted on the
 * hot paths: at each scrape the metrics read what the daemon already keeps
 * for `shoal status` (each download's TaskStats, the upload and rate-limiter
 * counters, the mirror's and proxy's stats) and add what grew since the last
 * scrape. So they cost nothing between scrapes, and a scrape costs a pass over
 * the downloads kept (at most the running ones and the last 200).
 */
import { statfsSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DownloadRecord } from './downloads.js';
import type { TaskStats } from './download/task-stats.js';
import type { MirrorStats } from './mirror/context.js';
import type { ProxyStats } from './proxy/server.js';
import type { RateLimiter } from '../common/rate-limiter.js';
import { reasonLabel, sizeLabel } from '../common/metrics/labels.js';

/** What the metrics read, from the daemon's parts. */
export interface DaemonMetricsSources {
  records(): readonly DownloadRecord[];
  uploads(): { bytes: number; pieces: number; active: number; slots: number };
  /** The rate limits that are set, by kind (the `limiter` label: upload, download, source). */
  rateLimiters(): Partial<Record<'upload' | 'download' | 'source', RateLimiter>>;
  mirror(): MirrorStats | undefined;
  proxy(): ProxyStats | undefined;
  storage(): { usedBytes: number; tasks: number; dataDir: string; memoryBytes: number; pieceReads: { memory: number; file: number } };
  schedulerConnected(): boolean;
}

const REQUESTERS = ['get', 'mirror', 'proxy', 'seed', 'preheat'] as const;

const SOURCES = [
  ['cache', 'cache'],
  ['peers', 'peer'],
  ['seeds', 'seed'],
  ['source', 'origin'],
] as const;

/** Remembers, per object, the last value of each of its counters that was added to a metric. */
class Seen<T extends object> {
  readonly #last = new WeakMap<T, Map<string, number>>();

  /** What grew since the last call for (object, key); remembers the new value. */
  delta(object: T, key: string, now: number): number {
    let map = this.#last.get(object);
    if (map === undefined) this.#last.set(object, (map = new Map<string, number>()));
    const before = map.get(key) ?? 0;
    map.set(key, now);
    return now > before ? now - before : 0;
  }
}

export function createDaemonMetrics(sources: DaemonMetricsSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'shoal_' });
  const seenTasks = new Seen<TaskStats>();
  const ended = new WeakSet<TaskStats>();
  const seenParts = new Seen<object>();
  const parts = { uploads: {}, limiter: {}, mirror: {}, proxy: {} };

  const requesterOf = (r: DownloadRecord): string => r.requesters[0] ?? 'get';

  const bytes = new Counter({
    name: 'shoal_download_bytes_total',
    help: 'Content bytes downloads got, by where they came from and who asked',
    labelNames: ['source', 'requester'],
    registers: [registry],
    collect() {
      for (const r of sources.records()) {
        for (const [key, label] of SOURCES) {
          const grew = seenTasks.delta(r.stats, `bytes.${key}`, r.stats.bytes[key]);
          if (grew > 0) this.inc({ source: label, requester: requesterOf(r) }, grew);
        }
      }
    },
  });
  // Every source and requester from the start, so increase() sees a download's first bytes.
  for (const [, source] of SOURCES) for (const requester of REQUESTERS) bytes.inc({ source, requester }, 0);
  new Counter({
    name: 'shoal_back_to_source_total',
    help: 'Times this daemon went to the origin for a task, by why',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      for (const { stats } of sources.records()) {
        const events = stats.backToSourceEvents;
        const from = events.length - seenTasks.delta(stats, 'backToSource', events.length);
        for (const e of events.slice(from)) this.inc({ reason: reasonLabel(e.reason) });
      }
    },
  });
  const duration = new Histogram({
    name: 'shoal_download_duration_seconds',
    help: 'Downloads from start to verified content (cache hits included), by size class and result',
    labelNames: ['size', 'result'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
    registers: [registry],
  });
  const completed = new Counter({
    name: 'shoal_tasks_completed_total',
    help: 'Downloads that ended, by result and Shoal error code',
    labelNames: ['result', 'code'],
    registers: [registry],
    collect() {
      for (const { stats } of sources.records()) {
        if (stats.state === 'running' || stats.finishedAt === undefined || ended.has(stats)) continue;
        ended.add(stats);
        const result = stats.state === 'complete' ? 'complete' : 'failed';
        duration.observe({ size: sizeLabel(stats.contentLength), result }, (stats.finishedAt - stats.startedAt) / 1000);
        completed.inc({ result, code: stats.error?.code ?? 'none' });
      }
    },
  });
  new Gauge({
    name: 'shoal_tasks_active',
    help: 'Downloads running now',
    registers: [registry],
    collect() {
      this.set(sources.records().filter((r) => r.stats.state === 'running').length);
    },
  });
  new Counter({
    name: 'shoal_piece_failures_total',
    help: 'Piece fetches from parents that failed, by why',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      for (const { stats } of sources.records()) {
        const add = (reason: string, value: number): void => {
          const grew = seenTasks.delta(stats, `fail.${reason}`, value);
          if (grew > 0) this.inc({ reason }, grew);
        };
        add('corrupt', stats.corruptPieces);
        for (const [reason, value] of Object.entries(stats.pieceFailures)) add(reason, value);
      }
    },
  });
  new Counter({
    name: 'shoal_parents_excluded_total',
    help: 'Parents ruled out for a task: a corrupt piece (a liar), or repeated failures',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      for (const { stats } of sources.records()) {
        for (const [reason, value] of Object.entries(stats.excludedParents)) {
          const grew = seenTasks.delta(stats, `excluded.${reason}`, value);
          if (grew > 0) this.inc({ reason }, grew);
        }
      }
    },
  });
  const partCounter = (name: string, help: string, part: object, read: () => number | undefined): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const value = read();
        if (value === undefined) return;
        const grew = seenParts.delta(part, name, value);
        if (grew > 0) this.inc(grew);
      },
    });
  };
  partCounter('shoal_upload_bytes_total', 'Piece bytes sent to children', parts.uploads, () => sources.uploads().bytes);
  partCounter('shoal_upload_pieces_total', 'Piece responses to children that ended', parts.uploads, () => sources.uploads().pieces);
  new Gauge({ name: 'shoal_upload_slots', help: 'Upload slots offered', registers: [registry], collect() { this.set(sources.uploads().slots); } });
  new Gauge({ name: 'shoal_upload_slots_in_use', help: 'Pieces being uploaded now', registers: [registry], collect() { this.set(sources.uploads().active); } });
  const limiterCounter = (name: string, help: string, read: (l: RateLimiter) => number): void => {
    new Counter({
      name,
      help,
      labelNames: ['limiter'],
      registers: [registry],
      collect() {
        for (const [kind, limiter] of Object.entries(sources.rateLimiters())) {
          const grew = seenParts.delta(parts.limiter, `${name}/${kind}`, read(limiter));
          if (grew > 0) this.inc({ limiter: kind }, grew);
        }
      },
    });
  };
  limiterCounter('shoal_rate_limiter_waits_total', 'Writes that waited for the rate limiter', (l) => l.waits.count);
  limiterCounter('shoal_rate_limiter_wait_seconds_total', 'Time writes waited for the rate limiter', (l) => l.waits.ms / 1000);
  limiterCounter('shoal_rate_limiter_bytes_total', 'Bytes that passed through a rate limit', (l) => l.grantedBytes);
  new Counter({
    name: 'shoal_mirror_requests_total',
    help: 'Registry mirror requests, by what was asked and how it ended',
    labelNames: ['kind', 'result'],
    registers: [registry],
    collect() {
      const m = sources.mirror();
      if (m === undefined) return;
      const add = (kind: string, result: string, value: number): void => {
        const grew = seenParts.delta(parts.mirror, `${kind}.${result}`, value);
        if (grew > 0) this.inc({ kind, result }, grew);
      };
      add('blob', 'ok', m.blobs);
      add('manifest', 'ok', m.manifestsFromCache + m.manifestsFromUpstream);
      add('other', 'denied', m.denied);
      add('other', 'error', m.errors);
      add('other', 'ok', Math.max(0, m.requests - m.blobs - m.manifestsFromCache - m.manifestsFromUpstream - m.denied - m.errors));
    },
  });
  new Counter({
    name: 'shoal_proxy_requests_total',
    help: 'HTTP proxy requests, by how they were served and how they ended',
    labelNames: ['kind', 'result'],
    registers: [registry],
    collect() {
      const p = sources.proxy();
      if (p === undefined) return;
      const add = (kind: string, result: string, value: number): void => {
        const grew = seenParts.delta(parts.proxy, `${kind}.${result}`, value);
        if (grew > 0) this.inc({ kind, result }, grew);
      };
      add('p2p', 'ok', p.p2p);
      add('direct', 'ok', p.passThrough);
      add('tunnel', 'ok', p.tunnels);
      add('other', 'refused', p.refused);
      add('other', 'error', p.errors);
    },
  });
  new Gauge({ name: 'shoal_storage_used_bytes', help: 'Content bytes held in the cache', registers: [registry], collect() { this.set(sources.storage().usedBytes); } });
  new Gauge({ name: 'shoal_storage_memory_bytes', help: 'Bytes of the pieces received last, kept in memory for uploads (cache.recentPieces)', registers: [registry], collect() { this.set(sources.storage().memoryBytes); } });
  new Counter({
    name: 'shoal_upload_reads_total',
    help: 'Reads of pieces for uploads, by where the bytes were: memory (the pieces received last) or file',
    labelNames: ['from'],
    registers: [registry],
    collect() {
      const reads = sources.storage().pieceReads;
      for (const from of ['memory', 'file'] as const) {
        const grew = seenParts.delta(parts.uploads, `reads.${from}`, reads[from]);
        if (grew > 0) this.inc({ from }, grew);
      }
    },
  });
  new Gauge({ name: 'shoal_storage_tasks', help: 'Tasks held in the cache, complete or partial', registers: [registry], collect() { this.set(sources.storage().tasks); } });
  new Gauge({
    name: 'shoal_storage_free_bytes',
    help: "Free bytes on the data directory's file system",
    registers: [registry],
    collect() {
      try {
        const fs = statfsSync(sources.storage().dataDir);
        this.set(fs.bavail * fs.bsize);
      } catch {
        // The directory went away: no value this scrape.
      }
    },
  });
  new Gauge({
    name: 'shoal_scheduler_connected',
    help: "1 while the daemon's host stream to its scheduler is up",
    registers: [registry],
    collect() {
      this.set(sources.schedulerConnected() ? 1 : 0);
    },
  });
  return registry;
}
