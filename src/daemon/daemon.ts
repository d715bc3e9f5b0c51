/**
 * `createDaemon(options)`: a peer (or, with `seed`, a seed peer). Owns the
 * piece store, the upload server, the scheduler link and the local API, and
 * runs one TaskDownload per task however many callers want it.
 */
import { create } from '@bufbuild/protobuf';
import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { HeldTaskSchema, HostSchema, type HeldTask, type Host, type TaskSpec } from '../gen/shoal/v1/scheduler_pb.js';
import { validateConfig } from '../common/config/load.js';
import { DaemonConfigSchema, embeddedSchedulerInit, uploadSlots, type DaemonConfig, type DaemonInit } from '../common/config/schema.js';
import { splitHostPort } from '../common/config/fields.js';
import { ShoalError, toShoalError } from '../common/errors.js';
import { formatAddress } from '../common/listen.js';
import { hostId as makeHostId } from '../common/ids.js';
import { silentLogger, type Logger } from '../common/log.js';
import { packDigests } from '../common/pieces.js';
import { createScheduler, type SchedulerService } from '../scheduler/server.js';
import { createApiServer, type ApiServer } from './api/server.js';
import { TaskDownload } from './download/task-download.js';
import type { TaskStats } from './download/task-stats.js';
import { toTaskSpec, type DownloadRequest, type Requester } from './request.js';
import { SchedulerLink, type SchedulerClient } from './scheduler-link.js';
import { createMirror, type Mirror } from './mirror/server.js';
import { runPreheat, type PreheatEvent, type PreheatInput } from './preheat/run.js';
import { createProxy, type Proxy } from './proxy/server.js';
import { createHttpSource, type HttpSource } from './source/http-source.js';
import { PieceStore, type StoredTask } from './storage/store.js';
import { createRateLimiter } from './upload/rate-limiter.js';
import { createUploadServer, type UploadServer } from './upload/server.js';

/** What the daemon is given besides its settings. */
export interface DaemonDeps {
  /** Default: silent. */
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
  /** Its settings, parsed: every default applied. */
  readonly settings: DaemonConfig;
  readonly hostId: string;
  /** Where its local listeners are, once started: api, mirror, proxy (absent when not run). */
  readonly addresses: Readonly<Partial<Record<'api' | 'mirror' | 'proxy', string>>>;
  readonly uploadPort: number;
  /** The registry mirror's port, when it runs. */
  readonly mirrorPort: number | undefined;
  /** The HTTP proxy's port, when it runs. */
  readonly proxyPort: number | undefined;
  readonly schedulerUrl: string | undefined;
  /** The scheduler it runs in-process when `scheduler` is not set (after start). */
  readonly embeddedScheduler: SchedulerService | undefined;
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
  readonly settings: DaemonConfig;
  readonly #log: Logger;
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
  #source: HttpSource | undefined;
  #gcTimer: NodeJS.Timeout | undefined;
  #loadTimer: NodeJS.Timeout | undefined;
  #hostId = '';
  #advertise = '';
  #uploaded = { bytes: 0, pieces: 0 };
  #started = false;
  #stopping: Promise<void> | undefined;

  readonly #dataDir: string;

