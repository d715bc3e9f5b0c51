/**
 * One piece response from open to release: the upload slot (BUSY beyond the
 * cap), the provider handle (released exactly once), the 200 headers, the
 * body (./send-piece.ts) and what happens when any of it fails.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { ShoalError, toShoalError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { MAX_PIECE_SIZE } from '../../common/pieces.js';
import { UPLOAD_LIMITS } from './limits.js';
import type { PieceHandle, PieceProvider } from './piece-provider.js';
import type { RateLimiter } from './rate-limiter.js';
import { sendError } from './reply.js';
import { sendPiece } from './send-piece.js';

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
   * Answers `GET`/`HEAD /pieces/<taskId>/<piece>`. Returns the body's promise
   * (it never rejects) when a body is being streamed, undefined otherwise.
   */
  serve(res: ServerResponse, taskId: string, piece: number, head: boolean): Promise<void> | undefined {
    const { provider, maxConcurrentUploads, log } = this.#init;
    if (!head && this.#active >= maxConcurrentUploads) {
      sendError(res, new ShoalError('BUSY', `all ${maxConcurrentUploads} upload slots are in use`));
      return undefined;
    }
    let handle: PieceHandle | undefined;
    try {
      handle = provider.openPiece(taskId, piece);
    } catch (err) {
      log.warn({ err, taskId, piece }, 'opening a piece failed');
      sendError(res, toShoalError(err, 'STORAGE'));
      return undefined;
    }
    if (handle === undefined) {
      sendError(res, new ShoalError('PIECE_NOT_FOUND', `piece ${piece} of task ${taskId} is not held here`));
      return undefined;
    }
    const release = releaseOnce(handle, log);
    const length = handle.length;
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_PIECE_SIZE) {
      release();
      log.error({ taskId, piece, length }, 'provider returned a piece with an impossible length');
      sendError(res, new ShoalError('INTERNAL', 'the piece has an invalid length'));
      return undefined;
    }
    const headers: OutgoingHttpHeaders = {
      'content-type': 'application/octet-stream',
      'content-length': length,
      'x-shoal-task-complete': handle.taskComplete ? '1' : '0',
      'cache-control': 'no-store',
    };
    if (head) {
      try {
        res.writeHead(200, headers);
        res.end();
      } finally {
        release();
      }
      return undefined;
    }
    this.#active++;
    return this.#stream(res, handle, headers, taskId, piece).finally(() => {
      this.#active--;
      release();
    });
  }

  async #stream(res: ServerResponse, handle: PieceHandle, headers: OutgoingHttpHeaders, taskId: string, piece: number): Promise<void> {
    const { rateLimiter, log, onUploaded, shutdown } = this.#init;
    const controller = new AbortController();
    const onShutdown = (): void => controller.abort(shutdown.reason);
    const onClose = (): void => {
      if (!res.writableFinished) controller.abort(new ShoalError('ABORTED', 'the peer closed the connection'));
    };
    shutdown.addEventListener('abort', onShutdown, { once: true });
    res.once('close', onClose);
    if (shutdown.aborted) onShutdown();
    const progress = { bytes: 0 };
    try {
      res.writeHead(200, headers);
      const options = {
        signal: controller.signal,
        chunkSize: UPLOAD_LIMITS.chunkSize,
        idleTimeoutMs: UPLOAD_LIMITS.sendIdleTimeoutMs,
        rateLimiter,
      };
      await sendPiece(res, handle, options, progress);
    } catch (err) {
      const error = toShoalError(err);
      if (error.code === 'ABORTED') log.debug({ taskId, piece, reason: error.message }, 'piece upload aborted');
      else log.warn({ err: error, taskId, piece }, 'piece upload failed; closing the connection');
      res.destroy();
    } finally {
      shutdown.removeEventListener('abort', onShutdown);
      res.removeListener('close', onClose);
    }
    try {
      onUploaded?.(taskId, piece, progress.bytes);
    } catch (err) {
      log.error({ err }, 'onUploaded callback threw');
    }
  }
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
