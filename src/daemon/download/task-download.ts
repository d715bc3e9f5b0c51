/**
 * One task's download on this host: registers with the scheduler, fetches
 * pieces from the parents it is given (./peer-fetches.ts), or from the
 * origin when told to (./source-fetch.ts), and finishes when every piece is
 * held (./finish-task.ts). Pieces are served to other peers the moment they
 * are stored (`progress` names the piece). `done` settles with the outcome.
 *
 * Lifecycle (common/lifecycle.ts): `start()` begins (it does not reject: a
 * download that cannot begin fails `done`); `stop()` cancels it, `done`
 * failing with ABORTED; `destroy(err)` cancels it failing `done` with `err`.
 * Either way the pieces held are kept, the scheduler is not told the task
 * failed, and the scheduler stream ends once its last messages are sent.
 * Both are idempotent, and no-ops once `done` settled.
 */
import { EventEmitter, setMaxListeners } from 'node:events';
import type { RegisterPeer, TaskSpec } from '../../gen/shoal/v1/scheduler_pb.js';
import type { DownloadSettings } from '../../common/config/schema.js';
import { ShoalError, toShoalError } from '../../common/errors.js';
import type { Lifecycle } from '../../common/lifecycle.js';
import { redactUrl } from '../../common/ids.js';
import { carriesCredentials } from '../../common/credentials.js';
import type { TlsMaterial } from '../../identity/tls.js';
import type { Logger } from '../../common/log.js';
import { pieceCount } from '../../common/pieces.js';
import type { SchedulerClient } from '../scheduler-link.js';
import type { HttpSource } from '../source/http-source.js';
import type { PieceStore } from '../storage/store.js';
import type { StoredTask, TaskShape } from '../storage/stored-task.js';
import { finishTask } from './finish-task.js';
import { PeerFetches } from './peer-fetches.js';
import { PeerSession } from './peer-session.js';
import { PieceWaiters } from './piece-waiters.js';
import { PieceReporter } from './reporter.js';
import { readResponse, registerMessage, report, type SchedulerOrder } from './scheduler-messages.js';
import { fetchFromSource } from './source-fetch.js';
import { TaskStats } from './task-stats.js';
import type { DownloadLimits } from './limits.js';

export interface TaskDownloadOptions {
  spec: TaskSpec;
  store: PieceStore;
  source: HttpSource;
  /** undefined: no scheduler; the peer goes straight to the origin. A function: the task's scheduler at each (re)connect. */
  client: SchedulerClient | (() => SchedulerClient) | undefined;
  hostId: string;
  peerId: string;
  seed: boolean;
  settings: DownloadSettings;
  /** The cluster's mutual TLS for parents; undefined: plain TCP. */
  tls: TlsMaterial | undefined;
  limits?: DownloadLimits;
  logger: Logger;
}

/** How often the download checks for starvation and an unreachable scheduler. */
const TICK_MS = 500;

export class TaskDownload extends EventEmitter<{ progress: [TaskStats, number?] }> implements Lifecycle {
  readonly id: string;
  readonly spec: TaskSpec;
  readonly stats: TaskStats;
  readonly done: Promise<StoredTask>;
  readonly #options: TaskDownloadOptions;
  readonly #log: Logger;
  /** Aborted when the download ends, whatever the outcome: every fetch stops. */
  readonly #abort = new AbortController();
  readonly #waiters = new PieceWaiters();
  readonly #reporter: PieceReporter;
  #task: StoredTask | undefined;
  #peers: PeerFetches | undefined;
  #session: PeerSession | undefined;
  #sourceRunning = false;
  #settled = false;
  #finishing = false;
  #unpin: (() => void) | undefined;
  #resolve!: (task: StoredTask) => void;
  #reject!: (err: ShoalError) => void;
  /** Pieces stored by this run (not held from before). */
  #storedThisRun = 0;
  #lastProgress = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #connectedOnce = false;
  readonly #startedAt = Date.now();
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;

