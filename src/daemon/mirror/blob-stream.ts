/**
 * A blob sent while it downloads: each piece goes to the client the moment it
 * is held and verified here (its own SHA-256), in order, while the rest still
 * comes from peers or the registry. The last chunk is held back until the
 * download's own check of the whole content against the digest
 * (../download/finish-task.ts) has passed: one whole-content hash, not two.
 *
 * After the status line, every failure (a digest mismatch, the download
 * failing, no new piece for `stallMs`) destroys the socket: the client sees a
 * transfer cut short of its Content-Length, never a wrong layer ending
 * cleanly. On a mismatch the download's own whole-content check
 * (../download/finish-task.ts) drops the task's pieces before the socket goes,
 * so nothing of it stays in the cache. Before the status line a failure is
 * thrown for the caller to answer (504 for a stall).
 */
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { ShoalError, toShoalError } from '../../common/errors.js';
import { pieceCount } from '../../common/pieces.js';
import type { DownloadedContent, DownloadHandle } from '../download-service.js';
import type { PieceHandle } from '../storage/piece-handle.js';

/** Bytes read from a piece, hashed and written at a time. */
const CHUNK = 1 << 20;

/** How to send; the download, its digest and the stall bound are the PieceFeed's. */
export interface BlobStreamOptions {
  res: ServerResponse;
  /** First byte to send: 0, or N of an open-ended `Range: bytes=N-` (206). */
  start: number;
  signal: AbortSignal;
  /** Sets the status and headers for a content of `size` bytes; the status line goes out with the first byte. */
  setHeaders(res: ServerResponse, size: number): void;
  onSent(bytes: number): void;
}

/** What is known before the first byte: the content's length, with piece 0 held. */
export interface StreamStart {
  readonly size: number;
  readonly pieceSize: number;
}

/**
 * Waits for piece `n`, one download's progress at a time: resolves with the
 * piece once held, rejects when the download fails, the caller goes away or
 * nothing new arrives for `stallMs`.
 */
export class PieceFeed {
  readonly #handle: DownloadHandle;
  readonly #signal: AbortSignal;
  readonly #stallMs: number;
  /** Set once the download completed: the content pinned until close(). */
  #content: DownloadedContent | undefined;
  #unpin: (() => void) | undefined;
  #failed: ShoalError | undefined;
  readonly #wakers = new Set<() => void>();
  readonly #offProgress: () => void;

  constructor(handle: DownloadHandle, signal: AbortSignal, stallMs: number) {
    this.#handle = handle;
    this.#signal = signal;
    this.#stallMs = stallMs;
    this.#offProgress = handle.onProgress(() => this.#wake());
    handle.done.then(
      (content) => {
        this.#content = content;
        this.#unpin = content.pin();
        this.#wake();
      },
      (err: unknown) => {
        this.#failed = toShoalError(err);
        this.#wake();
      },
    );
  }

  /** The download completed and its whole content matched the digest. */
  get complete(): boolean {
    return this.#content !== undefined;
  }

  /**
   * What the first byte needs: the content's length, known once piece 0 is
   * held. Undefined when the download completed first (a blob held already, or
   * of no bytes): the caller sends the verified file instead.
   */
  async start(): Promise<StreamStart | undefined> {
    for (;;) {
      if (this.#content !== undefined) return undefined;
      if (this.#failed !== undefined) throw this.#failed;
      const piece = this.#handle.openPiece(0);
      if (piece !== undefined) {
        piece.release();
        const shape = this.#handle.shape();
        if (shape?.contentLength === undefined) return undefined;
        return { size: shape.contentLength, pieceSize: shape.pieceSize };
      }
      await this.#progress();
    }
  }

  /** The complete, verified content, waiting for it (with the stall bound). */
  async content(): Promise<DownloadedContent> {
    for (;;) {
      if (this.#content !== undefined) return this.#content;
      if (this.#failed !== undefined) throw this.#failed;
      await this.#progress();
    }
  }

  /** Piece `n`, waiting for it. */
  async piece(n: number): Promise<PieceHandle> {
    for (;;) {
      const piece = this.#handle.openPiece(n);
      if (piece !== undefined) return piece;
      if (this.#failed !== undefined) throw this.#failed;
      if (this.#content !== undefined) throw new ShoalError('STORAGE', `piece ${n} of a complete task is not readable`);
      await this.#progress();
    }
  }

  /** Resolves on the next piece stored or the download's end; rejects on a stall or the caller's abort. */
  #progress(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: ShoalError): void => {
        clearTimeout(timer);
        this.#wakers.delete(wake);
        this.#signal.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const wake = (): void => finish();
      const onAbort = (): void => finish(toShoalError(this.#signal.reason ?? new ShoalError('ABORTED', 'the mirror client went away')));
      const timer = setTimeout(
        () => finish(new ShoalError('TIMEOUT', `no new piece of the blob for ${Math.round(this.#stallMs / 1000)} s (mirror.stallTimeout): its parents, seed or registry stopped sending`)),
        this.#stallMs,
      );
      if (this.#signal.aborted) return onAbort();
      this.#signal.addEventListener('abort', onAbort, { once: true });
      this.#wakers.add(wake);
    });
  }

  #wake(): void {
    for (const wake of [...this.#wakers]) wake();
  }

  close(): void {
    this.#offProgress();
    this.#unpin?.();
    this.#unpin = undefined;
  }
}

/**
 * Sends the blob from `start` to its end as its pieces arrive (see the file's
 * comment). Resolves when the response ended cleanly. A failure after the
 * status line went out destroys the socket and is returned; one before (a
 * blob of a single chunk, held back whole) is thrown with the headers undone.
 */
export async function streamBlob(o: BlobStreamOptions, feed: PieceFeed, begin: StreamStart): Promise<ShoalError | undefined> {
  const { res, signal } = o;
  const { size, pieceSize } = begin;
  o.setHeaders(res, size - o.start);
  let held: Buffer | undefined;
  let sent = 0;
  const write = async (chunk: Buffer): Promise<void> => {
    sent += chunk.length;
    if (!res.write(chunk)) await once(res, 'drain', { signal });
  };
  try {
    const count = pieceCount(size, pieceSize);
    for (let n = 0; n < count; n++) {
      const piece = await feed.piece(n);
      try {
        for (let offset = 0; offset < piece.length; ) {
          const buf = Buffer.allocUnsafe(Math.min(CHUNK, piece.length - offset));
          const read = await piece.read(buf, offset, buf.length);
          if (read !== buf.length) throw new ShoalError('STORAGE', `short read of piece ${n}`);
          const at = n * pieceSize + offset;
          offset += read;
          const part = at >= o.start ? buf : at + buf.length > o.start ? buf.subarray(o.start - at) : undefined;
          if (part === undefined) continue;
          if (held !== undefined) await write(held);
          held = part;
        }
      } finally {
        piece.release();
      }
    }
    // The whole content checked against the digest by the download itself: on a mismatch it has
    // dropped the pieces (DIGEST_MISMATCH) before this throws, so the client sees the cut only then.
    await feed.content();
    if (held !== undefined) sent += held.length;
    res.end(held);
    if (!res.writableFinished) await once(res, 'finish', { signal });
    return undefined;
  } catch (err) {
    const e = toShoalError(err);
    if (!res.headersSent) {
      // Nothing went out (a blob of one chunk): the caller answers with the error.
      for (const name of res.getHeaderNames()) if (name !== 'docker-distribution-api-version') res.removeHeader(name);
      res.statusCode = 200;
      throw e;
    }
    res.destroy();
    return e;
  } finally {
    o.onSent(sent);
  }
}
