/**
 * One task's download on this host: registers with the scheduler, fetches
 * pieces from the parents it is given (rarest first, several at once, each
 * verified before it is stored), or from the origin when told to, and
 * finishes when every piece is held. Pieces are served to other peers the
 * moment they are stored.
 */
import { EventEmitter, setMaxListeners } from 'node:events';
import { create } from '@bufbuild/protobuf';
import { RegisterPeerSchema, type PeerResponse, type RegisterPeer, type TaskSpec } from '../../gen/shoal/v1/scheduler_pb.js';
import { ShoalError, isErrorCode, toShoalError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { packDigests, pieceCount, pieceRange, unpackDigests } from '../../common/pieces.js';
import type { SchedulerClient } from '../scheduler-link.js';
import type { HttpSource } from '../source/http-source.js';
import type { PieceStore, StoredTask, TaskShape } from '../storage/store.js';
import { verifyContent } from '../storage/verify.js';
import { BufferPool } from '../../common/buffer-pool.js';
import { CorruptPieceError, ParentConn, fetchPiece, type DataProtocol, type ParentInfo } from './parent.js';
import { PeerSession } from './peer-session.js';
import { PieceReporter } from './reporter.js';
import { fetchFromSource } from './source-fetch.js';
import { TaskStats } from './task-stats.js';
import { redactUrl } from '../../common/ids.js';

export interface DownloadLimits {
  /** Pieces in flight for one task. */
  maxInflight: number;
  /** Pieces in flight from one parent (also its connection count). */
  perParent: number;
  /** A parent that sends nothing for this long loses the piece. */
  stallMs: number;
  /** With no scheduler stream for this long and nothing to fetch from, go to the origin. */
  scheduleTimeoutMs: number;
  /**
   * Ask the scheduler for other parents after this long without progress.
   * Long enough for a pipeline to reach a waiting peer (lab: 3 s made late
   * peers attach past the child limits and halved their parents' rates).
   */
  starvationMs: number;
  /** How pieces are fetched from parents. */
  protocol: DataProtocol;
  /**
   * Ask parents still fetching for the pieces they are about to get
   * (#askAhead). Off by default: no gain measured in the lab, and a chain
   * under heavy loss recovered far more slowly with it (docs/benchmarks.md).
   */
  askAhead: boolean;
}

export const DEFAULT_LIMITS: DownloadLimits = {
  maxInflight: 16,
  perParent: 8,
  stallMs: 10_000,
  scheduleTimeoutMs: 15_000,
  starvationMs: 10_000,
  protocol: 'tcp',
  askAhead: false,
};

export interface TaskDownloadOptions {
  spec: TaskSpec;
  store: PieceStore;
  source: HttpSource;
  /** undefined: no scheduler; the peer goes straight to the origin. */
  client: SchedulerClient | undefined;
  hostId: string;
  peerId: string;
  seed: boolean;
  limits: DownloadLimits;
  logger: Logger;
}

type From = 'source' | 'peer' | 'seed';

/** Pieces asked of one parent before it holds them (#askAhead). */
const AHEAD_PER_PARENT = 4;
/** A parent that was not fetching a piece asked ahead is not asked ahead again for this long. */
const AHEAD_BACKOFF_MS = 100;

/** Piece buffers shared by every download in the process. */
const pieceBuffers = new BufferPool();

export class TaskDownload extends EventEmitter<{ progress: [TaskStats] }> {
  readonly id: string;
  readonly spec: TaskSpec;
  readonly stats: TaskStats;
  readonly done: Promise<StoredTask>;
  readonly #o: TaskDownloadOptions;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  readonly #parents = new Map<string, ParentConn>();
  readonly #blocked = new Set<string>();
  /** Authoritative digests from the scheduler, for pieces we do not hold yet. */
  readonly #digests = new Map<number, Buffer>();
  readonly #inflight = new Map<number, Array<{ parent: ParentConn; controller: AbortController; started: number }>>();
  /** Uploads waiting for a piece this download is fetching (wire.ts FLAG_WAIT): released when its fetch ends. */
  readonly #fetchWaiters = new Map<number, Array<() => void>>();
  readonly #reporter: PieceReporter;
  #task: StoredTask | undefined;
  #session: PeerSession | undefined;
  #sourceRunning = false;
  #settled = false;
  #finishing = false;
  #unpin: (() => void) | undefined;
  #resolve!: (task: StoredTask) => void;
  #reject!: (err: ShoalError) => void;
  #lastProgress = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #connectedOnce = false;
  readonly #startedAt = Date.now();

  constructor(options: TaskDownloadOptions) {
    super();
    // One listener per piece in flight.
    setMaxListeners(256, this.#abort.signal);
    this.#o = options;
    this.id = options.spec.taskId;
    this.spec = options.spec;
    this.#log = options.logger.child({ task: this.id.slice(0, 12) });
    this.stats = new TaskStats(this.id, options.spec.url);
    this.done = new Promise<StoredTask>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.done.catch(() => undefined);
    this.#reporter = new PieceReporter((numbers, digests) =>
      this.#session?.send({ case: 'pieces', value: { numbers, digests } }),
    );
  }

  async start(): Promise<void> {
    try {
      const task = await this.#o.store.ensure(this.id, this.spec.url, this.spec.digest === '' ? undefined : this.spec.digest);
      this.#task = task;
      this.#unpin = this.#o.store.pin(task);
      if (task.complete) await this.#o.store.checkIntact(task);
      if (task.complete) {
        this.stats.fromCache(task.heldBytes);
        this.#o.store.touch(task);
        this.#settle(task);
        return;
      }
      this.stats.setShape(task.shape, task.digests.size, task.heldBytes);
      if (this.#o.client === undefined) {
        this.#goToSource('no scheduler configured');
        return;
      }
      this.#session = new PeerSession({
        client: this.#o.client,
        register: (reconnect) => this.#register(reconnect),
        onResponse: (response) => this.#onResponse(response),
        onConnection: (up) => {
          if (up) this.#connectedOnce = true;
          if (up) this.#log.debug('scheduler stream up');
        },
        logger: this.#log,
      });
      this.#session.start();
      this.#timer = setInterval(() => this.#tick(), 500);
    } catch (err) {
      this.#fail(toShoalError(err, 'STORAGE'));
    }
  }

  /**
   * When piece `n` is being fetched right now (from a parent, or from the
   * origin, whose stream brings every piece not yet held): a promise that
   * resolves when that fetch ends, stored or not. Undefined otherwise.
   */
  whenFetched(n: number): Promise<void> | undefined {
    const task = this.#task;
    if (this.#settled || task === undefined || task.has(n)) return undefined;
    if (!this.#inflight.has(n) && !(this.#sourceRunning && n < this.#pieceTotal())) return undefined;
    return new Promise<void>((resolve) => {
      const list = this.#fetchWaiters.get(n) ?? [];
      list.push(resolve);
      this.#fetchWaiters.set(n, list);
    });
  }

  /** Pieces in the task, 0 while its length is unknown. */
  #pieceTotal(): number {
    const shape = this.#task?.shape;
    return shape?.contentLength === undefined ? 0 : pieceCount(shape.contentLength, shape.pieceSize);
  }

  #releaseWaiters(n: number): void {
    const list = this.#fetchWaiters.get(n);
    if (list === undefined) return;
    this.#fetchWaiters.delete(n);
    for (const resolve of list) resolve();
  }

  /** Cancels the download (the daemon is stopping, or nobody waits any more). Pieces held are kept. */
  cancel(reason: ShoalError): void {
    this.#fail(reason, false);
  }

  #register(reconnect: boolean): RegisterPeer {
    const task = this.#task!;
    const numbers = [...task.digests.keys()];
    return create(RegisterPeerSchema, {
      peerId: this.#o.peerId,
      hostId: this.#o.hostId,
      task: this.spec,
      ...(task.shape === undefined ? {} : { metadata: shapeMessage(task.shape) }),
      pieces: numbers,
      digests: this.#sourceRunning || this.#o.seed ? packDigests(numbers.map((n) => task.digests.get(n)!)) : new Uint8Array(0),
      backToSource: this.#sourceRunning,
      reconnect,
    });
  }

  #onResponse(response: PeerResponse): void {
    if (this.#settled) return;
    const r = response.response;
    switch (r.case) {
      case 'backToSource':
        this.#goToSource(r.value.reason);
        break;
      case 'parents':
        this.#setParents(r.value.parents);
        break;
      case 'metadata':
        void this.#learnShape({
          contentLength: r.value.contentLength === undefined ? undefined : Number(r.value.contentLength),
          pieceSize: r.value.pieceSize,
        });
        break;
      case 'digests': {
        for (const [n, digest] of unpackDigests(r.value.numbers, r.value.digests) ?? []) this.#digests.set(n, digest);
        this.#pump();
        break;
      }
      case 'parentPieces': {
        const parent = this.#parents.get(r.value.peerId);
        if (parent !== undefined) for (const n of r.value.numbers) parent.pieces.add(n);
        this.#pump();
        break;
      }
      case 'complete':
        this.#checkDone();
        break;
      case 'failed': {
        const code = isErrorCode(r.value.code) ? r.value.code : 'SOURCE_STATUS';
        this.#fail(new ShoalError(code, r.value.message, r.value.status > 0 ? { sourceStatus: r.value.status } : {}), false);
        break;
      }
      default:
        break;
    }
  }

  async #learnShape(shape: TaskShape): Promise<void> {
    const task = this.#task!;
    if (this.#sourceRunning || shape.pieceSize <= 0) return;
    try {
      await this.#o.store.setShape(task, shape);
      this.stats.setShape(task.shape, task.digests.size, task.heldBytes);
      this.#pump();
    } catch (err) {
      this.#fail(toShoalError(err, 'SOURCE_PROTOCOL'));
    }
  }

  #setParents(list: readonly ParentInfo[]): void {
    const wanted = new Set(list.map((p) => p.peerId));
    for (const [id, parent] of this.#parents) {
      if (!wanted.has(id)) {
        this.#parents.delete(id);
        if (parent.inflight === 0) parent.close();
      }
    }
    for (const info of list) {
      if (this.#blocked.has(info.peerId)) continue;
      const known = this.#parents.get(info.peerId);
      if (known !== undefined) {
        known.setStripes(info.stripes ?? 0, info.stripeMask ?? 0);
        continue;
      }
      const { peerId, hostId, ip, port, seed } = info;
      const parent = new ParentConn({ peerId, hostId, ip, port, seed, stripes: info.stripes ?? 0, stripeMask: info.stripeMask ?? 0 }, this.#o.limits.perParent, this.#o.limits.protocol);
      this.#parents.set(peerId, parent);
    }
    this.#pump();
  }

  #goToSource(reason: string): void {
    if (this.#sourceRunning || this.#settled) return;
    this.#sourceRunning = true;
    this.#reporter.withDigests = true;
    this.stats.backToSource(reason);
    this.#log.info({ reason }, 'back to source');
    const task = this.#task!;
    fetchFromSource({
      source: this.#o.source,
      store: this.#o.store,
      task,
      url: this.spec.url,
      headers: this.spec.headers.map((h) => [h.name, h.value] as const),
      pieceSize: this.spec.pieceSize,
      signal: this.#abort.signal,
      isHeld: (n) => task.has(n),
      onShape: (shape) => {
        this.stats.setShape(shape, task.digests.size, task.heldBytes);
        this.#session?.send({ case: 'metadata', value: { metadata: shapeMessage(shape) } });
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

  #stored(n: number, digest: Buffer, length: number, from: From): void {
    this.#lastProgress = Date.now();
    this.#digests.delete(n);
    this.stats.piece(length, from);
    this.#reporter.add(n, digest);
    this.#releaseWaiters(n);
    this.emit('progress', this.stats);
  }

  /** Starts piece fetches until the in-flight caps are reached. */
  #pump(): void {
    const task = this.#task;
    if (this.#settled || this.#finishing || this.#sourceRunning || task?.shape?.contentLength === undefined) return;
    const { contentLength, pieceSize } = task.shape;
    const count = pieceCount(contentLength, pieceSize);
    const limits = this.#o.limits;
    const maxInflight = Math.max(2, Math.min(limits.maxInflight, Math.floor((256 * 1024 * 1024) / pieceSize)));
    while (this.#inflight.size < maxInflight) {
      const pick = this.#choose(count, task, false);
      if (pick === undefined) break;
      this.#fetch(pick.n, pick.parent, pieceRange(pick.n, contentLength, pieceSize).length);
    }
    // Endgame: every missing piece is in flight; ask a second holder for the oldest ones.
    if (this.#inflight.size > 0 && task.digests.size + this.#inflight.size >= count) {
      for (let i = 0; i < 4; i++) {
        const pick = this.#choose(count, task, true);
        if (pick === undefined) break;
        this.#fetch(pick.n, pick.parent, pieceRange(pick.n, contentLength, pieceSize).length);
      }
    }
    if (limits.protocol === 'tcp' && limits.askAhead) this.#askAhead(count, task, maxInflight, (n) => pieceRange(n, contentLength, pieceSize).length);
  }

  /**
   * A chain of peers as a pipeline in the data plane: a parent still fetching
   * is asked for the lowest pieces it lacks, which are the ones it is fetching
   * when it takes pieces in order too (#choose), and it answers each the
   * moment it holds it (wire.ts FLAG_WAIT) instead of after the scheduler has
   * relayed its announcement. A parent not fetching the piece answers
   * NOT_FOUND at once and is not asked ahead again for AHEAD_BACKOFF_MS.
   */
  #askAhead(count: number, task: StoredTask, maxInflight: number, lengthOf: (n: number) => number): void {
    const now = Date.now();
    const { perParent } = this.#o.limits;
    for (const parent of this.#parents.values()) {
      if (parent.aheadAfter > now || parent.busyUntil > now || parent.pieces.size >= count) continue;
      let n = 0;
      for (let asked = 0; asked < AHEAD_PER_PARENT && this.#inflight.size < maxInflight && parent.inflight < perParent; asked++) {
        while (n < count && (task.has(n) || this.#inflight.has(n) || !this.#digests.has(n) || parent.pieces.has(n) || !parent.serves(n))) n++;
        if (n >= count) break;
        this.#fetch(n, parent, lengthOf(n), true);
        n++;
      }
    }
  }

  /**
   * Rarest missing piece with a known digest and a free holder that serves
   * it (split trees: a parent serves its stripes only); random among equals,
   * or the lowest with a single parent or with every parent serving stripes
   * (a pipeline: this peer's children can then guess which pieces it is
   * fetching, #askAhead).
   */
  #choose(count: number, task: StoredTask, endgame: boolean): { n: number; parent: ParentConn } | undefined {
    const now = Date.now();
    const free = [...this.#parents.values()].filter((p) => p.inflight < this.#o.limits.perParent && p.busyUntil <= now);
    if (free.length === 0) return undefined;
    const all = [...this.#parents.values()];
    // In order from a single parent, or when each piece has one parent (split trees).
    const start = all.length === 1 || all.every((p) => p.stripes > 1) ? 0 : Math.floor(Math.random() * count);
    let best: { n: number; parent: ParentConn; rarity: number } | undefined;
    for (let i = 0; i < count; i++) {
      const n = (start + i) % count;
      if (task.has(n) || !this.#digests.has(n)) continue;
      const flights = this.#inflight.get(n);
      if (endgame) {
        if (flights === undefined || flights.length !== 1 || now - flights[0]!.started < 500) continue;
      } else if (flights !== undefined) continue;
      let rarity = 0;
      let holder: ParentConn | undefined;
      for (const p of all) {
        if (!p.pieces.has(n) || !p.serves(n)) continue;
        rarity++;
        if (!free.includes(p) || flights?.some((f) => f.parent === p)) continue;
        if (holder === undefined || p.inflight < holder.inflight || (p.inflight === holder.inflight && p.rate > holder.rate)) holder = p;
      }
      if (holder === undefined) continue;
      if (best === undefined || rarity < best.rarity) best = { n, parent: holder, rarity };
      if (rarity === 1 && !endgame) break;
    }
    return best;
  }

  #fetch(n: number, parent: ParentConn, length: number, ahead = false): void {
    const task = this.#task!;
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    this.#abort.signal.addEventListener('abort', onAbort, { once: true });
    const entry = { parent, controller, started: Date.now() };
    const flights = this.#inflight.get(n) ?? [];
    flights.push(entry);
    this.#inflight.set(n, flights);
    parent.inflight++;
    const digest = this.#digests.get(n)!;
    const buffer = pieceBuffers.acquire(length, task.shape!.pieceSize);
    fetchPiece(parent, { taskId: this.id, piece: n, length, digest, stallMs: this.#o.limits.stallMs, signal: controller.signal, buffer, ahead })
      .then(async ({ data, parentComplete }) => {
        parent.failures = 0;
        parent.bytes += length;
        parent.recordRate(length, Date.now() - entry.started);
        if (task.has(n) || this.#settled) return;
        await this.#o.store.write(task, n * task.shape!.pieceSize, data);
        if (!this.#o.store.commitPiece(task, n, digest)) return;
        if (!parentComplete && !parent.info.seed) this.stats.piecesFromRunningParents++;
        this.stats.fromParent(parent.info.peerId, length);
        this.#stored(n, digest, length, parent.info.seed ? 'seed' : 'peer');
        for (const other of this.#inflight.get(n) ?? []) if (other !== entry) other.controller.abort();
        this.#checkDone();
      })
      .catch((err: unknown) => this.#fetchFailed(parent, n, err, controller.signal.aborted, ahead))
      .finally(() => {
        pieceBuffers.release(buffer);
        this.#abort.signal.removeEventListener('abort', onAbort);
        parent.inflight--;
        const left = (this.#inflight.get(n) ?? []).filter((f) => f !== entry);
        if (left.length === 0) {
          this.#inflight.delete(n);
          if (!this.#sourceRunning) this.#releaseWaiters(n);
        } else this.#inflight.set(n, left);
        if (!this.#parents.has(parent.info.peerId) && parent.inflight === 0) parent.close();
        this.#pump();
      });
  }

  #fetchFailed(parent: ParentConn, n: number, err: unknown, aborted: boolean, ahead: boolean): void {
    if (aborted || this.#settled) return;
    if (err instanceof CorruptPieceError) {
      this.#log.warn({ parent: parent.info.peerId, piece: n, err: err.message }, 'corrupt piece; excluding parent');
      this.stats.corruptPieces++;
      this.#dropParent(parent, err.message, true);
      return;
    }
    const code = err instanceof ShoalError ? err.code : 'PEER_FAILED';
    if (code === 'BUSY') {
      parent.busyUntil = Date.now() + 250;
    } else if (code === 'PIECE_NOT_FOUND') {
      if (ahead) parent.aheadAfter = Date.now() + AHEAD_BACKOFF_MS;
      else parent.pieces.delete(n);
    } else if (code === 'STORAGE') {
      this.#fail(toShoalError(err));
    } else {
      parent.failures++;
      this.#log.debug({ parent: parent.info.peerId, piece: n, err: (err as Error).message }, 'piece fetch failed');
      if (parent.failures >= 2) this.#dropParent(parent, (err as Error).message, false);
    }
  }

  #dropParent(parent: ParentConn, reason: string, corrupt: boolean): void {
    this.#blocked.add(parent.info.peerId);
    if (this.#parents.get(parent.info.peerId) === parent) this.#parents.delete(parent.info.peerId);
    for (const flights of this.#inflight.values()) for (const f of flights) if (f.parent === parent) f.controller.abort();
    this.#session?.send({ case: 'parentFailed', value: { parentPeerId: parent.info.peerId, reason: reason.slice(0, 500), corrupt } });
  }

  /** Periodic: ask for other parents when starving. */
  #tick(): void {
    if (this.#settled || this.#sourceRunning || this.#finishing) return;
    const now = Date.now();
    const idle = now - this.#lastProgress;
    if (!this.#connectedOnce && this.#parents.size === 0 && now - this.#startedAt > this.#o.limits.scheduleTimeoutMs) {
      this.#goToSource('scheduler unreachable');
      return;
    }
    if (this.#inflight.size === 0 && idle > this.#o.limits.starvationMs) {
      this.#lastProgress = now;
      this.#session?.send({ case: 'reschedule', value: { reason: 'no progress' } });
    }
    this.#pump();
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
      if (this.spec.digest !== '') {
        const ok = await verifyContent(task.path, this.spec.digest, this.#abort.signal);
        if (!ok) {
          await this.#o.store.invalidate(task);
          throw new ShoalError('DIGEST_MISMATCH', `content of ${redactUrl(this.spec.url)} does not match ${this.spec.digest}`);
        }
      }
      await this.#o.store.markComplete(task);
      this.#session?.send({ case: 'finished', value: { contentLength: BigInt(task.shape!.contentLength!) } });
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
    this.#cleanup();
    this.#resolve(task);
  }

  #fail(err: ShoalError, report = true): void {
    if (this.#settled) return;
    this.#settled = true;
    this.stats.finish(err);
    this.#log.warn({ code: err.code, err: err.message }, 'download failed');
    if (report) this.#session?.send({ case: 'failed', value: { code: err.code, message: err.message.slice(0, 1000), status: err.sourceStatus ?? 0 } });
    this.#abort.abort(err);
    this.#cleanup();
    this.#reject(err);
  }

  #cleanup(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    for (const n of [...this.#fetchWaiters.keys()]) this.#releaseWaiters(n);
    this.#reporter.close();
    for (const parent of this.#parents.values()) parent.close();
    this.#parents.clear();
    void this.#session?.close();
    this.#unpin?.();
  }
}

function shapeMessage(shape: TaskShape): { contentLength?: bigint; pieceSize: number } {
  return shape.contentLength === undefined ? { pieceSize: shape.pieceSize } : { contentLength: BigInt(shape.contentLength), pieceSize: shape.pieceSize };
}
