/**
 * Limits and timeouts of the upload server (docs/LIMITS.md, "Upload server").
 * Everything a remote peer controls is bounded here.
 */
import { MIB } from '../../common/pieces.js';

export const UPLOAD_LIMITS = {
  /** Request line plus headers (node `maxHeaderSize`); larger gets 431 and the connection closed. */
  maxHeaderSize: 16 * 1024,
  /** Time to receive the request headers. */
  headersTimeoutMs: 10_000,
  /** Time to receive the whole request (there is never a body). */
  requestTimeoutMs: 30_000,
  /** How often node checks the two timeouts above. */
  connectionsCheckingIntervalMs: 2_000,
  /** An idle kept-alive connection is closed after this. */
  keepAliveTimeoutMs: 60_000,
  /** A response whose socket makes no progress for this long (peer not reading) is destroyed. Paused while waiting for the rate limiter. */
  sendIdleTimeoutMs: 30_000,
  /** Piece bodies are read and written in chunks of this size (one buffer per chunk in flight). */
  chunkSize: 1 * MIB,
  /** `stop()` waits this long for in-flight responses, then destroys them. */
  stopGraceMs: 5_000,
  /**
   * A binary request with FLAG_WAIT waits at most this long for the piece
   * being fetched here, then is answered as if it had not waited: well under
   * a child's stall timer (10 s), which sees no bytes meanwhile.
   */
  aheadWaitMs: 4_000,
  /** Default for `maxConcurrentUploads`. */
  defaultMaxConcurrentUploads: 64,
} as const;