  constructor(options: TaskDownloadOptions) {
    super();
    // One listener per piece in flight; one per front-end response streaming the task.
    setMaxListeners(256, this.#abort.signal);
    this.setMaxListeners(1024);
    this.#options = options;
    this.id = options.spec.taskId;
    this.spec = options.spec;
    this.#log = options.logger.child({ task: this.id.slice(0, 12) });
    this.stats = new TaskStats(this.id, options.spec.cacheId === '' ? options.spec.url : `cache:${options.spec.cacheId}`);
    this.done = new Promise<StoredTask>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.done.catch(() => undefined);
    this.#reporter = new PieceReporter((numbers, digests) => this.#session?.send(report.pieces(numbers, digests)));
  }

  start(): Promise<void> {
    if (this.#stopping !== undefined && this.#starting === undefined) {
      return Promise.reject(new ShoalError('USAGE', 'the task download was stopped; create a new one'));
    }
    this.#starting ??= this.#begin();
    return this.#starting;
  }

  stop(): Promise<void> {
    return this.#end(new ShoalError('ABORTED', 'download stopped'));
  }

  destroy(err?: unknown): Promise<void> {
    return this.#end(err === undefined ? new ShoalError('ABORTED', 'download destroyed') : toShoalError(err));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /**
   * When piece `n` is being fetched right now (from a parent, or from the
   * origin, whose stream brings every piece not yet held): a promise that
   * resolves when that fetch ends, stored or not. Undefined otherwise.
   */
  whenFetched(n: number): Promise<void> | undefined {
    const task = this.#task;
    if (this.#settled || task === undefined || task.has(n)) return undefined;
    const fetching = this.#peers?.fetching(n) === true || (this.#sourceRunning && n < this.#pieceTotal());
    return fetching ? this.#waiters.wait(n) : undefined;
  }

  #end(reason: ShoalError): Promise<void> {
    this.#fail(reason, false);
    this.#stopping ??= (async () => {
      await this.#starting;
      await this.#session?.stop();
    })();
    return this.#stopping;
  }

  async #begin(): Promise<void> {
    const { store, client } = this.#options;
    try {
      const task = await store.ensure(this.id, this.spec.url, this.spec.digest === '' ? undefined : this.spec.digest);
      if (this.#settled) return;
      this.#task = task;
      if (carriesCredentials(this.spec)) store.markPrivate(task);
      this.#unpin = store.pin(task);
      if (task.complete) await store.checkIntact(task);
      if (this.#settled) return;
      if (task.complete) {
        this.stats.fromCache(task.heldBytes);
        store.touch(task);
        this.#settle(task);
        return;
      }
      this.stats.setShape(task.shape, task.digests.size, task.heldBytes);
      if (client === undefined) {
        this.#goToSource('no scheduler configured');
        return;
      }
      this.#peers = this.#peerFetches(task);
      this.#session = new PeerSession({
        client,
        register: (reconnect) => this.#register(task, reconnect),
        onResponse: (response) => {
          const order = readResponse(response);
          if (order !== undefined && !this.#settled) this.#obey(order);
        },
        onConnection: (up) => {
          if (!up) return;
          this.#connectedOnce = true;
          this.#log.debug('scheduler stream up');
        },
        logger: this.#log,
      });
      void this.#session.start();
      this.#timer = setInterval(() => this.#tick(), TICK_MS);
    } catch (err) {
      this.#fail(toShoalError(err, 'STORAGE'));
    }
  }

