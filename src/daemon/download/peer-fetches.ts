/**
 * The peer path of a download: pieces fetched from the parents the scheduler
 * gave, several at once, each verified before it is stored (./parent.ts).
 * What to fetch next is ./piece-picker.ts's choice; this file starts those
 * fetches, stores what arrives and judges parents by what goes wrong: a
 * corrupt piece or MAX_FAILURES failures in a row rule a parent out, BUSY
 * rests it for BUSY_BACKOFF_MS, NOT_FOUND forgets the piece it announced.
 */
import type { DownloadSettings } from '../../common/config/schema.js';
import { BufferPool } from '../../common/buffer-pool.js';
import { ShoalError, toShoalError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { pieceCount, pieceRange } from '../../common/pieces.js';
import type { PieceStore } from '../storage/store.js';
import type { StoredTask } from '../storage/stored-task.js';
import { Flights, type Flight } from './flights.js';
import { CorruptPieceError, fetchPiece, type ParentConn, type ParentInfo } from './parent.js';
import { PieceTimeoutError } from './piece-channel.js';
import { ParentSet } from './parent-set.js';
import { inflightCap, planFetches, type PiecePick } from './piece-picker.js';
import type { TlsMaterial } from '../../identity/tls.js';
import type { TaskStats } from './task-stats.js';
import { takeAll, type RateLimiter } from '../../common/rate-limiter.js';

export interface PeerFetchesOptions {
  taskId: string;
  task: StoredTask;
  store: PieceStore;
  settings: DownloadSettings;
  /** Parents are reached over the cluster's mutual TLS; undefined: plain TCP. */
  tls: TlsMaterial | undefined;
  stats: TaskStats;
  /** Aborted when the download ends: every fetch is cancelled. */
  signal: AbortSignal;
  /** Whether fetches may start now (not while the origin is streaming, nor once the download is finishing). */
  canFetch: () => boolean;
  /** A piece from a parent was verified and stored. */
  onStored: (n: number, digest: Buffer, length: number, from: 'peer' | 'seed') => void;
  /** The last fetch of piece n ended, the piece stored or not. */
  onFetchEnded: (n: number) => void;
  /** A parent was ruled out (to be told to the scheduler). */
  onParentFailed: (parent: ParentConn, reason: string, corrupt: boolean) => void;
  /** The download cannot go on (the store failed). */
  onFatal: (err: ShoalError) => void;
  /** The rate limits a piece from a parent passes through (the daemon's download limit, the get's own); none: unlimited. */
  limiters?: () => ReadonlyArray<RateLimiter | undefined>;
  logger: Logger;
}

/** Failures in a row that rule a parent out. */
const MAX_FAILURES = 2;
/** A parent that answered BUSY is asked nothing for this long. */
const BUSY_BACKOFF_MS = 250;
/** A parent asked ahead for a piece it was not fetching is not asked ahead again for this long. */
const AHEAD_BACKOFF_MS = 100;

/** Piece buffers shared by every download in the process: page-aligned, so the store can write them with O_DIRECT. */
const pieceBuffers = new BufferPool(32, { aligned: true });

export class PeerFetches {
  readonly #options: PeerFetchesOptions;
  readonly #parents: ParentSet;
  readonly #flights = new Flights();
  /** Authoritative digests from the scheduler, for pieces not held yet. */
  readonly #digests = new Map<number, Buffer>();
  #closed = false;

  constructor(options: PeerFetchesOptions) {
    this.#options = options;
    this.#parents = new ParentSet(options.settings, options.tls);
  }

  /** Pieces in flight. */
  get inflight(): number {
    return this.#flights.size;
  }

  get parentCount(): number {
    return this.#parents.size;
  }

  /** Whether piece n is being fetched from a parent. */
  fetching(n: number): boolean {
    return this.#flights.has(n);
  }

  setParents(list: readonly ParentInfo[]): void {
    this.#parents.update(list);
    this.pump();
  }

  learnDigests(digests: ReadonlyMap<number, Buffer>): void {
    for (const [n, digest] of digests) this.#digests.set(n, digest);
    this.pump();
  }

  parentHas(peerId: string, numbers: readonly number[]): void {
    const parent = this.#parents.get(peerId);
    if (parent !== undefined) for (const n of numbers) parent.pieces.add(n);
    this.pump();
  }

  /** Piece n is held now (from a parent or the origin): its digest is no longer needed. */
  stored(n: number): void {
    this.#digests.delete(n);
  }

  /** Starts the fetches the picker chooses. */
  pump(): void {
    const { task, settings } = this.#options;
    const shape = task.shape;
    if (this.#closed || !this.#options.canFetch() || shape?.contentLength === undefined) return;
    const picks = planFetches({
      count: pieceCount(shape.contentLength, shape.pieceSize),
      held: task.digests.size,
      fetchable: (n) => !task.has(n) && this.#digests.has(n),
      inflight: this.#flights.byPiece,
      parents: this.#parents.values(),
      perParent: settings.perParent,
      maxInflight: inflightCap(settings.concurrentPieces, shape.pieceSize),
      askAhead: settings.protocol === 'tcp' && settings.askAhead,
      now: Date.now(),
      random: Math.random,
    });
    for (const pick of picks) this.#fetch(pick, pieceRange(pick.n, shape.contentLength, shape.pieceSize).length);
  }

  /** Starts no more fetches and closes every parent connection (the download's signal cancels those in flight). */
  close(): void {
    this.#closed = true;
    this.#parents.close();
  }

  #fetch({ n, parent, ahead }: PiecePick<ParentConn>, length: number): void {
    const { task, settings } = this.#options;
    const flight = this.#flights.add(n, parent, this.#options.signal);
    const digest = this.#digests.get(n)!;
    const buffer = pieceBuffers.acquire(length, task.shape!.pieceSize);
    // Once stored, the buffer is the store's (kept for uploads, ./recent-pieces.ts), which gives it back.
    let kept = false;
    const keep = (data: Buffer): void => {
      kept = true;
      this.#options.store.recent.keep(task, n, task.digests.get(n)!, data, () => pieceBuffers.release(buffer));
    };
    // The piece's bytes are granted by every rate limit before it is asked for (the stall timer starts after).
    takeAll(this.#options.limiters?.() ?? [], length, flight.signal)
      .then(() => fetchPiece(parent, { taskId: this.#options.taskId, piece: n, length, digest, stallMs: settings.pieceTimeout, signal: flight.signal, buffer, ahead }))
      .then(({ data, parentComplete }) => this.#received(n, length, flight, data, digest, parentComplete, keep))
      .catch((err: unknown) => this.#failed(parent, n, err, flight.signal.aborted, ahead))
      .finally(() => {
        if (!kept) pieceBuffers.release(buffer);
        if (this.#flights.end(n, flight)) this.#options.onFetchEnded(n);
        this.#parents.released(parent);
        this.pump();
      });
  }

  async #received(n: number, length: number, flight: Flight, data: Buffer, digest: Buffer, parentComplete: boolean, keep: (data: Buffer) => void): Promise<void> {
    const { task, store, stats } = this.#options;
    const { parent } = flight;
    parent.failures = 0;
    parent.bytes += length;
    parent.recordRate(length, Date.now() - flight.started);
    if (task.has(n) || this.#closed) return;
    await store.write(task, n * task.shape!.pieceSize, data);
    if (!store.commitPiece(task, n, digest)) return;
    keep(data);
    if (!parentComplete && !parent.info.seed) stats.piecesFromRunningParents++;
    stats.fromParent(parent.info.peerId, length);
    this.#flights.abortOthers(n, flight);
    this.#options.onStored(n, digest, length, parent.info.seed ? 'seed' : 'peer');
  }

  #failed(parent: ParentConn, n: number, err: unknown, aborted: boolean, ahead: boolean): void {
    if (aborted || this.#closed) return;
    const stats = this.#options.stats;
    if (err instanceof CorruptPieceError) {
      this.#options.logger.warn({ parent: parent.info.peerId, piece: n, err: err.message }, 'corrupt piece; excluding parent');
      stats.corruptPieces++;
      stats.excludedParents.corrupt++;
      this.#drop(parent, err.message, true);
      return;
    }
    const code = err instanceof ShoalError ? err.code : 'PEER_FAILED';
    if (code === 'BUSY') {
      stats.pieceFailures.busy++;
      parent.busyUntil = Date.now() + BUSY_BACKOFF_MS;
    } else if (code === 'PIECE_NOT_FOUND') {
      if (ahead) parent.aheadAfter = Date.now() + AHEAD_BACKOFF_MS;
      else {
        stats.pieceFailures.gone++;
        parent.pieces.delete(n);
      }
    } else if (code === 'STORAGE' || code === 'STORAGE_FULL') {
      this.#options.onFatal(toShoalError(err));
    } else {
      if (err instanceof PieceTimeoutError) stats.pieceFailures.timeout++;
      else stats.pieceFailures.error++;
      parent.failures++;
      this.#options.logger.debug({ parent: parent.info.peerId, piece: n, err: (err as Error).message }, 'piece fetch failed');
      if (parent.failures >= MAX_FAILURES) {
        stats.excludedParents.failures++;
        this.#drop(parent, (err as Error).message, false);
      }
    }
  }

  #drop(parent: ParentConn, reason: string, corrupt: boolean): void {
    this.#parents.drop(parent);
    this.#flights.abortFrom(parent);
    this.#options.onParentFailed(parent, reason, corrupt);
  }
}
