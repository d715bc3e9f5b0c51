/**
 * One piece response from open to release: the upload slot (BUSY beyond the
 * cap), the provider handle (released exactly once), the 200 headers, the
 * body (./send-piece.ts) and what happens when any of it fails.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ShoalError, toShoalError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { MAX_PIECE_SIZE } from '../../common/pieces.js';
import { UPLOAD_LIMITS } from './limits.js';
import type { PieceHandle, PieceProvider } from './piece-provider.js';
import type { RateLimiter } from '../../common/rate-limiter.js';
import { sendError } from './reply.js';
import { sendPiece, type BodySink } from './send-piece.js';

export interface PieceUploadsInit {
  provider: PieceProvider;
  maxConcurrentUploads: number;
  rateLimiter: RateLimiter | undefined;
  log: Logger;
  onUploaded: ((taskId: string, piece: number, bytes: number) => void) | undefined;
  /** Aborts every body in flight (server destroy). */
  shutdown: AbortSignal;
}

export class PieceUploads {
  readonly #init: PieceUploadsInit;
  #active = 0;

  constructor(init: PieceUploadsInit) {
    this.#init = init;
  }

  /** GET responses holding an upload slot. */
  get active(): number {
    return this.#active;
  }

  /**
   * Answers one piece request (`GET`/`HEAD /pieces/<taskId>/<piece>`, or a
   * binary-protocol request) through `reply`. Returns the body's promise (it
   * never rejects) when a body is being streamed, undefined otherwise. With
   * `wait` (binary FLAG_WAIT), a piece this host is fetching right now is
   * answered once that fetch ends, and the promise covers the wait.
   */
  serve(reply: PieceReply, taskId: string, piece: number, head: boolean, wait = false): Promise<void> | undefined {
    const { provider, maxConcurrentUploads, log, shutdown } = this.#init;
    if (wait && !head && !shutdown.aborted) {
      let fetched: Promise<void> | undefined;
      try {
        fetched = provider.whenFetched?.(taskId, piece);
      } catch {
        fetched = undefined; // answered below, without waiting
      }
      if (fetched !== undefined) return this.#afterWait(reply, fetched, taskId, piece);
    }
    if (!head && this.#active >= maxConcurrentUploads) {
      reply.error(new ShoalError('BUSY', `all ${maxConcurrentUploads} upload slots are in use`));
      return undefined;
    }
    let handle: PieceHandle | undefined;
    try {
      handle = provider.openPiece(taskId, piece);
    } catch (err) {
      log.warn({ err, taskId, piece }, 'opening a piece failed');
      reply.error(toShoalError(err, 'STORAGE'));
      return undefined;
    }
    if (handle === undefined) {
      reply.error(new ShoalError('PIECE_NOT_FOUND', `piece ${piece} of task ${taskId} is not held here`));
      return undefined;
    }
    const release = releaseOnce(handle, log);
    const length = handle.length;
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_PIECE_SIZE) {
      release();
      log.error({ taskId, piece, length }, 'provider returned a piece with an impossible length');
      reply.error(new ShoalError('INTERNAL', 'the piece has an invalid length'));
      return undefined;
    }
    if (head) {
      try {
        reply.begin(length, handle.taskComplete);
        reply.end();
      } finally {
        release();
      }
      return undefined;
    }
    this.#active++;
    return this.#stream(reply, handle, taskId, piece).finally(() => {
      this.#active--;
      release();
    });
  }

  /**
   * The piece was on its way here: answer when its fetch ends or after
   * UPLOAD_LIMITS.aheadWaitMs, whichever is first (BUSY if the server stops
   * meanwhile, nothing if the peer left).
   */
  async #afterWait(reply: PieceReply, fetched: Promise<void>, taskId: string, piece: number): Promise<void> {
    const { shutdown } = this.#init;
    let gone = false;
    const unsubscribe = reply.onClose(() => (gone = true));
    let onShutdown: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const stopping = new Promise<void>((resolve) => {
        onShutdown = (): void => resolve();
        shutdown.addEventListener('abort', onShutdown, { once: true });
        timer = setTimeout(resolve, UPLOAD_LIMITS.aheadWaitMs);
      });
      await Promise.race([fetched, stopping]);
    } finally {
      clearTimeout(timer);
      if (onShutdown !== undefined) shutdown.removeEventListener('abort', onShutdown);
      unsubscribe();
    }
    if (gone) return;
    if (shutdown.aborted) {
      reply.error(new ShoalError('BUSY', 'the upload server is shutting down'));
      return;
    }
    await this.serve(reply, taskId, piece, false, false);
  }

  async #stream(reply: PieceReply, handle: PieceHandle, taskId: string, piece: number): Promise<void> {
    const { rateLimiter, log, onUploaded, shutdown } = this.#init;
    const controller = new AbortController();
    const onShutdown = (): void => controller.abort(shutdown.reason);
    shutdown.addEventListener('abort', onShutdown, { once: true });
    const unsubscribe = reply.onClose(() => controller.abort(new ShoalError('ABORTED', 'the peer closed the connection')));
    if (shutdown.aborted) onShutdown();
    const progress = { bytes: 0 };
    try {
      reply.begin(handle.length, handle.taskComplete);
      const options = {
        signal: controller.signal,
        chunkSize: UPLOAD_LIMITS.chunkSize,
        idleTimeoutMs: UPLOAD_LIMITS.sendIdleTimeoutMs,
        rateLimiter,
      };
      await sendPiece(reply.sink, reply.socket, handle, options, progress);
      reply.end();
    } catch (err) {
      const error = toShoalError(err);
      if (error.code === 'ABORTED') log.debug({ taskId, piece, reason: error.message }, 'piece upload aborted');
      else log.warn({ err: error, taskId, piece }, 'piece upload failed; closing the connection');
      reply.destroy();
    } finally {
      shutdown.removeEventListener('abort', onShutdown);
      unsubscribe();
    }
    try {
      onUploaded?.(taskId, piece, progress.bytes);
    } catch (err) {
      log.error({ err }, 'onUploaded callback threw');
    }
  }
}

