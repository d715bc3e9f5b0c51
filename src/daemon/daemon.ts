/**
 * `createDaemon(init)`: a peer (or, with `seed`, a seed peer). It composes
 * the piece store, the origin client, the downloads, the upload server, the
 * scheduler link (and, without `scheduler`, a scheduler of its own), the
 * local API, the registry mirror and the HTTP proxy, starts them in that
 * order and stops them in reverse.
 */
import { readFileSync } from 'node:fs';
import { validateConfig } from '../common/config/load.js';
import { splitHostPort } from '../common/config/fields.js';
import { DaemonConfigSchema, embeddedSchedulerInit, schedulerList, uploadSlots, type DaemonConfig, type DaemonInit } from '../common/config/schema.js';
import { ShoalError, toShoalError } from '../common/errors.js';
import { hostId as makeHostId } from '../common/ids.js';
import { Service, type Lifecycle } from '../common/lifecycle.js';
import { formatAddress } from '../common/listen.js';
import { silentLogger, type Logger } from '../common/log.js';
import { loadTls } from '../identity/tls.js';
import { createScheduler, type SchedulerService } from '../scheduler/server.js';
import { defaultAdvertise, heldTasks, hostMessage } from './announce.js';
import { createApiServer } from './api/server.js';
import type { DownloadedContent, DownloadHandle, DownloadService } from './download-service.js';
import { Downloads } from './downloads.js';
import { OriginAccess } from './origin-access.js';
import { createMirror, type Mirror } from './mirror/server.js';
import { runPreheat, type PreheatEvent, type PreheatInput } from './preheat/run.js';
import { createProxy, proxyAddress, type Proxy } from './proxy/server.js';
import type { UpstreamEntry } from './registry/upstream.js';
import type { DownloadRequest } from './request.js';
import { SchedulerPool } from './scheduler-pool.js';
import { createHttpSource, type HttpSource } from './source/http-source.js';
import type { AwsEnv } from './source/s3/credentials.js';
import { daemonStats, type DaemonStats } from './stats.js';
import { PieceStore } from './storage/store.js';
import { createRateLimiter, rateLimitJson, type RateLimiter } from '../common/rate-limiter.js';
import { createDaemonMetrics } from './metrics.js';
import { MetricsServer, metricsAddress } from '../common/metrics/server.js';
import type { Registry } from 'prom-client';
import { createUploadServer, type UploadServer } from './upload/server.js';
import { createCacheService, type CacheService } from './cache/service.js';

export type { DaemonStats } from './stats.js';
export type { DownloadHandle } from './download-service.js';

/** What the daemon is given besides its settings. */
export interface DaemonDeps {
  /** Default: silent. */
  logger?: Logger;
  /** The environment s3: sources read their credentials and region from (AWS_*, HOME for ~/.aws); default process.env. */
  env?: AwsEnv;
}

export interface Daemon extends Lifecycle, DownloadService {
  /** Its settings, parsed: every default applied. */
  readonly settings: DaemonConfig;
  readonly hostId: string;
  readonly uploadPort: number;
  /** Where its local listeners are, once started: api, mirror, proxy (absent when not run). */
  readonly addresses: Readonly<Partial<Record<'api' | 'mirror' | 'proxy' | 'metrics', string>>>;
  /** The registry mirror's port, when it runs. */
  readonly mirrorPort: number | undefined;
  /** The HTTP proxy's port, when it runs. */
  readonly proxyPort: number | undefined;
  /** Its first scheduler's URL (see schedulerUrls). */
  readonly schedulerUrl: string | undefined;
  /** Every scheduler it keeps a host stream to. */
  readonly schedulerUrls: readonly string[];
  /** The scheduler it runs in-process when `scheduler` is not set (after start). */
  readonly embeddedScheduler: SchedulerService | undefined;
  readonly store: PieceStore;
  /** Has seed peers fetch URLs or an image's blobs ahead of demand (through the scheduler); events end with `end`. */
  preheat(input: PreheatInput, signal: AbortSignal): AsyncIterable<PreheatEvent>;
  stats(): DaemonStats;
  /** `shoal cache` (after start). */
  readonly cache: CacheService | undefined;
}

/** Parses `init` through the schema (CONFIG_INVALID naming the key); the daemon is not started. */
export function createDaemon(init: DaemonInit, deps: DaemonDeps = {}): Daemon {
  return new ShoalDaemon(validateConfig(DaemonConfigSchema, init, 'daemon settings'), deps);
}