  #peerFetches(task: StoredTask): PeerFetches {
    return new PeerFetches({
      taskId: this.id,
      task,
      store: this.#options.store,
      settings: this.#options.settings,
      tls: this.#options.tls,
      stats: this.stats,
      signal: this.#abort.signal,
      canFetch: () => !this.#settled && !this.#finishing && !this.#sourceRunning,
      onStored: (n, digest, length, from) => {
        this.#stored(n, digest, length, from);
        this.#checkDone();
      },
      onFetchEnded: (n) => {
        if (!this.#sourceRunning) this.#waiters.release(n);
      },
      onParentFailed: (parent, reason, corrupt) => this.#session?.send(report.parentFailed(parent.info.peerId, reason, corrupt)),
      onFatal: (err) => this.#fail(err),
      limiters: () => [this.#options.limits?.download, this.#options.limits?.task?.()],
      logger: this.#log,
    });
  }

  #register(task: StoredTask, reconnect: boolean): RegisterPeer {
    const { peerId, hostId, seed } = this.#options;
    const backToSource = this.#sourceRunning;
    return registerMessage({ peerId, hostId, spec: this.spec, task, withDigests: backToSource || seed, backToSource, reconnect });
  }

  #obey(order: SchedulerOrder): void {
    switch (order.kind) {
      case 'backToSource':
        this.#goToSource(order.reason);
        break;
      case 'parents':
        this.#peers?.setParents(order.parents);
        break;
      case 'shape':
        void this.#learnShape(order.shape, order.validator);
        break;
      case 'digests':
        this.#peers?.learnDigests(order.digests);
        break;
      case 'parentPieces':
        this.#peers?.parentHas(order.peerId, order.numbers);
        break;
      case 'complete':
        this.#checkDone();
        break;
      case 'failed':
        this.#fail(order.error, false);
        break;
      case 'accessRequired':
        if (this.#task !== undefined) this.#options.store.markPrivate(this.#task);
        break;
    }
  }

  /**
   * The task's shape and version, as the scheduler knows them. Pieces held of
   * another version are dropped before anything else; a download that has
   * already fetched or is fetching pieces in this run fails instead
   * (SOURCE_CHANGED): it cannot tell which of them are of which version.
   */
  async #learnShape(shape: TaskShape, validator: string): Promise<void> {
    const task = this.#task!;
    if (this.#sourceRunning || shape.pieceSize <= 0) return;
    try {
      if (validator !== '' && validator !== task.validator) {
        if (this.#storedThisRun > 0 || (this.#peers?.inflight ?? 0) > 0) {
          throw new ShoalError('SOURCE_CHANGED', `the content at ${redactUrl(this.spec.url)} changed at the origin during this download; nothing of the two versions was kept: run it again`);
        }
        if (task.validator === '' && task.digests.size === 0) await this.#options.store.setValidator(task, validator);
        else await this.#options.store.resetVersion(task).then(() => this.#options.store.setValidator(task, validator));
      }
      await this.#options.store.setShape(task, shape);
      this.stats.setShape(task.shape, task.digests.size, task.heldBytes);
      this.#peers?.pump();
    } catch (err) {
      this.#fail(toShoalError(err, 'SOURCE_PROTOCOL'));
    }
  }

