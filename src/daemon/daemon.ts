/**
 * `createDaemon(options)`: a peer (or, with `seed`, a seed peer). Owns the
 * piece store, the upload server, the scheduler link and the local API, and
 * runs one TaskDownload per task however many callers want it.
 */
import { create } from '@bufbuild/protobuf';
import { hostname, networkInterfaces } from 'node:os';
import { HeldTaskSchema, HostSchema, type HeldTask, type Host, type TaskSpec } from '../gen/shoal/v1/scheduler_pb.js';
import { ShoalError, toShoalError } from '../common/errors.js';
import { hostId as makeHostId } from '../common/ids.js';
import { silentLogger, type Logger } from '../common/log.js';
import { packDigests } from '../common/pieces.js';
import { createScheduler, type SchedulerService } from '../scheduler/server.js';
import { createApiServer, type ApiServer } from './api/server.js';
import { DEFAULT_LIMITS, TaskDownload, type DownloadLimits } from './download/task-download.js';
import type { TaskStats } from './download/task-stats.js';
import { toTaskSpec, type DownloadRequest, type Requester } from './request.js';
import { SchedulerLink, type SchedulerClient } from './scheduler-link.js';
import { createMirror, type Mirror, type MirrorOptions } from './mirror/server.js';
import { runPreheat, type PreheatEvent, type PreheatInput } from './preheat/run.js';
import { createProxy, type Proxy, type ProxyOptions } from './proxy/server.js';
import { createHttpSource, type HttpSource, type SourceOptions } from './source/http-source.js';
import { PieceStore, type StoredTask } from './storage/store.js';
import { createRateLimiter } from './upload/rate-limiter.js';
import { createUploadServer, type UploadServer } from './upload/server.js';

export interface DaemonOptions {
  dataDir: string;
  /** Scheduler URL (http://host:port). Undefined with `embeddedScheduler` false: no scheduler, straight to the origin. */
  schedulerUrl?: string | undefined;
  /** Run a scheduler inside this process (single-host mode). */
  embeddedScheduler?: boolean;
  /** Upload server address. Default 0.0.0.0:4000. */
  listenHost?: string;
  listenPort?: number;
  /** Address other peers use to reach this host. Default: the listen address, or the first non-loopback IPv4. */
  advertise?: string | undefined;
  /** Local API: a unix socket path, or 127.0.0.1:PORT. Undefined: no API. */
  api?: string | undefined;
  seed?: boolean;
  idc?: string;
  location?: string;
  /** Concurrent piece uploads. Default 64 (seed: 256). */
  uploadSlots?: number;
  /** Upload bandwidth cap in bytes/s, 0 = none. */
  uploadRate?: number;
  cacheQuotaBytes?: number;
  cacheTtlMs?: number;
  gcIntervalMs?: number;
  limits?: Partial<DownloadLimits>;
  source?: SourceOptions;
  /** The OCI registry mirror (src/daemon/mirror); undefined: none. */
  mirror?: Omit<MirrorOptions, 'daemon' | 'logger'> | undefined;
  /** The HTTP forward proxy (src/daemon/proxy); undefined: none. */
  proxy?: Omit<ProxyOptions, 'daemon' | 'logger'> | undefined;
  logger?: Logger;
}

export interface DownloadHandle {
  taskId: string;
  stats: TaskStats;
  /** Resolves with the stored, complete task. */
  done: Promise<StoredTask>;
  onProgress(listener: (stats: TaskStats) => void): () => void;
}

