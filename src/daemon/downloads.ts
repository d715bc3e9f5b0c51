/**
 * The daemon's downloads: one TaskDownload per task however many callers
 * want it (`shoal get`, the mirror, the proxy, a seed command), kept while a
 * caller waits or a seed command pins it, and a short history of finished
 * ones for `shoal status`. Implements the DownloadService port.
 */
import type { TaskSpec } from '../gen/shoal/v1/scheduler_pb.js';
import { carriesCredentials } from '../common/credentials.js';
import type { TlsMaterial } from '../identity/tls.js';
import type { OriginAccess } from './origin-access.js';
import type { DownloadSettings } from '../common/config/schema.js';
import { ShoalError } from '../common/errors.js';
import { Service } from '../common/lifecycle.js';
import type { Logger } from '../common/log.js';
import type { DownloadedContent, DownloadHandle, DownloadService } from './download-service.js';
import { TaskDownload } from './download/task-download.js';
import { createRateLimiter, type RateLimiter } from '../common/rate-limiter.js';
import type { TaskStats } from './download/task-stats.js';
import { toTaskSpec, type DownloadRequest, type Requester } from './request.js';
import type { SchedulerClient } from './scheduler-link.js';
import type { HttpSource } from './source/http-source.js';
import type { CacheInfo, PieceStore, StoredTask } from './storage/store.js';

/** Finished downloads remembered for `shoal status`. */
const HISTORY = 200;

export interface DownloadsDeps {
  store: PieceStore;
  source: HttpSource;
  /** The scheduler, or the one a task lives on (./scheduler-pool.ts). */
  client: SchedulerClient | ((taskId: string) => SchedulerClient);
  /** This host's ID (known once the upload server listens). */
  hostId: () => string;
  seed: boolean;
  settings: DownloadSettings;
  /** The cluster's mutual TLS for parents; undefined: plain TCP. */
  tls: TlsMaterial | undefined;
  /** Checks a requester's own credentials for private content with the origin. */
  access: OriginAccess;
  /** The daemon-wide download and back-to-source limits (absent: none). */
  limits?: { download?: RateLimiter | undefined; source?: RateLimiter | undefined };
  logger: Logger;
}

interface Entry {
  readonly download: TaskDownload;
  /** Callers waiting for it. */
  waiters: number;
  /** Asked by the scheduler (seed, preheat): runs to the end whoever waits. */
  pinned: boolean;
  /** The callers' own cap (`--limit-rate`): the lowest any of them asked for; undefined: none asked. */
  limiter: RateLimiter | undefined;
}

/**
 * A caller with a `--limit-rate` joins a task: the task's own cap becomes the
 * lowest asked for so far (a caller without one does not lift another's).
 */
export function lowerTaskLimit(entry: Pick<Entry, 'limiter'>, rate: number | undefined): void {
  if (rate === undefined || rate <= 0) return;
  if (entry.limiter === undefined) entry.limiter = createRateLimiter(rate);
  else if (rate < entry.limiter.rate) entry.limiter.setRate(rate);
}

/**
 * Whether a requester must show the origin its own credentials first: the
 * task is private (fetched with credentials, here or elsewhere), or the
 * request carries credentials of its own (else an invalid token would get
 * what others fetched). The mirror checks with the registry itself
 * (../mirror/access.ts).
 */
function needsAccessCheck(task: StoredTask, request: DownloadRequest): boolean {
  if (request.requester === 'mirror') return false;
  return task.private || carriesCredentials(request);
}

/** Why a caller's download ended when its signal aborted: the signal's ShoalError, else ABORTED. */
function cancelled(signal: AbortSignal): ShoalError {
  const reason: unknown = signal.reason;
  return reason instanceof ShoalError ? reason : new ShoalError('ABORTED', 'download cancelled');
}

/** A download and who asked for it. */
export interface DownloadRecord {
  readonly stats: TaskStats;
  readonly requesters: readonly Requester[];
}

export class Downloads extends Service implements DownloadService {
  protected readonly serviceName = 'downloads';
  readonly #deps: DownloadsDeps;
  readonly #active = new Map<string, Entry>();
  readonly #history: TaskStats[] = [];
  /** Who asked for each download (by its stats object, so a later download of the task starts afresh). */
  readonly #requesters = new WeakMap<TaskStats, Set<Requester>>();

  constructor(deps: DownloadsDeps) {
    super();
    this.#deps = deps;
  }

  /** The peer ID of this host's peer in a task's swarm. */
  peerId(taskId: string): string {
    return `${this.#deps.hostId()}/${taskId.slice(0, 16)}`;
  }