  constructor(settings: DaemonConfig, deps: DaemonDeps) {
    if (settings.data === undefined) throw new ShoalError('CONFIG_INVALID', 'daemon settings: data: a data directory is required');
    this.settings = settings;
    this.#dataDir = settings.data;
    this.#log = deps.logger ?? silentLogger;
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

  get addresses(): Readonly<Partial<Record<'api' | 'mirror' | 'proxy', string>>> {
    const s = this.settings;
    const out: Partial<Record<'api' | 'mirror' | 'proxy', string>> = {};
    if (this.#api !== undefined && s.api !== undefined) out.api = s.api;
    if (this.#mirror !== undefined && s.mirror?.listen !== undefined) out.mirror = formatAddress({ host: splitHostPort(s.mirror.listen).host, port: this.#mirror.port });
    if (this.#proxy !== undefined && s.proxy?.listen !== undefined) out.proxy = formatAddress({ host: proxyAddress(s.proxy.listen).host, port: this.#proxy.port });
    return out;
  }

  get embeddedScheduler(): SchedulerService | undefined {
    return this.#scheduler;
  }

  get schedulerUrl(): string | undefined {
    return this.#scheduler?.url ?? this.settings.scheduler;
  }

  get store(): PieceStore {
    if (this.#store === undefined) throw new ShoalError('INTERNAL', 'daemon not started');
    return this.#store;
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const s = this.settings;
    try {
      const sourceCa = s.source.ca === undefined ? undefined : readPem(s.source.ca, 'source.ca');
      const upstreams = (s.mirror?.upstreams ?? []).map((u, i) => ({ ...u, ca: u.ca === undefined ? undefined : readPem(u.ca, `mirror.upstreams.${i}.ca`) }));
      // Blobs the mirror asks for come through this source: it trusts the mirror's registry CAs too.
      const cas = [sourceCa, ...upstreams.map((u) => u.ca)].filter((c): c is string => c !== undefined);
      this.#source = createHttpSource({
        retries: s.source.retries,
        idleTimeoutMs: s.source.timeout,
        insecure: s.source.insecure,
        ...(cas.length === 0 ? {} : { ca: cas.join('\n') }),
        logger: this.#log,
      });
      const store = (this.#store = new PieceStore({ dataDir: this.#dataDir, cache: s.cache, logger: this.#log }));
      await store.start();
      const rate = s.upload.rate;
      const listen = splitHostPort(s.listen);
      this.#upload = createUploadServer({
        host: listen.host,
        port: listen.port,
        provider: {
          openPiece: (id, n) => store.openPiece(id, n),
          whenFetched: (id, n) => this.#downloads.get(id)?.download.whenFetched(n),
        },
        maxConcurrentUploads: uploadSlots(s),
        ...(rate > 0 ? { rateLimiter: createRateLimiter(rate) } : {}),
        logger: this.#log,
        onUploaded: (_task, _piece, bytes) => {
          this.#uploaded.bytes += bytes;
          this.#uploaded.pieces++;
        },
      });
      await this.#upload.start();
      this.#advertise = s.advertise ?? (listen.host === '0.0.0.0' || listen.host === '::' ? firstExternalIPv4() : listen.host);
      this.#hostId = makeHostId(this.#advertise, this.#upload.port);

      if (s.scheduler === undefined) {
        this.#scheduler = createScheduler(embeddedSchedulerInit(s.logLevel), { logger: this.#log });
        await this.#scheduler.start();
      }
      const url = this.schedulerUrl!;
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
      if (s.api !== undefined) {
        this.#api = createApiServer({ address: s.api, daemon: this, logger: this.#log });
        await this.#api.start();
      }
      const m = s.mirror;
      if (m?.listen !== undefined) {
        const at = splitHostPort(m.listen);
        this.#mirror = createMirror({
          host: at.host,
          port: at.port,
          upstreams,
          defaultUpstream: m.upstream,
          tagTtlMs: m.tagTtl,
          authTtlMs: m.authTtl,
          manifestCacheBytes: m.manifestCache,
          upstreamTimeoutMs: m.upstreamTimeout,
          prefetch: m.prefetch,
          daemon: this,
          logger: this.#log,
        });
        await this.#mirror.start();
      }
      const p = s.proxy;
      if (p?.listen !== undefined) {
        const at = proxyAddress(p.listen);
        this.#proxy = createProxy({
          host: at.host,
          port: at.port,
          rules: p.rules,
          upstreamTimeoutMs: p.upstreamTimeout,
          connectTimeoutMs: p.connectTimeout,
          tunnelIdleTimeoutMs: p.tunnelIdleTimeout,
          daemon: this,
          logger: this.#log,
        });
        await this.#proxy.start();
      }
      this.#gcTimer = setInterval(() => void this.#gc(), s.cache.gcInterval);
      this.#gcTimer.unref();
      let lastLoad = -1;
      this.#loadTimer = setInterval(() => {
        const load = this.#upload?.activeUploads ?? 0;
        if (load !== lastLoad) this.#link?.reportLoad(load);
        lastLoad = load;
      }, 1000);
      this.#loadTimer.unref();
      this.#log.info({ host: this.#hostId, upload: this.#upload.port, scheduler: url, seed: s.seed }, 'daemon started');
    } catch (err) {
      await this.stop();
      throw toShoalError(err);
    }
  }

  #hostMessage(): Host {
    return create(HostSchema, {
      id: this.#hostId,
      hostname: hostname(),
      ip: this.#advertise,
      uploadPort: this.#upload?.port ?? 0,
      idc: this.settings.idc,
      location: this.settings.location,
      seed: this.settings.seed,
      uploadSlots: uploadSlots(this.settings),
      uploadLoad: this.#upload?.activeUploads ?? 0,
      uploadRate: BigInt(this.settings.upload.rate),
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
      source: this.#source!,
      client: this.#client,
      hostId: this.#hostId,
      peerId: this.#peerId(spec.taskId),
      seed: this.settings.seed,
      settings: this.settings.download,
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
      if (entry.waiters <= 0 && !entry.pinned) void entry.download.destroy(new ShoalError('ABORTED', 'no caller is waiting for this task'));
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
    return runPreheat(input, { client: this.#client, upstreams: (this.settings.mirror?.upstreams ?? []).map(({ ca: _ca, ...u }) => u) }, signal);
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
      seed: this.settings.seed,
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
      for (const { download } of this.#downloads.values()) void download.destroy(new ShoalError('ABORTED', 'daemon stopping'));
      await Promise.allSettled([...this.#downloads.values()].map((e) => e.download.done));
      await this.#link?.stop().catch(() => undefined);
      await this.#upload?.stop().catch(() => undefined);
      await this.#scheduler?.stop().catch(() => undefined);
      await this.#source?.close().catch(() => undefined);
      await this.#store?.stop();
      this.#log.info('daemon stopped');
    })();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** Parses `init` through the schema (CONFIG_INVALID naming the key); the daemon is not started. */
export function createDaemon(init: DaemonInit, deps: DaemonDeps = {}): Daemon {
  return new ShoalDaemon(validateConfig(DaemonConfigSchema, init, 'daemon settings'), deps);
}

function readPem(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ShoalError('CONFIG_INVALID', `${key}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** `proxy.listen` (--proxy): HOST:PORT, or a bare port on loopback. */
export function proxyAddress(value: string | number): { host: string; port: number } {
  const text = String(value);
  if (!/^\d{1,5}$/.test(text)) return splitHostPort(text);
  if (Number(text) > 65535) throw new ShoalError('CONFIG_INVALID', `proxy port ${text} is over 65535`);
  return { host: '127.0.0.1', port: Number(text) };
}