  /** Pieces in the task, 0 while its length is unknown. */
  #pieceTotal(): number {
    const shape = this.#task?.shape;
    return shape?.contentLength === undefined ? 0 : pieceCount(shape.contentLength, shape.pieceSize);
  }

  #goToSource(reason: string): void {
    if (this.#settled) return;
    if (this.spec.cacheId !== '') {
      this.#fail(new ShoalError('CACHE_NOT_FOUND', `cache ID ${this.spec.cacheId} has no origin to fetch from (${reason})`));
      return;
    }
    if (this.#sourceRunning) {
      // Already fetching (since before a scheduler restart): now that the scheduler chose it, it vouches for what it holds.
      for (const [n, digest] of this.#task?.digests ?? []) this.#reporter.add(n, digest);
      return;
    }
    this.#sourceRunning = true;
    this.#reporter.withDigests = true;
    this.stats.backToSource(reason);
    this.#log.info({ reason }, 'back to source');
    const task = this.#task!;
    fetchFromSource({
      source: this.#options.source,
      store: this.#options.store,
      task,
      url: this.spec.url,
      headers: this.spec.headers.map((h) => [h.name, h.value] as const),
      pieceSize: this.spec.pieceSize,
      signal: this.#abort.signal,
      isHeld: (n) => task.has(n),
      limiters: () => [this.#options.limits?.source, this.#options.limits?.download, this.#options.limits?.task?.()],
      onShape: (shape, validator) => {
        this.stats.setShape(shape, task.digests.size, task.heldBytes);
        this.#session?.send(report.shape(shape, validator));
      },
      onChanged: (err) => {
        // What was reported of the old version goes first; the new version's shape follows, then its pieces.
        this.#reporter.flush();
        this.#log.warn({ err: err.message }, 'the origin content changed; starting over from its first byte');
      },
      onPiece: (n, digest, length) => this.#stored(n, digest, length, 'source'),
    })
      .then(() => {
        this.#reporter.flush();
        this.#checkDone();
        if (!this.#settled && !this.#finishing) throw new ShoalError('SOURCE_PROTOCOL', 'origin stream ended before every piece was stored');
      })
      .catch((err: unknown) => this.#fail(toShoalError(err, 'SOURCE_NETWORK')));
  }

  #stored(n: number, digest: Buffer, length: number, from: 'source' | 'peer' | 'seed'): void {
    this.#storedThisRun++;
    this.#lastProgress = Date.now();
    this.#peers?.stored(n);
    this.stats.piece(length, from);
    this.#reporter.add(n, digest);
    this.#waiters.release(n);
    this.emit('progress', this.stats, n);
  }

  /** Periodic: go to the origin when the scheduler never answered; ask for other parents when starving. */
  #tick(): void {
    if (this.#settled || this.#sourceRunning || this.#finishing) return;
    const { scheduleTimeout, starvationTimeout } = this.#options.settings;
    const now = Date.now();
    if (!this.#connectedOnce && (this.#peers?.parentCount ?? 0) === 0 && now - this.#startedAt > scheduleTimeout) {
      this.#goToSource('scheduler unreachable');
      return;
    }
    if ((this.#peers?.inflight ?? 0) === 0 && now - this.#lastProgress > starvationTimeout) {
      this.#lastProgress = now;
      this.#session?.send(report.reschedule('no progress'));
    }
    this.#peers?.pump();
  }

  #checkDone(): void {
    const task = this.#task;
    if (this.#settled || this.#finishing || task?.shape?.contentLength === undefined) return;
    if (task.digests.size < this.#pieceTotal()) return;
    this.#finishing = true;
    void this.#finish(task);
  }

  async #finish(task: StoredTask): Promise<void> {
    try {
      this.#reporter.flush();
      await finishTask({ store: this.#options.store, task, url: this.spec.url, digest: this.spec.digest, signal: this.#abort.signal });
      this.#session?.send(report.finished(task.shape!.contentLength!));
      this.#settle(task);
    } catch (err) {
      this.#finishing = false;
      this.#fail(toShoalError(err, 'STORAGE'));
    }
  }

  #settle(task: StoredTask): void {
    if (this.#settled) return;
    this.#settled = true;
    this.stats.finish();
    this.emit('progress', this.stats);
    this.#release();
    this.#resolve(task);
  }

  /** Ends the download with `err`; `tellScheduler`: the task failed here (not when this host only gave up on it). */
  #fail(err: ShoalError, tellScheduler = true): void {
    if (this.#settled) return;
    this.#settled = true;
    this.stats.finish(err);
    this.#log.warn({ code: err.code, err: err.message }, 'download failed');
    if (tellScheduler) this.#session?.send(report.failed(err));
    this.#abort.abort(err);
    this.#release();
    this.#reject(err);
  }

  /** Releases every timer, waiter, connection and pin; the scheduler stream ends after its last messages. */
  #release(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#waiters.releaseAll();
    this.#reporter.close();
    this.#peers?.close();
    void this.#session?.stop();
    this.#unpin?.();
  }
}