/** One answer to a piece request, whatever the transport. */
export interface PieceReply {
  /** Answers with an error instead of the piece. */
  error(error: ShoalError): void;
  /** Starts a successful answer: the piece's length and whether the task is complete here. */
  begin(length: number, taskComplete: boolean): void;
  /** Where the body goes after begin(). */
  readonly sink: BodySink;
  /** Gets the idle timeout while the body is written. */
  readonly socket: Socket | null;
  /** The body is complete. */
  end(): void;
  /** The body failed: the peer must see a broken answer, not a short one. */
  destroy(): void;
  /** Calls `listener` when the peer goes away before end(); returns the unsubscribe. */
  onClose(listener: () => void): () => void;
}

/** The HTTP/1.1 answer: headers on begin(), `res.end()` on end(). */
export function httpPieceReply(res: ServerResponse): PieceReply {
  return {
    error: (error) => sendError(res, error),
    begin: (length, taskComplete) => {
      const headers: OutgoingHttpHeaders = {
        'content-type': 'application/octet-stream',
        'content-length': length,
        'x-shoal-task-complete': taskComplete ? '1' : '0',
        'cache-control': 'no-store',
      };
      res.writeHead(200, headers);
    },
    sink: res,
    socket: res.socket,
    end: () => res.end(),
    destroy: () => res.destroy(),
    onClose: (listener) => {
      const onClose = (): void => {
        if (!res.writableFinished) listener();
      };
      res.once('close', onClose);
      return () => res.removeListener('close', onClose);
    },
  };
}

function releaseOnce(handle: PieceHandle, log: Logger): () => void {
  let released = false;
  return () => {
    if (released) return;
    released = true;
    try {
      handle.release();
    } catch (err) {
      log.error({ err }, 'piece handle release threw');
    }
  };
}
