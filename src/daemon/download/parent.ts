/**
 * A parent peer as the child sees it: a kept-alive undici Pool to its upload
 * server, the pieces it announced, and how it has behaved. `fetchPiece`
 * downloads one piece into memory and checks its SHA-256 before anything is
 * written, so a liar's bytes never reach the content file.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Pool } from 'undici';
import { ShoalError } from '../../common/errors.js';

export interface ParentInfo {
  peerId: string;
  hostId: string;
  ip: string;
  port: number;
  seed: boolean;
}

export class ParentConn {
  readonly info: ParentInfo;
  readonly pool: Pool;
  readonly pieces = new Set<number>();
  inflight = 0;
  failures = 0;
  /** Not asked again before this time (it answered BUSY). */
  busyUntil = 0;
  bytes = 0;
  /** Smoothed throughput in bytes/ms, for choosing between holders. */
  rate = 0;

  constructor(info: ParentInfo, connections: number) {
    this.info = info;
    const host = info.ip.includes(':') ? `[${info.ip}]` : info.ip;
    this.pool = new Pool(`http://${host}:${info.port}`, {
      connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: 5000,
    });
  }

  recordRate(bytes: number, ms: number): void {
    const sample = bytes / Math.max(1, ms);
    this.rate = this.rate === 0 ? sample : this.rate * 0.7 + sample * 0.3;
  }

  close(): void {
    void this.pool.destroy().catch(() => undefined);
  }
}

export interface FetchedPiece {
  data: Buffer;
  /** The parent held the whole task when it served this piece. */
  parentComplete: boolean;
}

export class CorruptPieceError extends ShoalError {
  constructor(message: string) {
    super('PIECE_CORRUPT', message);
  }
}

export interface FetchPieceOptions {
  taskId: string;
  piece: number;
  length: number;
  digest: Buffer;
  /** A parent that sends no bytes for this long loses the piece. */
  stallMs: number;
  signal: AbortSignal;
  /** Where the piece is received (exactly `length` bytes); the caller owns it. */
  buffer: Buffer;
}

/** Fetches and verifies one piece; throws CorruptPieceError, ShoalError('BUSY'|'PIECE_NOT_FOUND'|'PEER_FAILED'). */
export async function fetchPiece(parent: ParentConn, options: FetchPieceOptions): Promise<FetchedPiece> {
  const { taskId, piece, length, digest } = options;
  let response;
  try {
    response = await parent.pool.request({
      path: `/pieces/${taskId}/${piece}`,
      method: 'GET',
      signal: options.signal,
      headersTimeout: options.stallMs,
      bodyTimeout: options.stallMs,
      highWaterMark: 1024 * 1024,
    });
  } catch (err) {
    throw new ShoalError('PEER_FAILED', `parent ${parent.info.peerId}: ${(err as Error).message}`, { cause: err });
  }
  const { statusCode, headers, body } = response;
  if (statusCode !== 200) {
    await body.dump().catch(() => undefined);
    if (statusCode === 503) throw new ShoalError('BUSY', `parent ${parent.info.peerId} is busy`);
    if (statusCode === 404) throw new ShoalError('PIECE_NOT_FOUND', `parent ${parent.info.peerId} does not hold piece ${piece}`);
    throw new ShoalError('PEER_FAILED', `parent ${parent.info.peerId} answered ${statusCode} for piece ${piece}`);
  }
  const declared = Number(headers['content-length']);
  if (declared !== length) {
    body.destroy();
    throw new CorruptPieceError(`parent ${parent.info.peerId} declared ${String(headers['content-length'])} bytes for piece ${piece} of ${length}`);
  }
  const data = options.buffer;
  let received = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (received + chunk.length > length) {
        body.destroy();
        throw new CorruptPieceError(`parent ${parent.info.peerId} sent more than ${length} bytes for piece ${piece}`);
      }
      chunk.copy(data, received);
      received += chunk.length;
    }
  } catch (err) {
    if (err instanceof ShoalError) throw err;
    throw new ShoalError('PEER_FAILED', `parent ${parent.info.peerId}: ${(err as Error).message}`, { cause: err });
  }
  if (received !== length) throw new ShoalError('PEER_FAILED', `parent ${parent.info.peerId} sent ${received}/${length} bytes of piece ${piece}`);
  const actual = createHash('sha256').update(data).digest();
  if (!timingSafeEqual(actual, digest)) {
    throw new CorruptPieceError(`piece ${piece} from parent ${parent.info.peerId} failed its SHA-256 check`);
  }
  return { data, parentComplete: headers['x-shoal-task-complete'] === '1' };
}