export interface Daemon {
  readonly hostId: string;
  readonly uploadPort: number;
  /** The registry mirror's port, when it runs. */
  readonly mirrorPort: number | undefined;
  /** The HTTP proxy's port, when it runs. */
  readonly proxyPort: number | undefined;
  readonly schedulerUrl: string | undefined;
  readonly store: PieceStore;
  start(): Promise<void>;
  /** Starts (or joins) a download. The signal releases this caller; the task stops when no caller is left. */
  download(request: DownloadRequest, signal?: AbortSignal): DownloadHandle;
  /** Has seed peers fetch URLs or an image's blobs ahead of demand (through the scheduler); events end with `end`. */
  preheat(input: PreheatInput, signal: AbortSignal): AsyncIterable<PreheatEvent>;
  stats(): DaemonStats;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface DaemonStats {
  hostId: string;
  seed: boolean;
  scheduler: { url: string | undefined; connected: boolean };
  uploads: { active: number; bytes: number; pieces: number };
  cache: { usedBytes: number; tasks: number };
  totals: { cache: number; peers: number; seeds: number; source: number; backToSource: number };
  /** The same for tasks active within the last `windowMs` (the one-line answer of `shoal status`). */
  recent: { windowMs: number; tasks: number; bytes: number; cache: number; peers: number; seeds: number; source: number; backToSource: number };
  /** Each with `requesters`: who asked for it (get, mirror, proxy, seed, preheat). */
  tasks: Array<Record<string, unknown>>;
  /** Registry mirror counters, when it runs. */
  mirror?: ReturnType<Mirror['stats']>;
  /** HTTP proxy counters, when it runs. */
  proxy?: ReturnType<Proxy['stats']>;
}

/** The window of `stats().recent`. */
export const RECENT_WINDOW_MS = 10 * 60_000;

function firstExternalIPv4(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

class ShoalDaemon implements Daemon {
  readonly #o: DaemonOptions;
  readonly #log: Logger;
  readonly #limits: DownloadLimits;
  readonly #downloads = new Map<string, { download: TaskDownload; waiters: number; pinned: boolean }>();
  readonly #history: TaskStats[] = [];
  /** Who asked for each download (by its stats object, so a later download of the task starts afresh). */
  readonly #requesters = new WeakMap<TaskStats, Set<Requester>>();
  #store: PieceStore | undefined;
  #upload: UploadServer | undefined;
  #scheduler: SchedulerService | undefined;
  #link: SchedulerLink | undefined;
  #client: SchedulerClient | undefined;
  #api: ApiServer | undefined;
  #mirror: Mirror | undefined;
  #proxy: Proxy | undefined;
  #source: HttpSource;
  #gcTimer: NodeJS.Timeout | undefined;
  #loadTimer: NodeJS.Timeout | undefined;
  #hostId = '';
  #advertise = '';
  #uploaded = { bytes: 0, pieces: 0 };
  #started = false;
  #stopping: Promise<void> | undefined;

  constructor(options: DaemonOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    // Blobs the mirror asks for come through this source: it trusts the mirror's registry CAs too.
    const cas = [options.source?.ca, ...(options.mirror?.upstreams ?? []).map((u) => u.ca)].filter((c): c is string => c !== undefined);
    this.#source = createHttpSource({ ...options.source, ...(cas.length === 0 ? {} : { ca: cas.join('\n') }), logger: this.#log });
  }

  get hostId(): string {
    return this.#hostId;
  }

  get uploadPort(): number {
    return this.#upload?.port ?? 0;
  }

  get mirrorPort(): number | undefined {
    return this.#mirror?.port;
  }

  get proxyPort(): number | undefined {
    return this.#proxy?.port;
  }

  get schedulerUrl(): string | undefined {
    return this.#scheduler?.url ?? this.#o.schedulerUrl;
  }

  get store(): PieceStore {
    if (this.#store === undefined) throw new ShoalError('INTERNAL', 'daemon not started');
    return this.#store;
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const o = this.#o;
    this.#store = await PieceStore.open({
      dataDir: o.dataDir,
      quotaBytes: o.cacheQuotaBytes ?? 0,
      ttlMs: o.cacheTtlMs ?? 0,
      logger: this.#log,
    });
    try {
      const store = this.#store;
      const rate = o.uploadRate ?? 0;
      this.#upload = createUploadServer({
        host: o.listenHost ?? '0.0.0.0',
        port: o.listenPort ?? 4000,
        provider: {
          openPiece: (id, n) => store.openPiece(id, n),
          whenFetched: (id, n) => this.#downloads.get(id)?.download.whenFetched(n),
        },
        maxConcurrentUploads: this.#uploadSlots,
        ...(rate > 0 ? { rateLimiter: createRateLimiter(rate) } : {}),
        logger: this.#log,
        onUploaded: (_task, _piece, bytes) => {
          this.#uploaded.bytes += bytes;
          this.#uploaded.pieces++;
        },
      });
      await this.#upload.start();
      const listen = o.listenHost ?? '0.0.0.0';
      this.#advertise = o.advertise ?? (listen === '0.0.0.0' || listen === '::' ? firstExternalIPv4() : listen);
      this.#hostId = makeHostId(this.#advertise, this.#upload.port);

      if (o.embeddedScheduler === true) {
        this.#scheduler = createScheduler({ host: '127.0.0.1', port: 0, logger: this.#log, recoveryWindowMs: 0 });
        await this.#scheduler.start();
      }
      const url = this.schedulerUrl;
      if (url !== undefined) {
        this.#link = new SchedulerLink({
          url,
          host: () => this.#hostMessage(),
          heldTasks: () => this.#heldTasks(),
          onSeedTask: (command) => {
            if (command.task !== undefined) this.#seedTask(command.task, command.preheat ? 'preheat' : 'seed');
          },
          logger: this.#log,
        });
        this.#client = this.#link.client;
        this.#link.start();
        await this.#link.waitConnected(2000);
      }
      if (o.api !== undefined) {
        this.#api = createApiServer({ address: o.api, daemon: this, logger: this.#log });
        await this.#api.start();
      }
      if (o.mirror !== undefined) {
        this.#mirror = createMirror({ ...o.mirror, daemon: this, logger: this.#log });
        await this.#mirror.start();
      }
      if (o.proxy !== undefined) {
        this.#proxy = createProxy({ ...o.proxy, daemon: this, logger: this.#log });
        await this.#proxy.start();
      }
      const gcEvery = o.gcIntervalMs ?? 60_000;
      this.#gcTimer = setInterval(() => void this.#gc(), gcEvery);
      this.#gcTimer.unref();
      let lastLoad = -1;
      this.#loadTimer = setInterval(() => {
        const load = this.#upload?.activeUploads ?? 0;
        if (load !== lastLoad) this.#link?.reportLoad(load);
        lastLoad = load;
      }, 1000);
      this.#loadTimer.unref();
      this.#log.info({ host: this.#hostId, upload: this.#upload.port, scheduler: url, seed: o.seed === true }, 'daemon started');
    } catch (err) {
      await this.stop();
      throw toShoalError(err);
    }
  }

  get #uploadSlots(): number {
    return this.#o.uploadSlots ?? (this.#o.seed === true ? 256 : 64);
  }

  #hostMessage(): Host {
    return create(HostSchema, {
      id: this.#hostId,
      hostname: hostname(),
      ip: this.#advertise,
      uploadPort: this.#upload?.port ?? 0,
      idc: this.#o.idc ?? '',
      location: this.#o.location ?? '',
      seed: this.#o.seed === true,
      uploadSlots: this.#uploadSlots,
      uploadLoad: this.#upload?.activeUploads ?? 0,
      uploadRate: BigInt(this.#o.uploadRate ?? 0),
    });
  }

  #peerId(taskId: string): string {
    return `${this.#hostId}/${taskId.slice(0, 16)}`;
  }

  #heldTasks(): HeldTask[] {
    return this.store
      .tasks()
      .filter((t) => t.complete && t.shape !== undefined)
      .map((t) => {
        const numbers = [...t.digests.keys()];
        return create(HeldTaskSchema, {
          taskId: t.id,
          peerId: this.#peerId(t.id),
          metadata: {
            pieceSize: t.shape!.pieceSize,
            ...(t.shape!.contentLength === undefined ? {} : { contentLength: BigInt(t.shape!.contentLength) }),
          },
          pieces: numbers,
          digests: packDigests(numbers.map((n) => t.digests.get(n)!)),
          complete: true,
        });
      });
  }

  #seedTask(spec: TaskSpec, requester: Requester): void {
    try {
      const entry = this.#ensureDownload(spec);
      this.#asked(entry.download.stats, requester);
      entry.pinned = true;
      entry.download.done.catch(() => undefined).finally(() => (entry.pinned = false));
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'seed task rejected');
    }
  }

  #ensureDownload(spec: TaskSpec): { download: TaskDownload; waiters: number; pinned: boolean } {
    const existing = this.#downloads.get(spec.taskId);
    if (existing !== undefined) return existing;
    const download = new TaskDownload({
      spec,
      store: this.store,
      source: this.#source,
      client: this.#client,
      hostId: this.#hostId,
      peerId: this.#peerId(spec.taskId),
      seed: this.#o.seed === true,
      limits: this.#limits,
      logger: this.#log,
    });
    const entry = { download, waiters: 0, pinned: false };
    this.#downloads.set(spec.taskId, entry);
    download.done
      .catch(() => undefined)
      .finally(() => {
        if (this.#downloads.get(spec.taskId) === entry) this.#downloads.delete(spec.taskId);
        this.#history.push(download.stats);
        if (this.#history.length > 200) this.#history.shift();
      });
    void download.start();
    return entry;
  }

  download(request: DownloadRequest, signal?: AbortSignal): DownloadHandle {
    if (this.#stopping !== undefined) throw new ShoalError('ABORTED', 'daemon is stopping');
    const spec = toTaskSpec(request);
    const entry = this.#ensureDownload(spec);
    this.#asked(entry.download.stats, request.requester ?? 'get');
    entry.waiters++;
    const release = (): void => {
      entry.waiters--;
      if (entry.waiters <= 0 && !entry.pinned) entry.download.cancel(new ShoalError('ABORTED', 'no caller is waiting for this task'));
    };
    const done = new Promise<StoredTask>((resolve, reject) => {
      const onAbort = (): void => {
        const reason: unknown = signal?.reason;
        reject(reason instanceof ShoalError ? reason : new ShoalError('ABORTED', 'download cancelled'));
      };
      if (signal?.aborted === true) onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      entry.download.done.then(resolve, reject).finally(() => signal?.removeEventListener('abort', onAbort));
    });
    done.then(
      () => (entry.waiters--, undefined),
      () => release(),
    );
    return {
      taskId: spec.taskId,
      stats: entry.download.stats,
      done,
      onProgress: (listener) => {
        entry.download.on('progress', listener);
        return () => entry.download.off('progress', listener);
      },
    };
  }

  #asked(stats: TaskStats, requester: Requester): void {
    let set = this.#requesters.get(stats);
    if (set === undefined) this.#requesters.set(stats, (set = new Set()));
    set.add(requester);
  }

  preheat(input: PreheatInput, signal: AbortSignal): AsyncIterable<PreheatEvent> {
    if (this.#stopping !== undefined) throw new ShoalError('ABORTED', 'daemon is stopping');
    return runPreheat(input, { client: this.#client, upstreams: this.#o.mirror?.upstreams ?? [] }, signal);
  }

  stats(): DaemonStats {
    const live = [...this.#downloads.values()].map((e) => e.download.stats);
    const all = [...this.#history.filter((s) => !live.includes(s)), ...live];
    const totals = { cache: 0, peers: 0, seeds: 0, source: 0, backToSource: 0 };
    const since = Date.now() - RECENT_WINDOW_MS;
    const recent = { windowMs: RECENT_WINDOW_MS, tasks: 0, bytes: 0, cache: 0, peers: 0, seeds: 0, source: 0, backToSource: 0 };
    for (const s of all) {
      totals.cache += s.bytes.cache;
      totals.peers += s.bytes.peers;
      totals.seeds += s.bytes.seeds;
      totals.source += s.bytes.source;
      totals.backToSource += s.backToSourceEvents.length;
      if ((s.finishedAt ?? Date.now()) < since) continue;
      recent.tasks++;
      recent.cache += s.bytes.cache;
      recent.peers += s.bytes.peers;
      recent.seeds += s.bytes.seeds;
      recent.source += s.bytes.source;
      recent.bytes += s.bytes.cache + s.bytes.peers + s.bytes.seeds + s.bytes.source;
      recent.backToSource += s.backToSourceEvents.filter((e) => Date.parse(e.at) >= since).length;
    }
    return {
      hostId: this.#hostId,
      seed: this.#o.seed === true,
      scheduler: { url: this.schedulerUrl, connected: this.#link?.connected ?? false },
      uploads: { active: this.#upload?.activeUploads ?? 0, ...this.#uploaded },
      cache: { usedBytes: this.#store?.usedBytes() ?? 0, tasks: this.#store?.tasks().length ?? 0 },
      totals,
      recent,
      tasks: all.map((s) => ({ ...s.toJSON(), requesters: [...(this.#requesters.get(s) ?? [])] })),
      ...(this.#mirror === undefined ? {} : { mirror: this.#mirror.stats() }),
      ...(this.#proxy === undefined ? {} : { proxy: this.#proxy.stats() }),
    };
  }

  async #gc(): Promise<void> {
    try {
      const evicted = await this.store.gc();
      this.#link?.reportEvicted(evicted);
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'cache gc failed');
    }
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (this.#gcTimer !== undefined) clearInterval(this.#gcTimer);
      if (this.#loadTimer !== undefined) clearInterval(this.#loadTimer);
      await this.#proxy?.stop().catch(() => undefined);
      await this.#mirror?.stop().catch(() => undefined);
      await this.#api?.stop().catch(() => undefined);
      for (const { download } of this.#downloads.values()) download.cancel(new ShoalError('ABORTED', 'daemon stopping'));
      await Promise.allSettled([...this.#downloads.values()].map((e) => e.download.done));
      await this.#link?.stop().catch(() => undefined);
      await this.#upload?.stop().catch(() => undefined);
      await this.#scheduler?.stop().catch(() => undefined);
      await this.#source.close().catch(() => undefined);
      await this.#store?.close().catch(() => undefined);
      this.#log.info('daemon stopped');
    })();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

export function createDaemon(options: DaemonOptions): Daemon {
  return new ShoalDaemon(options);
}