/** How often the upload load is reported to the scheduler (when it changed). */
const LOAD_REPORT_MS = 1000;

class ShoalDaemon extends Service implements Daemon {
  protected readonly serviceName = 'daemon';
  readonly settings: DaemonConfig;
  readonly #dataDir: string;
  readonly #log: Logger;
  readonly #env: AwsEnv;
  /** Started in this order, stopped in reverse. */
  readonly #components: Lifecycle[] = [];
  #store: PieceStore | undefined;
  #source: HttpSource | undefined;
  #downloads: Downloads | undefined;
  #upload: UploadServer | undefined;
  #scheduler: SchedulerService | undefined;
  #link: SchedulerPool | undefined;
  #mirror: Mirror | undefined;
  #proxy: Proxy | undefined;
  #upstreams: UpstreamEntry[] = [];
  /** The daemon's rate limits that are set: uploads, downloads (every byte received), back to source. */
  readonly #limits: Partial<Record<'upload' | 'download' | 'source', RateLimiter>> = {};
  #metrics: MetricsServer | undefined;
  #cache: CacheService | undefined;
  #timers: NodeJS.Timeout[] = [];
  #hostId = '';
  #advertise = '';
  #uploaded = { bytes: 0, pieces: 0 };
  #addresses: Partial<Record<'api' | 'mirror' | 'proxy' | 'metrics', string>> = {};

