/**
 * Streams one piece body to an HTTP response or a raw socket (the binary
 * protocol): read a chunk, wait for the rate limiter, write, wait for 'drain'
 * when the socket is full. A piece held in memory (PieceHandle.lend) is
 * written straight from there, chunk by chunk, and given back once its last
 * write completed. Otherwise each chunk is a pooled buffer, back in the pool only
 * when its write completed, so a buffer handed to `write` is never overwritten
 * (and a fresh 1 MiB buffer per chunk would cost an mmap and 256 page faults);
 * with the drain wait, at most about two chunks per response are in memory.
 * Resolves once the last chunk's write has completed. Throws ShoalError
 * STORAGE when the piece cannot be read in full, ABORTED (the signal's reason)
 * when the client goes away or the server shuts down; the caller then destroys
 * the socket, so the peer sees a short body.
 */
import type { Socket } from 'node:net';
import { BufferPool } from '../../common/buffer-pool.js';
import { ShoalError } from '../../common/errors.js';
import type { PieceHandle } from './piece-provider.js';
import type { RateLimiter } from '../../common/rate-limiter.js';

export interface SendPieceOptions {
  signal: AbortSignal;
  chunkSize: number;
  /** Socket inactivity allowed while writing (paused while waiting for the limiter). */
  idleTimeoutMs: number;
  rateLimiter?: RateLimiter | undefined;
}

const chunks = new BufferPool(64);

/** Body bytes whose write completed. */
export interface SendProgress {
  bytes: number;
}

/** Where the body goes: a ServerResponse or a net.Socket. */
export interface BodySink {
  write(chunk: Buffer, callback: (err?: Error | null) => void): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/**
 * Writes the piece's bytes to `out` (headers are the caller's). `socket` gets
 * the idle timeout; whoever owns it destroys it on 'timeout'.
 */
export async function sendPiece(out: BodySink, socket: Socket | null | undefined, handle: PieceHandle, options: SendPieceOptions, progress: SendProgress): Promise<void> {
  const { signal, chunkSize, idleTimeoutMs, rateLimiter } = options;
  const length = handle.length;
  const lent = handle.lend?.();
  // What was lent goes back once the loop is over and every write from it has completed.
  let writing = 0;
  let looping = true;
  const settle = (): void => {
    if (!looping && writing === 0) lent?.done();
  };
  socket?.setTimeout(idleTimeoutMs);
  let offset = 0;
  let last: Promise<void> = Promise.resolve();
  try {
    while (offset < length) {
      signal.throwIfAborted();
      const size = Math.min(chunkSize, length - offset);
      if (rateLimiter !== undefined && rateLimiter.rate > 0) {
        // Waiting for our share is not the peer's fault: no idle timeout meanwhile.
        socket?.setTimeout(0);
        await rateLimiter.take(size, signal);
        socket?.setTimeout(idleTimeoutMs);
      }
      const buf = lent !== undefined ? lent.data.subarray(offset, offset + size) : await readChunk(handle, size, chunkSize, offset, signal);
      let written!: () => void;
      last = new Promise<void>((resolve) => (written = resolve));
      writing++;
      const more = out.write(buf, (err) => {
        if (lent === undefined) chunks.release(buf);
        if (err === null || err === undefined) progress.bytes += size;
        writing--;
        settle();
        written();
      });
      offset += size;
      if (!more) await abortable(new Promise<void>((resolve) => out.once('drain', resolve)), signal);
    }
    await abortable(last, signal);
  } finally {
    looping = false;
    settle();
  }
}

/** The next `size` bytes at `offset` from the file, in a pooled buffer (given back by the write's callback). */
async function readChunk(handle: PieceHandle, size: number, chunkSize: number, offset: number, signal: AbortSignal): Promise<Buffer> {
  const buf = chunks.acquire(size, chunkSize);
  try {
    await readFully(handle, buf, offset);
    signal.throwIfAborted();
    return buf;
  } catch (err) {
    chunks.release(buf);
    throw err;
  }
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

/** `done`, or the signal's reason when it aborts first. */
function abortable(done: Promise<void>, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    void done.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