  download(request: DownloadRequest, signal?: AbortSignal): DownloadHandle {
    if (this.state !== 'running') throw new ShoalError('ABORTED', 'the daemon is stopping');
    // A caller already gone starts (or joins) nothing: there would be nobody to release it.
    if (signal?.aborted === true) throw cancelled(signal);
    const spec = toTaskSpec(request);
    const entry = this.#ensure(spec);
    this.#asked(entry.download.stats, request.requester ?? 'get');
    lowerTaskLimit(entry, request.limitRate);
    entry.download.stats.limiter = entry.limiter;
    entry.waiters++;
    const release = (): void => {
      entry.waiters--;
      if (entry.waiters <= 0 && !entry.pinned) void entry.download.destroy(new ShoalError('ABORTED', 'no caller is waiting for this task'));
    };
    const done = new Promise<DownloadedContent>((resolve, reject) => {
      const onAbort = (): void => reject(cancelled(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });
      entry.download.done
        .then(async (task) => {
          if (needsAccessCheck(task, request)) await this.#deps.access.check(task.id, request, task.shape?.contentLength ?? 0, signal);
          resolve(this.#content(task));
        })
        .catch(reject)
        .finally(() => signal?.removeEventListener('abort', onAbort));
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
      onPiece: (listener) => {
        const onStored = (_: TaskStats, n?: number): void => {
          if (n !== undefined) listener(n);
        };
        entry.download.on('progress', onStored);
        return () => entry.download.off('progress', onStored);
      },
      partial: () => {
        const task = this.#deps.store.get(spec.taskId);
        const shape = task?.shape;
        if (task === undefined || shape?.contentLength === undefined || needsAccessCheck(task, request)) return undefined;
        return { path: task.path, pieceSize: shape.pieceSize, contentLength: shape.contentLength, generation: task.generation };
      },
      shape: () => this.#deps.store.get(spec.taskId)?.shape,
      openPiece: (n) => this.#deps.store.openPiece(spec.taskId, n),
    };
  }

  held(taskId: string): DownloadedContent | undefined {
    const task = this.#deps.store.get(taskId);
    return task?.complete === true ? this.#content(task) : undefined;
  }

  /**
   * The scheduler asks this host to fetch a task (a seed peer's first
   * download, a preheat, or a copy of a cache task, kept as one: `cache`).
   */
  seedTask(spec: TaskSpec, requester: Requester, cache?: CacheInfo): void {
    if (this.state !== 'running') return;
    try {
      const entry = this.#ensure(spec);
      this.#asked(entry.download.stats, requester);
      entry.pinned = true;
      entry.download.done
        .then((task) => (cache === undefined ? undefined : this.#deps.store.setCache(task, cache)))
        .catch(() => undefined)
        .finally(() => (entry.pinned = false));
    } catch (err) {
      this.#deps.logger.warn({ err: (err as Error).message }, 'seed task rejected');
    }
  }

  /** When piece `n` of a task is being fetched here now: settles when that fetch ends (the upload server's FLAG_WAIT). */
  whenFetched(taskId: string, n: number): Promise<void> | undefined {
    return this.#active.get(taskId)?.download.whenFetched(n);
  }

  /** Every download still running and those finished lately, oldest first, with who asked. */
  records(): DownloadRecord[] {
    const live = [...this.#active.values()].map((e) => e.download.stats);
    const all = [...this.#history.filter((s) => !live.includes(s)), ...live];
    return all.map((stats) => ({ stats, requesters: [...(this.#requesters.get(stats) ?? [])] }));
  }

  protected onStart(): Promise<void> {
    return Promise.resolve();
  }

  /** Cancels every download (pieces held are kept) and waits for them to let go of the store. */
  protected async onStop(): Promise<void> {
    for (const { download } of this.#active.values()) void download.destroy(new ShoalError('ABORTED', 'daemon stopping'));
    await Promise.allSettled([...this.#active.values()].map((e) => e.download.done));
  }

  #ensure(spec: TaskSpec): Entry {
    const existing = this.#active.get(spec.taskId);
    if (existing !== undefined) return existing;
    const d = this.#deps;
    const route = d.client;
    const download = new TaskDownload({
      spec,
      store: d.store,
      source: d.source,
      client: typeof route === 'function' ? () => route(spec.taskId) : route,
      hostId: d.hostId(),
      peerId: this.peerId(spec.taskId),
      seed: d.seed,
      settings: d.settings,
      tls: d.tls,
      limits: { ...d.limits, task: () => entry.limiter },
      logger: d.logger,
    });
    const entry: Entry = { download, waiters: 0, pinned: false, limiter: undefined };
    this.#active.set(spec.taskId, entry);
    download.done
      .catch(() => undefined)
      .finally(() => {
        if (this.#active.get(spec.taskId) === entry) this.#active.delete(spec.taskId);
        this.#history.push(download.stats);
        if (this.#history.length > HISTORY) this.#history.shift();
      });
    void download.start();
    return entry;
  }

  #asked(stats: TaskStats, requester: Requester): void {
    let set = this.#requesters.get(stats);
    if (set === undefined) this.#requesters.set(stats, (set = new Set()));
    set.add(requester);
  }

  #content(task: StoredTask): DownloadedContent {
    const store = this.#deps.store;
    return { taskId: task.id, path: task.path, contentLength: task.shape?.contentLength ?? 0, generation: task.generation, pin: () => store.pin(task) };
  }
}