  constructor(settings: DaemonConfig, deps: DaemonDeps) {
    super();
    if (settings.data === undefined) throw new ShoalError('CONFIG_INVALID', 'daemon settings: data: a data directory is required');
    this.settings = settings;
    this.#dataDir = settings.data;
    this.#log = deps.logger ?? silentLogger;
    this.#env = deps.env ?? process.env;
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

  get addresses(): Readonly<Partial<Record<'api' | 'mirror' | 'proxy' | 'metrics', string>>> {
    return this.#addresses;
  }

  get embeddedScheduler(): SchedulerService | undefined {
    return this.#scheduler;
  }

  get schedulerUrl(): string | undefined {
    return this.schedulerUrls[0];
  }

  /** Every scheduler it keeps a host stream to (a name resolving to several: each address, once started). */
  get schedulerUrls(): string[] {
    if (this.#scheduler !== undefined) return [this.#scheduler.url];
    if (this.#link !== undefined) return this.#link.urls;
    return schedulerList(this.settings.scheduler);
  }

  get cache(): CacheService | undefined {
    return this.#cache;
  }

  get store(): PieceStore {
    if (this.#store === undefined) throw new ShoalError('INTERNAL', 'daemon not started');
    return this.#store;
  }

  download(request: DownloadRequest, signal?: AbortSignal): DownloadHandle {
    if (this.#downloads === undefined) throw new ShoalError('ABORTED', 'the daemon is not running');
    return this.#downloads.download(request, signal);
  }

  held(taskId: string): DownloadedContent | undefined {
    return this.#downloads?.held(taskId);
  }

  preheat(input: PreheatInput, signal: AbortSignal): AsyncIterable<PreheatEvent> {
    if (this.state !== 'running' || this.#link === undefined) throw new ShoalError('ABORTED', 'the daemon is not running');
    const pool = this.#link;
    return runPreheat(input, { client: (taskId) => pool.clientFor(taskId), upstreams: this.#upstreams }, signal);
  }

  stats(): DaemonStats {
    return daemonStats(
      {
        hostId: this.#hostId,
        seed: this.settings.seed,
        scheduler: { url: this.schedulerUrl, connected: this.#link?.connected ?? false },
        uploads: { active: this.#upload?.activeUploads ?? 0, ...this.#uploaded },
        cache: {
          usedBytes: this.#store?.usedBytes() ?? 0,
          tasks: this.#store?.tasks().length ?? 0,
          memoryBytes: this.#store?.recent.bytes ?? 0,
          pieceReads: { ...(this.#store?.recent.reads ?? { memory: 0, file: 0 }) },
        },
        ...(this.#mirror === undefined ? {} : { mirror: this.#mirror.stats() }),
        ...(this.#proxy === undefined ? {} : { proxy: this.#proxy.stats() }),
        limits: Object.fromEntries(Object.entries(this.#limits).map(([kind, limiter]) => [kind, rateLimitJson(limiter)])),
      },
      this.#downloads?.records() ?? [],
    );
  }

  protected async onStart(): Promise<void> {
    try {
      await this.#startComponents();
    } catch (err) {
      throw toShoalError(err);
    }
    this.#log.info({ host: this.#hostId, upload: this.uploadPort, scheduler: this.schedulerUrl, seed: this.settings.seed }, 'daemon started');
  }

  async #startComponents(): Promise<void> {
    const s = this.settings;
    // A seed peer's certificate must carry the seed role; any daemon's, peer or seed.
    const tls = s.tls === undefined ? undefined : loadTls(s.tls, s.seed ? ['seed'] : ['peer', 'seed']);
    const sourceCa = s.source.ca === undefined ? undefined : readPem(s.source.ca, 'source.ca');
    this.#upstreams = (s.mirror?.upstreams ?? []).map((u, i) => ({ ...u, ca: u.ca === undefined ? undefined : readPem(u.ca, `mirror.upstreams.${i}.ca`) }));
    // Blobs the mirror asks for come through this source: it trusts the mirror's registry CAs too.
    const cas = [sourceCa, ...this.#upstreams.map((u) => u.ca)].filter((c): c is string => c !== undefined);
    const source = createHttpSource(s.source, { ...(cas.length === 0 ? {} : { ca: cas.join('\n') }), logger: this.#log, env: this.#env });
    this.#source = source;
    const store = new PieceStore({ dataDir: this.#dataDir, cache: s.cache, logger: this.#log, directIo: s.cache.directIo, recentBytes: s.cache.recentPieces });
    this.#store = store;
    await store.start();

    const listen = splitHostPort(s.listen);
    if (s.upload.rate > 0) this.#limits.upload = createRateLimiter(s.upload.rate);
    if (s.download.rate > 0) this.#limits.download = createRateLimiter(s.download.rate);
    if (s.source.rate > 0) this.#limits.source = createRateLimiter(s.source.rate);
    this.#upload = await this.#run(
      createUploadServer({
        host: listen.host,
        port: listen.port,
        tls,
        insecure: s.insecure,
        provider: {
          openPiece: (id, n) => store.openPiece(id, n),
          whenFetched: (id, n) => this.#downloads?.whenFetched(id, n),
        },
        maxConcurrentUploads: uploadSlots(s),
        ...(this.#limits.upload === undefined ? {} : { rateLimiter: this.#limits.upload }),
        logger: this.#log,
        onUploaded: (_task, _piece, bytes) => {
          this.#uploaded.bytes += bytes;
          this.#uploaded.pieces++;
        },
      }),
    );
    this.#advertise = s.advertise ?? defaultAdvertise(listen.host);
    this.#hostId = makeHostId(this.#advertise, this.#upload.port);

    if (s.scheduler === undefined) this.#scheduler = await this.#run(createScheduler(embeddedSchedulerInit(s.logLevel), { logger: this.#log }));
    const link = new SchedulerPool({
      urls: this.#scheduler === undefined ? schedulerList(s.scheduler) : [this.#scheduler.url],
      // The scheduler this process runs is reached on loopback, without TLS.
      tls: this.#scheduler === undefined ? tls : undefined,
      host: () => hostMessage(s, { id: this.#hostId, advertise: this.#advertise, uploadPort: this.uploadPort }, this.#upload?.activeUploads ?? 0),
      heldTasks: () => heldTasks(store.tasks(), (id) => this.#downloads!.peerId(id)),
      onSeedTask: (command) => {
        if (command.task === undefined) return;
        const cache = command.cache === undefined ? undefined : { id: command.cache.id, replicas: command.cache.replicas, expiresAt: Number(command.cache.expiresAtMs) };
        this.#downloads?.seedTask(command.task, command.preheat ? 'preheat' : 'seed', cache);
      },
      onDropTask: (taskId) => {
        // Only a cache task (no origin: an import, a copy, or an export of one) is dropped on a scheduler's word.
        const held = store.get(taskId);
        if (held !== undefined && (held.cache !== undefined || held.url === '')) void store.delete(taskId).catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'dropping a cache task failed'));
      },
      logger: this.#log,
    });
    this.#link = link;
    this.#downloads = await this.#run(
      new Downloads({
        store,
        source,
        client: (taskId) => link.clientFor(taskId),
        hostId: () => this.#hostId,
        seed: s.seed,
        settings: s.download,
        tls,
        access: new OriginAccess(source, s.source.accessTtl),
        limits: { download: this.#limits.download, source: this.#limits.source },
        logger: this.#log,
      }),
    );
    await this.#run(link);
    await link.waitConnected(2000);
    this.#cache = createCacheService({ store, client: (taskId) => link.clientFor(taskId), clients: () => link.connectedClients(), hostId: () => this.#hostId, peerId: (id) => this.#downloads!.peerId(id) });

    if (s.api !== undefined) {
      await this.#run(createApiServer({ address: s.api, backend: this, logger: this.#log }));
      this.#addresses.api = s.api;
    }
    if (s.mirror?.listen !== undefined) {
      this.#mirror = await this.#run(createMirror(s.mirror, { downloads: this, upstreams: this.#upstreams, insecure: s.insecure, logger: this.#log }));
      this.#addresses.mirror = formatAddress({ host: splitHostPort(s.mirror.listen).host, port: this.#mirror.port });
    }
    if (s.proxy?.listen !== undefined) {
      this.#proxy = await this.#run(createProxy(s.proxy, { downloads: this, hostId: () => this.#hostId, insecure: s.insecure, logger: this.#log }));
      this.#addresses.proxy = formatAddress({ host: proxyAddress(s.proxy.listen).host, port: this.#proxy.port });
    }
    if (s.metrics !== undefined) {
      this.#metrics = await this.#run(new MetricsServer({ listen: s.metrics.listen, registry: this.#metricsRegistry(store), tls, insecure: s.insecure }));
      this.#addresses.metrics = formatAddress({ host: metricsAddress(s.metrics.listen).host, port: this.#metrics.port });
    }
    this.#every(s.cache.gcInterval, () => void this.#gc());
    let lastLoad = -1;
    this.#every(LOAD_REPORT_MS, () => {
      const load = this.#upload?.activeUploads ?? 0;
      if (load !== lastLoad) link.reportLoad(load);
      lastLoad = load;
    });
  }

  #metricsRegistry(store: PieceStore): Registry {
    return createDaemonMetrics({
      records: () => this.#downloads?.records() ?? [],
      uploads: () => ({ ...this.#uploaded, active: this.#upload?.activeUploads ?? 0, slots: uploadSlots(this.settings) }),
      rateLimiters: () => this.#limits,
      mirror: () => this.#mirror?.stats(),
      proxy: () => this.#proxy?.stats(),
      storage: () => ({ usedBytes: store.usedBytes(), tasks: store.tasks().length, dataDir: this.#dataDir, memoryBytes: store.recent.bytes, pieceReads: store.recent.reads }),
      schedulerConnected: () => this.#link?.connected ?? false,
    });
  }

  /** Starts a component and records it for stop(). */
  async #run<C extends Lifecycle>(component: C): Promise<C> {
    this.#components.push(component);
    await component.start();
    return component;
  }

  #every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    timer.unref();
    this.#timers.push(timer);
  }

  async #gc(): Promise<void> {
    try {
      const evicted = await this.store.gc();
      this.#link?.reportEvicted(evicted);
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'cache gc failed');
    }
  }

  /**
   * Front ends first (nobody new asks), then the downloads (cancelled, pieces
   * kept), the scheduler link (the host leaves), the upload server (drained),
   * the embedded scheduler, the origin client and the store.
   */
  protected async onStop(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    const inOrder = [this.#downloads, this.#link, this.#upload, this.#scheduler];
    const front = this.#components.filter((c) => !inOrder.includes(c as never));
    for (const c of [...front.reverse(), ...inOrder]) if (c !== undefined) await this.#end(c);
    await this.#source?.close().catch(() => undefined);
    await this.#store?.stop();
    this.#log.info('daemon stopped');
  }

  /** stop(), or destroy() when the daemon itself is being destroyed. */
  #end(component: Lifecycle): Promise<void> {
    return (this.destroyed.aborted ? component.destroy(this.destroyed.reason) : component.stop()).catch(() => undefined);
  }
}

function readPem(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ShoalError('CONFIG_INVALID', `${key}: cannot read ${path}: ${(err as Error).message}`);
  }
}
