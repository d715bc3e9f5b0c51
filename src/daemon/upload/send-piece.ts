/**
 * Streams one piece body to a response: read a chunk, wait for the rate
 * limiter, write, wait for 'drain' when the socket is full. One freshly
 * allocated buffer per chunk, so a buffer handed to `res.write` is never
 * overwritten; with the drain wait, at most about two chunks per response are
 * in memory. Throws ShoalError STORAGE when the piece cannot be read in full,
 * ABORTED (the signal's reason) when the client goes away or the server shuts
 * down; the caller then destroys the socket, so the peer sees a short body.
 */
import type { ServerResponse } from 'node:http';
import { ShoalError } from '../../common/errors.js';
import type { PieceHandle } from './piece-provider.js';
import type { RateLimiter } from './rate-limiter.js';

export interface SendPieceOptions {
  signal: AbortSignal;
  chunkSize: number;
  /** Socket inactivity allowed while writing (paused while waiting for the limiter). */
  idleTimeoutMs: number;
  rateLimiter?: RateLimiter | undefined;
}

/** Body bytes handed to the socket: all of them after 'finish', else those whose write completed. */
export interface SendProgress {
  bytes: number;
}

export async function sendPiece(res: ServerResponse, handle: PieceHandle, options: SendPieceOptions, progress: SendProgress): Promise<void> {
  const { signal, chunkSize, idleTimeoutMs, rateLimiter } = options;
  const length = handle.length;
  res.socket?.setTimeout(idleTimeoutMs);
  let offset = 0;
  while (offset < length) {
    signal.throwIfAborted();
    const size = Math.min(chunkSize, length - offset);
    if (rateLimiter !== undefined && rateLimiter.rate > 0) {
      // Waiting for our share is not the peer's fault: no idle timeout meanwhile.
      res.socket?.setTimeout(0);
      await rateLimiter.take(size, signal);
      res.socket?.setTimeout(idleTimeoutMs);
    }
    const buf = Buffer.allocUnsafe(size);
    await readFully(handle, buf, offset);
    signal.throwIfAborted();
    const more = res.write(buf, (err) => {
      if (err === null || err === undefined) progress.bytes += size;
    });
    offset += size;
    if (!more) await waitFor(res, 'drain', signal);
  }
  res.end();
  if (!res.writableFinished) await waitFor(res, 'finish', signal);
  // 'finish': every byte has been handed to the socket (write callbacks may still be pending).
  progress.bytes = length;
}

/**
 * Fills buf from the piece at `offset`. A short read is continued (positional
 * reads may return less than asked); a read of 0 bytes before the end, an
 * impossible count or a throw is a STORAGE error.
 */
async function readFully(handle: PieceHandle, buf: Buffer, offset: number): Promise<void> {
  let filled = 0;
  while (filled < buf.length) {
    const want = buf.length - filled;
    let n: number;
    try {
      n = await handle.read(filled === 0 ? buf : buf.subarray(filled), offset + filled, want);
    } catch (err) {
      throw new ShoalError('STORAGE', `reading the piece at offset ${offset + filled} failed`, { cause: err });
    }
    if (!Number.isInteger(n) || n < 0 || n > want) {
      throw new ShoalError('STORAGE', `piece read returned ${String(n)} for ${want} bytes at offset ${offset + filled}`);
    }
    if (n === 0) throw new ShoalError('STORAGE', `piece ended at offset ${offset + filled}, before its length`);
    filled += n;
  }
}

/** Resolves on `event`; rejects with the signal's reason when it aborts first. */
function waitFor(res: ServerResponse, event: 'drain' | 'finish', signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  return new Promise<void>((resolve, reject) => {
    const onEvent = (): void => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = (): void => {
      res.removeListener(event, onEvent);
      reject(signal.reason);
    };
    res.once(event, onEvent);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
